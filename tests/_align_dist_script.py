"""Run by test_align_distributed.py under ``torchrun --nproc_per_node N``: two alignment iterations on CPU."""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _helpers_align import fast_config

from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.testing import tiny_inpaint_pipeline


def main(data: str, out: str, prompts_per_iter: int, model: str | None = None, reward: str | None = None) -> None:
    torch.set_num_threads(1)
    cfg = fast_config(prompts_per_iter=prompts_per_iter, samples_per_prompt=2, rollout_batch_size=4,
                      iterations=1 if reward else 2)
    if reward:  # a RewardModel from an official .pt: every process converts it into the shared cache at once
        al = Aligner.from_pretrained(model, reward, cfg, data, out, device="cpu")
    else:
        al = Aligner(tiny_inpaint_pipeline(0), "brightness", cfg, data, out, device="cpu")
    acc = al.accelerator
    res = al.train()  # calls accelerator.end_training() at the end
    flat = torch.cat([p.detach().flatten() for p in al.params.values()])
    rec = {"rank": acc.process_index, "num_processes": acc.num_processes, "history": res.history,
           "param_sum": float(flat.double().sum()), "param_sq": float((flat.double() ** 2).sum())}
    Path(out, f"rank{acc.process_index}.json").write_text(json.dumps(rec))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:6])
