"""Issue 11 benchmark: every model family, side by side with what a diffusers user runs.

Run: .venv/bin/python benchmarks/bench_engines.py [--parts overhead,real,crop] [--families sd,sdxl,flux-fill]

Parts (each prints its own table; ``uptime``'s load is printed beside each, since the CPU is shared):

* ``overhead``: per family, ``Inpainter`` (cropping off, so both see the same pixels) against the same pipeline
  called directly with the same arguments and generator, on the **mid** fixture (512 px working size),
  alternating the order every repeat after a warm-up, median. Floor: the raw pipeline call. Target ratio
  <= 1.02; also the ms of our own work around the call (``timings.total_s - timings.sample_s``), the steadier reading on a noisy machine.
* ``real``: per family, at the **real** size (the published configs, random weights, fp32, CPU), measured once,
  each in a fresh subprocess: one denoiser evaluation at the working size (batch 1; SD/SDXL's classifier-free
  guidance runs two per step, FLUX's distilled guidance one) and the subprocess's peak RSS
  (``resource.getrusage``). FLUX.1 Fill's 12B transformer does not fit this machine: the child builds a
  1+1-block transformer of the real width, times one double-stream and one single-stream block and the rest
  (embedders, output) at the 1024² token count, and the step is ``rest + 19 * double + 38 * single``. The
  latent-blend families (Qwen-Image, Qwen-Image-Edit, FLUX.2 klein, Z-Image) likewise, one block per kind, on
  the inputs their own pipeline makes at the working size (``real_blend_child``); the memory figure is the
  peak during that call (Linux ``VmHWM``, reset once the pipeline's other parts are freed).
  Parameter counts and fp32/bf16 sizes of every component come from the full config built on ``meta``.
* ``crop``: crop-to-mask on a 2048² image with a 256² hole, FLUX Fill mid: ``Inpainter`` (crop on, the model
  sees a 512² box) against the raw pipeline at 2048² (what a user without cropping runs). Target <= 0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare, machine  # noqa: E402

from prefpaint_sdk import Inpainter  # noqa: E402
from prefpaint_sdk.testing import tiny_inpaint_pipeline  # noqa: E402

COMPONENTS = ("unet", "transformer", "vae", "text_encoder", "text_encoder_2")


def load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _direct(inp: Inpainter, img, m, seed, steps, prompt, **extra):
    """What a diffusers user writes: the family's own knobs, one generator."""
    e = inp.engine
    # the family's text and guidance arguments (true CFG for Qwen-Image, CFG against "" for FLUX.2 klein, ...)
    knobs = e._call_kwargs(prompt=prompt, negative_prompt="", n=1, eta=None,
                           guidance=e.guidance_used(e.default_guidance, prompt, ""))
    kw = dict(image=[Image.fromarray(img)], mask_image=[Image.fromarray(m.astype(np.uint8) * 255)],
              height=img.shape[0], width=img.shape[1], num_inference_steps=steps,
              generator=[torch.Generator().manual_seed(seed)], strength=e.default_strength, **knobs, **extra)
    with torch.inference_mode():
        return inp.pipeline(**kw).images


def _square(side: int, hole: tuple[int, int, int, int]):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    m = np.zeros((side, side), bool)
    y0, y1, x0, x1 = hole
    m[y0:y1, x0:x1] = True
    return img, m


# --- overhead on the mid fixtures ----------------------------------------------------------------------------

