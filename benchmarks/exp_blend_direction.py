"""Why a latent-blend family learns slowly: one GRPO iteration on a tiny fixture, measured (issue 21).

For a family (``qwen-image``, ``flux2-klein``) at cpu-smoke's values this prints, for each seed:

* the cosine between the update of one GRPO iteration (the trainer's own path, captured at the optimizer step)
  and the exact gradient of the same samples' mean reward. The exact gradient re-runs the very same blend
  trajectories (same generators, same window, checked) with autograd through the transformer, the SDE steps,
  the blend, the VAE decoder and the paste-back (as ``exp_nft_direction.py`` does for SD);
* the loss diagnostics (clip fraction, approx KL), the update's norm relative to the weights' norm, and the
  first-order reward change of AdamW's first step (``lr * exact . sign(update)``);
* what the reward sees: the within-group reward std (GRPO's signal) and the share of its variance that the
  starting noise alone gives (every step an ODE step: a spread no trained step is credited with), the share of latent elements the
  log-probability counts, the latents' scale, and the exact gradient's norm with respect to the final
  latents in the hole (how much the reward moves per unit of masked latent);
* seconds for the rollout and for the update.

    python benchmarks/exp_blend_direction.py --family flux2-klein --seeds 0,1
    python benchmarks/exp_blend_direction.py --family qwen-image --seeds 0,1 --set sde_noise=0.7

``--learn N`` instead trains N iterations (the learning tests' run) and prints the held-out gain over seed noise:

    python benchmarks/exp_blend_direction.py --family flux2-klein --seeds 0,1,2 --learn 60 --algo grpo
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _experiment import experiment_setup  # noqa: E402


def measure(family: str, seed: int, data: Path, out: Path, overrides: dict, pipe_seed: int = 2) -> dict:
    import torch

    from prefpaint_sdk.align.algorithms.base import StepOutcome
    from prefpaint_sdk.align.config import load_config
    from prefpaint_sdk.align.evaluation import paste_back
    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.engines import blend_rollout as br
    from prefpaint_sdk.reward.constraints import brightness_in_mask
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    over = dict(algo="grpo", seed=seed, log_with="none", save_every=0, eval_every=0)
    over.update(overrides)
    cfg = load_config("cpu-smoke", overrides=over, family=family)
    al = Aligner(tiny_inpaint_pipeline(pipe_seed, family=family), "brightness", cfg, data, out, device="cpu")
    seen: dict = {}
    sample = al.sample
    clock = {"rollout": 0.0}

    def recording(items, seeds, k, **kw):
        seen.update(items=items, seeds=seeds, k=k, window=kw.get("window"))
        t0 = time.perf_counter()
        res = sample(items, seeds, k, **kw)
        clock["rollout"] += time.perf_counter() - t0
        seen["ro"] = res[0]
        return res

    grads = []

    def capture():
        grads.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                                for p in al.params.values()]).clone())
        al.optimizer.zero_grad(set_to_none=True)
        return StepOutcome(norm=float(grads[-1].norm()), applied=False)

    al.sample, al.optimizer_step = recording, capture
    rewards = []
    score = al.score

    def keep(images, masks, groups=None):
        rb = score(images, masks, groups)
        rewards.append(rb.scores)
        return rb

    al.score = keep
    t0 = time.perf_counter()
    metrics = al.algorithm.step(al, 0)
    total = time.perf_counter() - t0
    update = -torch.stack(grads).sum(0)

    items, seeds, k, window = seen["items"], seen["seeds"], seen["k"], seen["window"]
    engine, ro0 = al.engine, seen["ro"]
    pipe = engine.pipeline
    cond = engine.encode_conditions([i.image for i in items], [i.mask for i in items], al.resolution, al.resolution,
                                    device="cpu", dtype=pipe.vae.dtype)
    groups = torch.tensor([g for g in range(len(items)) for _ in range(k)])
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    pos, neg = al._prompts(len(groups))
    with torch.enable_grad():
        ro = br.rollout.__wrapped__(engine, cond, groups, gens, num_steps=cfg.num_steps,
                                    strength=engine.default_strength, guidance_scale=cfg.guidance_scale,
                                    prompt_embeds=pos, negative_embeds=neg, model=al.raw_model,
                                    noise_level=cfg.sde_noise, window=window, decode=False)
        final = ro.final_latents
        final.retain_grad()
        images = engine.blend_decode(final, al.resolution, al.resolution)
        init01 = ((cond.init_image + 1) / 2).clamp(0, 1)
        mask = (cond.mask_pixels >= 0.5)[groups]
        r = brightness_in_mask(paste_back(images.float(), init01[groups], mask), mask[:, 0])
        al.raw_model.zero_grad(set_to_none=True)
        r.mean().backward()
    if not torch.allclose(r.detach(), rewards[0], atol=1e-5):
        raise RuntimeError("the re-run trajectories are not the trained samples")
    with torch.no_grad():  # the same starting noise, every step an ODE step: the reward spread no step explains
        ode = br.rollout.__wrapped__(engine, cond, groups, [torch.Generator().manual_seed(s) for s in seeds],
                                     num_steps=cfg.num_steps, strength=engine.default_strength,
                                     guidance_scale=cfg.guidance_scale, prompt_embeds=pos, negative_embeds=neg,
                                     model=al.raw_model, noise_level=0.0)
        r_ode = brightness_in_mask(paste_back(ode.images.float(), init01[groups], mask), mask[:, 0])
    exact = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in al.params.values()])
    cos = float(update @ exact / (update.norm() * exact.norm()))
    weights = torch.cat([p.detach().flatten() for p in al.params.values()])
    region = ro0.region
    dz = final.grad * len(groups)  # d r_i / d final latents of sample i
    def group_var(x):
        return float(torch.stack([x[groups == g].var() for g in groups.unique()]).mean())

    g_std = group_var(rewards[0]) ** 0.5
    # AdamW's first step is lr * sign(gradient) per weight: the reward change it buys to first order
    adam_gain = cfg.learning_rate * float(exact @ torch.sign(update))
    return dict(
        family=family, seed=seed, overrides=overrides, cosine=round(cos, 4),
        clip_fraction=round(metrics.get("clip_fraction", float("nan")), 4),
        approx_kl=float(f"{metrics.get('approx_kl', float('nan')):.3g}"),
        old_logprob_mean=float(f"{float(ro0.log_probs.mean()):.4g}"),
        update_norm=float(f"{float(update.norm()):.3g}"), exact_norm=float(f"{float(exact.norm()):.3g}"),
        weight_norm=float(f"{float(weights.norm()):.3g}"), params=int(weights.numel()),
        reward_mean=float(f"{float(rewards[0].mean()):.4g}"), group_reward_std=float(f"{float(g_std):.3g}"),
        start_noise_share=round(group_var(r_ode) / group_var(rewards[0]), 3),
        adam_step_gain=float(f"{adam_gain:.3g}"), region_share=round(float(region.mean()), 3), latent_shape=list(final.shape[1:]),
        latent_std_hole=float(f"{float(final.detach()[region.expand_as(final) > 0].std()):.3g}"),
        dreward_dlatent_hole=float(f"{float(dz.norm(dim=(1, 2)).mean()):.3g}"),
        trained_steps=list(window) if window is not None else None, n_steps_run=len(ro.timesteps),
        sigmas=[round(float(s), 3) for s in ro.sigmas],
        seconds_rollout=round(clock["rollout"], 1), seconds_iteration=round(total, 1),
    )


def learn(family: str, algo: str, seed: int, iterations: int, data: Path, out: Path, overrides: dict,
          pipe_seed: int = 2) -> dict:
    """The learning tests' run (tests/test_align_learning_blend.py): cpu-smoke, ``iterations``, 4 samples per
    held-out pair, evaluated at the start and the end; the gain in units of the held-out seed noise."""
    from _helpers_align import heldout_seed_noise

    from prefpaint_sdk.align.config import load_config
    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    over = dict(seed=seed, algo=algo, iterations=iterations, eval_every=iterations, save_every=0, eval_samples=4,
                log_with="none", **overrides)
    cfg = load_config("cpu-smoke", overrides=over, family=family)
    al = Aligner(tiny_inpaint_pipeline(pipe_seed, family=family), "brightness", cfg, data, out, device="cpu")
    t0 = time.perf_counter()
    noise = heldout_seed_noise(al)
    res = al.train()
    gain = res.evals[-1]["mean_reward"] - res.evals[0]["mean_reward"]
    return dict(family=family, algo=algo, seed=seed, iterations=iterations, overrides=overrides,
                gain=float(f"{gain:.4g}"), seed_noise=float(f"{noise:.3g}"), gain_over_noise=round(gain / noise, 2),
                win_rate=res.evals[-1]["win_rate"], seconds=round(time.perf_counter() - t0))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="flux2-klein")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--pipe-seed", type=int, default=2)
    p.add_argument("--learn", type=int, default=0, metavar="N", help="instead: train N iterations, report the gain")
    p.add_argument("--algo", default="grpo", help="with --learn")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a config override (JSON value)")
    args = p.parse_args(argv)
    overrides, tmp = experiment_setup(args.set, "exp_blend_direction_")
    from _helpers_align import make_data
    data = make_data(tmp / "data", n=12)
    for seed in (int(s) for s in args.seeds.split(",")):
        if args.learn:
            print(json.dumps(learn(args.family, args.algo, seed, args.learn, data, tmp / f"learn_{seed}", overrides,
                                   args.pipe_seed)), flush=True)
            continue
        print(json.dumps(measure(args.family, seed, data, tmp / f"{args.family}_{seed}", overrides, args.pipe_seed)),
              flush=True)


if __name__ == "__main__":
    main()
