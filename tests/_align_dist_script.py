"""Run by test_align_distributed.py under ``torchrun --nproc_per_node N``: alignment iterations on CPU.

Arguments: data folder, output folder, prompts per iteration per process, then either a model and an official
reward ``.pt`` (one iteration with a RewardModel), or ``flux-grpo`` (one GRPO iteration of the tiny FLUX Fill
pipeline, recording the advantages each process trains on).
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _helpers_align import fast_config

from prefpaint_sdk.align.algorithms.grpo import GRPO
from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.testing import tiny_inpaint_pipeline


def _record_advantages(store: list) -> None:
    """Wrap GRPO's policy update to keep this process's slice of the advantages of every iteration."""
    update = GRPO.update

    def recording(self, loop, ro, adv, valid, *args, **kwargs):
        store.append([float(a) if v else None for a, v in zip(adv.tolist(), valid.tolist())])
        return update(self, loop, ro, adv, valid, *args, **kwargs)

    GRPO.update = recording


def main(data: str, out: str, prompts_per_iter: int, model: str | None = None, reward: str | None = None) -> None:
    torch.set_num_threads(1)
    flux = model in ("flux-grpo", "flux-grpo-stack")  # -stack: the reward stack brightness + seam, gdpo
    advantages: list = []
    if flux:  # GRPO groups of 4 (two groups per process in the 2-process run), SDE on every flow step
        cfg = fast_config(prompts_per_iter=prompts_per_iter, samples_per_prompt=4, rollout_batch_size=4,
                          train_batch_size=4, num_steps=2, timesteps_per_traj=1, sde_window=0, algo="grpo",
                          iterations=1)
        _record_advantages(advantages)
        stack = dict(reward_norm="gdpo") if model == "flux-grpo-stack" else {}
        al = Aligner(tiny_inpaint_pipeline(0, family="flux-fill"), ["brightness", "seam"] if stack else "brightness",
                     cfg, data, out, device="cpu", **stack)
    elif reward:  # a RewardModel from an official .pt: every process converts it into the shared cache at once
        cfg = fast_config(prompts_per_iter=prompts_per_iter, samples_per_prompt=2, rollout_batch_size=4, iterations=1)
        al = Aligner.from_pretrained(model, reward, cfg, data, out, device="cpu")
    else:
        cfg = fast_config(prompts_per_iter=prompts_per_iter, samples_per_prompt=2, rollout_batch_size=4, iterations=2)
        al = Aligner(tiny_inpaint_pipeline(0), "brightness", cfg, data, out, device="cpu")
    acc = al.accelerator
    res = al.train()  # calls accelerator.end_training() at the end
    flat = torch.cat([p.detach().flatten() for p in al.params.values()])
    rec = {"rank": acc.process_index, "num_processes": acc.num_processes, "history": res.history,
           "advantages": advantages, "algo": al.algo,
           "param_sum": float(flat.double().sum()), "param_sq": float((flat.double() ** 2).sum())}
    Path(out, f"rank{acc.process_index}.json").write_text(json.dumps(rec))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:6])
