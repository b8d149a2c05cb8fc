"""The memory table of docs/families.md: exact parameter counts of every family, and bf16 weight memory.

Each family's published configuration (``prefpaint_sdk.testing``'s ``size="real"`` shapes) is built on the
``meta`` device, so nothing is allocated; the counts are exact for those configs. ``sd2`` is the ``sd`` family
with ``stabilityai/stable-diffusion-2-inpainting``'s UNet (cross-attention 1024, heads 5/10/20/20) and text
encoder (OpenCLIP ViT-H/14 text: 1024 wide, 23 layers).

Memory (GiB = 2**30 bytes), weights and optimizer state only; activations come on top:

* inference: every component in bf16 (2 bytes per parameter);
* LoRA: every component frozen in bf16, plus the adapter (rank ``--rank`` on the engine's ``lora_modules``)
  in fp32 with its gradient, AdamW's two moments and the old-policy copy (5 x 4 bytes per adapter parameter);
* full fine-tuning: the denoiser trained in fp32 with mixed precision (fp32 weights, gradients and AdamW's two
  moments: 16 bytes per parameter), the rest frozen in bf16. With FSDP (``--fsdp``) over N GPUs the
  denoiser's 16 bytes per parameter are sharded N ways; the frozen parts stay whole on every GPU.

Run: ``python benchmarks/family_memory.py [--rank 32] [--gpus 4,8]``; it prints the markdown table pasted into
docs/families.md (``tests/test_family_memory.py`` checks the table's counts against this script's).
"""

from __future__ import annotations

import argparse

FAMILIES = ("sd", "sd2", "sdxl", "flux-fill", "qwen-image", "qwen-image-edit", "flux2-klein", "z-image")
# SD 2 inpainting (stabilityai/stable-diffusion-2-inpainting): unet/config.json and text_encoder/config.json.
SD2 = dict(cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), text_hidden=1024, text_layers=23,
           text_heads=16, text_intermediate=4096, text_act="gelu")
DENOISERS = ("unet", "transformer")
TEXT = ("text_encoder", "text_encoder_2")
GIB = 2**30


def build_on_meta(family: str):
    """The family's published pipeline, built on ``meta``."""
    import torch

    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    with torch.device("meta"):
        if family == "sd2":
            return tiny_inpaint_pipeline(0, size="real", family="sd", **SD2)
        return tiny_inpaint_pipeline(0, size="real", family=family)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def lora_parameters(model, targets, rank: int) -> int:
    """Parameters of a rank-``rank`` LoRA adapter on every ``nn.Linear`` whose name ends with a target."""
    import torch

    n = 0
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and any(name == t or name.endswith("." + t) for t in targets):
            n += rank * (m.in_features + m.out_features)
    return n


def counts(family: str, rank: int = 32) -> dict[str, int]:
    """Exact parameter counts: ``denoiser``, ``text`` (all text encoders), ``vae``, ``total``, ``lora``."""
    from prefpaint_sdk.engines import engine_for_pipeline

    pipe = build_on_meta(family)
    engine = engine_for_pipeline(pipe)
    denoiser = getattr(pipe, engine.trainable_module)
    text = sum(_count(getattr(pipe, n)) for n in TEXT if getattr(pipe, n, None) is not None)
    out = dict(denoiser=_count(denoiser), text=text, vae=_count(pipe.vae))
    out["total"] = out["denoiser"] + out["text"] + out["vae"]
    out["lora"] = lora_parameters(denoiser, engine.lora_modules(denoiser), rank)
    out["denoiser_name"] = engine.trainable_module
    return out


def memory(c: dict, gpus: int = 1) -> dict[str, float]:
    """GiB per GPU: inference, LoRA training, and full fine-tuning with the denoiser sharded over ``gpus``."""
    frozen = (c["text"] + c["vae"]) * 2
    return dict(inference=c["total"] * 2 / GIB, lora=(c["total"] * 2 + c["lora"] * 20) / GIB,
                full=(frozen + c["denoiser"] * 16 / gpus) / GIB)


def table(rank: int = 32, gpus: tuple[int, ...] = (4, 8)) -> str:
    fsdp = "".join(f" full, FSDP over {n} GPUs |" for n in gpus)
    lines = [f"| family | denoiser | text encoders | VAE | inference, bf16 | LoRA r{rank} training | full fine-tuning, "
             f"1 GPU |{fsdp}", "|---|---|---|---|---|---|---|" + "---|" * len(gpus)]
    for family in FAMILIES:
        c = counts(family, rank)
        m = memory(c)
        shards = "".join(f" {memory(c, n)['full']:.1f} GiB |" for n in gpus)
        lines.append(f"| `{family}` | {c['denoiser']:,} ({c['denoiser_name']}) | {c['text']:,} | {c['vae']:,} | "
                     f"{m['inference']:.1f} GiB | {m['lora']:.1f} GiB ({c['lora'] / 1e6:.1f}M adapter) | "
                     f"{m['full']:.1f} GiB |{shards}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rank", type=int, default=32, help="LoRA rank")
    ap.add_argument("--gpus", default="4,8", help="GPU counts the FSDP columns shard the denoiser over")
    args = ap.parse_args()
    print(table(args.rank, tuple(int(n) for n in args.gpus.split(","))))


if __name__ == "__main__":
    main()
