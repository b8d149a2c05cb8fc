"""Run by test_align_fsdp.py under ``torchrun --nproc_per_node 2`` (gloo, CPU): full fine-tuning of the tiny SD
UNet for 2 iterations, replicated (DDP) or sharded (``fsdp=True``), or resumed under FSDP.

Arguments: ``ddp|fsdp|resume|flux-ddp|flux-fsdp``, data folder, output folder. Rank 0 writes ``<out>/params.safetensors`` (the whole
trained weights) and ``<out>/record.json``; ``fsdp`` also exports the merged pipeline to ``<out>/export``.
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))

from _helpers_align import fast_config

from prefpaint_sdk.align.fsdp import full_tensors, is_sharded
from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.testing import tiny_inpaint_pipeline


def main(mode: str, data: str, out: str) -> None:
    torch.set_num_threads(1)
    flux = mode.startswith("flux")  # flux-ddp / flux-fsdp: GRPO on the tiny FLUX Fill transformer
    common = dict(finetune="full", iterations=2, fsdp=mode in ("fsdp", "resume", "flux-fsdp"), learning_rate=1e-3,
                  adam_eps=1e-4, grad_spike_factor=0.0)
    if flux:
        cfg = fast_config(prompts_per_iter=1, samples_per_prompt=4, rollout_batch_size=4, train_batch_size=4,
                          num_steps=2, timesteps_per_traj=1, sde_window=0, algo="grpo", **common)
    else:
        # kl_coef > 0: PPO keeps a frozen reference model (sharded too under fsdp)
        cfg = fast_config(save_every=1, keep_checkpoints=3, eval_every=1, eval_size=2, kl_coef=0.05,
                          resync_every=2, **common)  # iteration 2 samples with the old policy, not the trained one
    al = Aligner(tiny_inpaint_pipeline(0, family="flux-fill" if flux else "sd"), "brightness", cfg, data, out,
                 device="cpu")
    res = al.train(resume=mode == "resume")
    acc = al.accelerator
    if mode != "ddp" and al.ref_model is not None:
        al.ref_model.reshard()  # FSDP2 leaves the root's own parameters gathered after a no-grad forward
    sharded = sum(is_sharded(p) for p in al.params.values())
    local = sum((p.to_local() if is_sharded(p) else p).numel() for p in al.params.values())
    full = {k: v.detach().cpu().contiguous() for k, v in full_tensors(al.params).items()}
    if mode == "fsdp":
        al.export(Path(out) / "export")
    if acc.is_main_process:
        save_file(full, str(Path(out) / "params.safetensors"))
    rec = {"num_processes": acc.num_processes, "history": res.history, "evals": res.evals, "sharded": sharded, "n_params": len(full),
           "local_numel": local, "full_numel": sum(v.numel() for v in full.values()),
           "wrapper": type(al.model).__name__,
           "ref_sharded": None if al.ref_model is None else all(is_sharded(p) for p in al.ref_model.parameters())}
    Path(out, f"rank{acc.process_index}.json").write_text(json.dumps(rec))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