def _alternating(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function after a warm-up, the order flipped every repeat (A B, B A, ...): on a
    shared machine whose load drifts, a fixed order would charge the drift to whichever runs first."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeats):
        for name in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def overhead(families, steps: int, repeats: int) -> None:
    rows = []
    for family in families:
        inp = Inpainter(tiny_inpaint_pipeline(seed=0, size="mid", family=family), model_id=f"random-mid-{family}")
        r = inp.resolution
        img, m = _square(r, (r // 4, 3 * r // 4, r // 4, 3 * r // 4))
        own = []

        def ours(inp=inp, img=img, m=m, own=own):
            res = inp(img, m, prompt="a photo", seed=0, steps=steps, crop_margin=-1, mask_blur=0)
            own.append(res.timings["total_s"] - res.timings["sample_s"])

        # a prompt that differs from the negative prompt: guidance runs in both (CFG for SD/SDXL)
        t = _alternating({"inpainter": ours, "diffusers": lambda inp=inp, img=img, m=m: _direct(inp, img, m, 0, steps,
                                                                                                 "a photo")}, repeats)
        rows.append((family, r, t["inpainter"], t["diffusers"], float(np.median(own[1:]))))
        print(f"  done: {family} ({load()})", file=sys.stderr, flush=True)
    print(f"\nmachine: {machine()}; {load()}")
    print(f"| family (mid, {steps} steps) | working size | Inpainter (s) | diffusers (s) | ratio | difference (ms) "
          "| own work outside the pipeline call (ms) | target |")
    print("|---|---|---|---|---|---|---|---|")
    for family, r, ours_s, base, own_s in rows:
        print(f"| {family} | {r}² | {ours_s:.3f} | {base:.3f} | {ours_s / base:.3f} | {(ours_s - base) * 1000:+.0f} "
              f"| {own_s * 1000:.1f} | <= 1.02 |")


# --- real size: one denoiser evaluation, in a fresh process --------------------------------------------------

def _meta_pipeline(family: str):
    with torch.device("meta"):
        return tiny_inpaint_pipeline(0, size="real", family=family)


def _counts(pipe) -> dict[str, int]:
    return {n: sum(p.numel() for p in getattr(pipe, n).parameters()) for n in COMPONENTS
            if getattr(pipe, n, None) is not None}


def _denoiser_inputs(family: str, pipe, model):
    res = pipe.vae.config.sample_size if family == "flux-fill" else model.config.sample_size * pipe.vae_scale_factor
    lat = res // pipe.vae_scale_factor
    t = torch.tensor([500.0])
    if family == "flux-fill":
        tokens, text = (lat // 2) ** 2, 512
        return res, dict(hidden_states=torch.randn(1, tokens, model.config.in_channels),
                         encoder_hidden_states=torch.randn(1, text, model.config.joint_attention_dim),
                         pooled_projections=torch.randn(1, model.config.pooled_projection_dim),
                         timestep=t / 1000, guidance=torch.tensor([30.0]), img_ids=torch.zeros(tokens, 3),
                         txt_ids=torch.zeros(text, 3), return_dict=False)
    kw = dict(sample=torch.randn(1, 9, lat, lat), timestep=t,
              encoder_hidden_states=torch.randn(1, 77, model.config.cross_attention_dim), return_dict=False)
    if family == "sdxl":
        kw["added_cond_kwargs"] = dict(text_embeds=torch.randn(1, pipe.text_encoder_2.config.projection_dim),
                                       time_ids=torch.tensor([[res, res, 0, 0, res, res]], dtype=torch.float32))
    return res, kw


def _cpu_s() -> float:
    """CPU seconds this process used (all threads): on a shared machine, wall time is mostly waiting."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def real_child(family: str) -> None:
    """In a fresh process: build the real denoiser (or, for FLUX and the blend families, one block of each kind)
    and time one call."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    if family in BLEND_BLOCKS:
        print("RESULT " + json.dumps(real_blend_child(family)), flush=True)
        return
    meta = _meta_pipeline(family)
    counts = _counts(meta)
    name = "transformer" if family == "flux-fill" else "unet"
    config = dict(getattr(meta, name).config)
    out = dict(family=family, counts=counts, load_start=os.getloadavg()[0])
    cls = type(getattr(meta, name))
    del meta
    t0 = time.perf_counter()
    if family == "flux-fill":
        # Two blocks of the real width (1 double-stream, 1 single-stream) instead of 19 + 38; hooks time each.
        out["blocks"] = dict(double=config["num_layers"], single=config["num_single_layers"])
        config.update(num_layers=1, num_single_layers=1)
    torch.manual_seed(0)
    model = cls.from_config(config).eval()
    out["build_s"] = time.perf_counter() - t0
    out["built_params"] = sum(p.numel() for p in model.parameters())
    spans: dict[str, float] = {}
    if family == "flux-fill":
        for key, block in (("double", model.transformer_blocks[0]), ("single", model.single_transformer_blocks[0])):
            # wall and CPU seconds of each block (one forward runs at a time, so process CPU time is the block's)
            block.register_forward_pre_hook(lambda *a, key=key: spans.update({key: -time.perf_counter(),
                                                                               key + "_cpu": -_cpu_s()}))
            block.register_forward_hook(lambda *a, key=key: spans.update({key: spans[key] + time.perf_counter(),
                                                                          key + "_cpu": spans[key + "_cpu"] + _cpu_s()}))
    with torch.device("meta"):
        pipe = tiny_inpaint_pipeline(0, size="real", family=family)
    res, kwargs = _denoiser_inputs(family, pipe, model)
    del pipe
    with torch.inference_mode():
        c0, t0 = _cpu_s(), time.perf_counter()
        model(**kwargs)
        out["call_s"], out["call_cpu_s"] = time.perf_counter() - t0, _cpu_s() - c0
    out.update(resolution=res, spans=spans, maxrss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
               load_end=os.getloadavg()[0], threads=torch.get_num_threads())
    if family == "flux-fill":
        rest = out["call_s"] - spans["double"] - spans["single"]
        out["rest_s"] = rest
        scale = rest + out["blocks"]["double"] * spans["double"] + out["blocks"]["single"] * spans["single"]
        out["step_s"] = scale
        rest_cpu = out["call_cpu_s"] - spans["double_cpu"] - spans["single_cpu"]
        out["step_cpu_s"] = (rest_cpu + out["blocks"]["double"] * spans["double_cpu"]
                             + out["blocks"]["single"] * spans["single_cpu"])
    else:
        out["step_s"], out["step_cpu_s"] = out["call_s"], out["call_cpu_s"]
    print("RESULT " + json.dumps(out), flush=True)


# The latent-blend families: which block lists repeat, and the shape key of their real count. Their 4-20B
# transformers do not fit this machine in fp32, so the child builds each with one block per list at the real
# width and scales the per-block time, as for FLUX Fill.
# Each entry: block list -> (the fixture's shape key, the transformer config's key).
BLEND_BLOCKS = {
    "qwen-image": {"transformer_blocks": ("num_layers", "num_layers")},
    "qwen-image-edit": {"transformer_blocks": ("num_layers", "num_layers")},
    "flux2-klein": {"transformer_blocks": ("num_layers", "num_layers"),
                    "single_transformer_blocks": ("num_single_layers", "num_single_layers")},
    "z-image": {"layers": ("num_layers", "n_layers")},
}


class _Captured(Exception):
    """Raised by the capture hook: the pipeline has built the denoiser's inputs, nothing after is needed."""


def _peak_gib() -> float:
    """The process's peak resident memory since the last :func:`_reset_peak` (Linux ``VmHWM``), in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM restarts from the current RSS


def real_blend_child(family: str) -> dict:
    """The real denoiser's inputs, made by the family's own pipeline; then one call of a one-block-per-kind
    transformer of the real width on them, each block timed, and the step scaled to the real block counts.

    The pipeline is the real configuration with one transformer block per kind and one text-encoder layer (its
    outputs have the real width and token count; only their values differ), the real VAE, at the working size.
    It runs until the transformer is called, a hook keeps the call's arguments, and everything but the
    transformer is freed before the timed call, so the peak memory is the transformer's call.
    """
    import gc

    from prefpaint_sdk import Inpainter

    blocks = BLEND_BLOCKS[family]
    with torch.device("meta"):
        meta = tiny_inpaint_pipeline(0, size="real", family=family)
    counts = _counts(meta)
    real_config = dict(meta.transformer.config)
    del meta
    out = dict(family=family, counts=counts, load_start=os.getloadavg()[0],
               blocks={lst: real_config[key] for lst, (_, key) in blocks.items()})
    # FLUX.2 klein's pipeline reads text-encoder layers 9, 18 and 27: it keeps 27 narrow ones
    # (the fixtures' byte-level tokenizer's vocabulary: Qwen-Image-Edit's vision-token ids follow from it)
    small = {key: 1 for key, _ in blocks.values()} | {"text_layers": 27 if family == "flux2-klein" else 1,
                                                       "text_intermediate": 64, "vision_depth": 1, "vocab_size": 262}
    t0 = time.perf_counter()
    pipe = tiny_inpaint_pipeline(0, size="real", family=family, **small)
    out["build_s"] = time.perf_counter() - t0
    inp = Inpainter(pipe, model_id=f"random-real-{family}")
    r = inp.resolution
    img, m = _square(r, (r // 4, 3 * r // 4, r // 4, 3 * r // 4))
    captured: dict = {}

    def capture(module, args, kwargs):
        captured.update(args=args, kwargs=kwargs)
        raise _Captured

    handle = pipe.transformer.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        _direct(inp, img, m, 0, 2, "a photo of a living room with a sofa and a lamp")
    except _Captured:
        pass
    handle.remove()
    model = pipe.transformer.eval()
    out["built_params"] = sum(p.numel() for p in model.parameters())
    del inp, pipe
    gc.collect()
    spans: dict[str, float] = {}
    for lst in blocks:
        block = getattr(model, lst)[0]
        block.register_forward_pre_hook(lambda *a, key=lst: spans.update({key: -time.perf_counter(),
                                                                          key + "_cpu": -_cpu_s()}))
        block.register_forward_hook(lambda *a, key=lst: spans.update({key: spans[key] + time.perf_counter(),
                                                                      key + "_cpu": spans[key + "_cpu"] + _cpu_s()}))
    _reset_peak()
    with torch.inference_mode():
        c0, t0 = _cpu_s(), time.perf_counter()
        model(*captured["args"], **captured["kwargs"])
        out["call_s"], out["call_cpu_s"] = time.perf_counter() - t0, _cpu_s() - c0
    out.update(resolution=r, spans=spans, maxrss_gib=_peak_gib(), load_end=os.getloadavg()[0],
               threads=torch.get_num_threads())
    out["rest_s"] = out["call_s"] - sum(spans[lst] for lst in blocks)
    rest_cpu = out["call_cpu_s"] - sum(spans[lst + "_cpu"] for lst in blocks)
    out["step_s"] = out["rest_s"] + sum(out["blocks"][lst] * spans[lst] for lst in blocks)
    out["step_cpu_s"] = rest_cpu + sum(out["blocks"][lst] * spans[lst + "_cpu"] for lst in blocks)
    return out


def real(families) -> None:
    rows = []
    for family in families:
        r = subprocess.run([sys.executable, __file__, "--real-child", family], capture_output=True, text=True)
        line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
        if r.returncode != 0 or not line:
            print(f"  {family}: failed (exit {r.returncode}): {r.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[0][7:]))
        print(f"  done: {family} ({load()})", file=sys.stderr, flush=True)
    print(f"\nmachine: {machine()}")
    print_real(rows)


def print_real(rows: list[dict]) -> None:
    """The tables of ``real``, from the children's RESULT objects (also for children run one by one)."""
    print("| family (real config, random weights, fp32, CPU) | working size | one denoiser call: wall (s) | CPU time, "
          "all threads (s) | how | peak RSS of the process (GiB) | load at start/end |")
    print("|---|---|---|---|---|---|---|")
    for o in rows:
        if o["family"] == "flux-fill":
            s = o["spans"]
            how = (f"measured (wall / CPU s): double-stream block {s['double']:.1f} / {s['double_cpu']:.1f}, "
                   f"single-stream block {s['single']:.1f} / {s['single_cpu']:.1f}, embedders + output "
                   f"{o['rest_s']:.1f} s wall; step = rest + {o['blocks']['double']} × double + "
                   f"{o['blocks']['single']} × single (1+1-block model, {o['built_params'] / 1e6:.0f}M params)")
        elif o["family"] in BLEND_BLOCKS:
            s = o["spans"]
            each = ", ".join(f"{lst} {s[lst]:.1f} / {s[lst + '_cpu']:.1f}" for lst in o["blocks"])
            scale = " + ".join(f"{n} × {lst}" for lst, n in o["blocks"].items())
            how = (f"measured on the pipeline's own inputs (wall / CPU s): {each}, the rest {o['rest_s']:.1f} s wall;"
                   f" step = rest + {scale} (one block per kind, {o['built_params'] / 1e6:.0f}M params)")
        else:
            how = "measured: the whole denoiser, one call, batch 1"
        print(f"| {o['family']} | {o['resolution']}² | {o['step_s']:.1f} | {o['step_cpu_s']:.1f} | {how} "
              f"| {o['maxrss_gib']:.1f} "
              f"| {o['load_start']:.1f} / {o['load_end']:.1f} |")
    print("\n| family | component | parameters | fp32 (GiB) | bf16 (GiB) |")
    print("|---|---|---|---|---|")
    for o in rows:
        for name, n in o["counts"].items():
            print(f"| {o['family']} | {name} | {n / 1e6:,.1f}M | {n * 4 / 2**30:.2f} | {n * 2 / 2**30:.2f} |")
        n = sum(o["counts"].values())
        big = max(o["counts"].values())
        print(f"| {o['family']} | **all** (largest {big * 2 / 2**30:.2f} GiB bf16) | {n / 1e6:,.1f}M | "
              f"{n * 4 / 2**30:.2f} | {n * 2 / 2**30:.2f} |")


# --- crop-to-mask on a big image ---------------------------------------------------------------------------

def crop(steps: int, repeats: int, side: int = 2048) -> None:
    inp = Inpainter(tiny_inpaint_pipeline(seed=0, size="mid", family="flux-fill"), model_id="random-mid-flux-fill")
    c = side // 2
    img, m = _square(side, (c - 128, c + 128, c - 128, c + 128))
    t = compare({"crop": lambda: inp(img, m, prompt="a photo", seed=0, steps=steps)}, repeats=repeats)
    t0 = time.perf_counter()
    _direct(inp, img, m, 0, steps, "a photo")  # once: minutes on this CPU
    full = time.perf_counter() - t0
    print(f"\nmachine: {machine()}; {load()}")
    print(f"| FLUX Fill mid, {side}² image, 256² hole, {steps} steps | Inpainter crop-to-mask (s) | diffusers at "
          f"{side}² (s) | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| | {t['crop']:.2f} (median of {repeats}, after a warm-up) | {full:.1f} (once) | {t['crop'] / full:.4f} "
          "| <= 0.1 |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="overhead,real,crop")
    ap.add_argument("--families", default="sd,sdxl,flux-fill")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--real-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.real_child:
        return real_child(args.real_child)
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    families = args.families.split(",")
    parts = args.parts.split(",")
    if "overhead" in parts:
        overhead(families, args.steps, args.repeats)
    if "crop" in parts:
        crop(args.steps, args.repeats)
    if "real" in parts:
        real(families)


if __name__ == "__main__":
    main()
