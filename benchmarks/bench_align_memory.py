"""Peak memory and wall time of ONE alignment iteration at real SD 1.5 inpainting size, on the CPU.

    python benchmarks/bench_align_memory.py                 # LoRA, then full when the machine has room
    python benchmarks/bench_align_memory.py --modes lora    # LoRA only

Each mode runs in a fresh subprocess, so ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is that mode's own
peak resident memory. The models are the real SD 1.5 inpainting configurations with random weights (no hub
here): UNet2DConditionModel with diffusers' defaults (320/640/1280/1280, 2 layers per block, cross-attention
in the first three down blocks, 768-d cross-attention, 8 heads) and 9 input channels (859.5M parameters);
the SD VAE (128/256/512/512, 2 layers per block; 83.7M); a CLIP ViT-L/14 text encoder (768 x 12 layers,
49,408-token vocabulary; 123M). Settings: 512 px, 2 DDIM steps, both trained, batch 1 (one prompt, one
sample), fp32, gradient checkpointing on, the built-in brightness reward, AdamW (its moments are allocated
in the measured step).

Full fine-tuning needs about 860M x (4 weight + 4 gradient + 8 AdamW + 4 old-policy snapshot) B = 17.2 GB
before activations; the parent runs it only when ``MemAvailable`` exceeds ``--full-needs-gib`` (default 21),
and caps the child's address space below what is available, so on a shared machine it fails alone rather
than pushing other processes out. Never run by the tests (minutes per mode).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 2**30


def real_sd15_inpaint_pipeline(seed: int = 0):
    """The SD 1.5 inpainting pipeline's shapes with random weights (the tokenizer is the byte-level test one)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from prefpaint_sdk.testing import byte_level_clip_tokenizer

    torch.manual_seed(seed)
    # diffusers' defaults are SD 1.x's UNet; the inpainting UNet takes 9 channels.
    unet = UNet2DConditionModel(sample_size=64, in_channels=9, out_channels=4, cross_attention_dim=768,
                                attention_head_dim=8, layers_per_block=2)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
                        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                                        projection_dim=768, bos_token_id=514, eos_token_id=515, pad_token_id=515))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=byte_level_clip_tokenizer(), unet=unet,
                                          scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def measure(mode: str, threads: int, build_only: bool = False) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from prefpaint_sdk.align.config import AlignConfig
    from prefpaint_sdk.align.trainer import Aligner

    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_align_memory_"))
    (tmp / "images").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)).save(tmp / "images" / "0.png")
    cfg = AlignConfig().replace(
        finetune=mode, resolution=512, num_steps=2, timesteps_per_traj=2, prompts_per_iter=1, samples_per_prompt=1,
        rollout_batch_size=1, train_batch_size=1, grad_accum_steps=1, iterations=1, eval_every=0, save_every=0,
        log_with="none", mixed_precision="no", gradient_checkpointing=True, resync_every=1)
    t0 = time.perf_counter()
    pipe = real_sd15_inpaint_pipeline()
    n_unet = sum(p.numel() for p in pipe.unet.parameters())
    al = Aligner(pipe, "brightness", cfg, tmp, tmp / "out", device="cpu")
    build_s, rss_built = time.perf_counter() - t0, _rss_gib()
    if build_only:  # the trainer as built (weights, old-policy snapshot, frozen parts), no step
        return {"mode": mode, "build_only": True, "unet_params": n_unet,
                "trainable_params": sum(p.numel() for p in al.params.values()), "build_s": build_s,
                "peak_rss_after_build_gib": rss_built, "threads": threads}
    t0 = time.perf_counter()
    metrics = al.step()
    step_s = time.perf_counter() - t0
    return {"mode": mode, "unet_params": n_unet, "trainable_params": sum(p.numel() for p in al.params.values()),
            "build_s": build_s, "step_s": step_s, "peak_rss_after_build_gib": rss_built,
            "peak_rss_gib": _rss_gib(), "threads": threads,
            "finite_loss": all(isinstance(v, (int, float)) and v == v for v in metrics.values())}


def _mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GIB
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="lora,full")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full-needs-gib", type=float, default=21.0)
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    ap.add_argument("--build-only", action="store_true", help="build the trainer and stop before the step (the memory "
                    "of weights, old-policy snapshot and frozen parts; for a machine without room for a full step)")
    ap.add_argument("--mode", choices=["lora", "full"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode, args.threads, args.build_only)), flush=True)
        return
    rows = []
    for mode in args.modes.split(","):
        avail = _mem_available_gib()
        load = os.getloadavg()
        row = {"mode": mode, "mem_available_gib_before": round(avail, 1), "loadavg_before": [round(x, 2) for x in load]}
        if mode == "full" and avail < args.full_needs_gib and not args.build_only:
            row["skipped"] = f"MemAvailable {avail:.1f} GiB < {args.full_needs_gib} GiB needed"
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        cap = int((avail - 1.0) * GIB)  # fail alone, not by pushing the machine's other processes out

        def limit(cap=cap):
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--threads", str(args.threads)]
                             + (["--build-only"] if args.build_only else []),
                             capture_output=True, text=True, preexec_fn=limit,
                             env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        row["wall_s"] = time.perf_counter() - t0
        row["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        if out.returncode:
            row["error"] = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"
        else:
            row.update(json.loads(out.stdout.strip().splitlines()[-1]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
