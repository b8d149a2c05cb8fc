"""Which way does one update of each algorithm move the reward? The cosine between an algorithm's update and the
exact gradient of the same samples' mean reward, on the tiny SD inpainting fixture (issue 20: why NFT and online
DPO do not learn there).

The exact gradient re-runs the very same DDIM trajectories (same generators: the same samples, checked) with
autograd through the UNet, the DDIM steps, the VAE decoder and the paste-back (reparameterisation), and
backpropagates the mean brightness in the hole. The update is minus the gradient of the algorithm's own loss on
one iteration of its own step (the trainer's path: sampling, scoring, advantages or optimality probabilities or
pairs, micro-batches), captured at the optimizer step instead of applied. A sign error, or a surrogate that points
away from the reward, gives a negative cosine; a policy-gradient estimate from 64 samples is noisy, so a right
one is small and positive (FLUX GRPO: 0.09-0.28, tests/test_align_learning_flux.py).

    python benchmarks/exp_nft_direction.py --seeds 0,1,2 --algos ppo,nft,dpo        # ~1 min per row here
    python benchmarks/exp_nft_direction.py --seeds 0 --algos nft --set adaptive_weight=false --set eta=0.001
    python benchmarks/exp_nft_direction.py --pipeline pretrained     # the denoiser of prefpaint_sdk.testing.pretrained
    python benchmarks/exp_nft_direction.py --family flux-fill --pipeline pretrained --algos nft,dpo

``--pipeline pretrained`` uses :func:`prefpaint_sdk.testing.pretrained.pretrained_tiny_inpaint_pipeline` (built
once into ``--cache``) and data from its own image distribution (smooth colour fields) instead of noise images
(``--data`` picks either for either pipeline). ``--family flux-fill`` does the same for the tiny FLUX Fill
(:func:`prefpaint_sdk.testing.pretrained.pretrained_tiny_flux_fill`, cpu-smoke with FLUX Fill's values): the
exact gradient re-runs the flow rollout with the sampler's own arguments, recorded from the step.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _experiment import experiment_setup  # noqa: E402

PIPE_SEED = 2



def cosine(algo: str, seed: int, data: Path, out: Path, overrides: dict, pipe=None, family: str = "sd") -> dict:
    import torch

    from prefpaint_sdk.align.algorithms.base import StepOutcome
    from prefpaint_sdk.align.config import load_config
    from prefpaint_sdk.align.evaluation import paste_back
    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.engines import ddim_rollout as dr
    from prefpaint_sdk.reward.constraints import brightness_in_mask
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    over = dict(algo=algo, seed=seed, log_with="none", save_every=0, eval_every=0, prompts_per_iter=4,
                samples_per_prompt=16, rollout_batch_size=64, train_batch_size=64)
    if algo == "dpo":
        over["online"] = True
    over.update(overrides)
    cfg = load_config("cpu-smoke", overrides=over, family=family)
    pipe = pipe if pipe is not None else tiny_inpaint_pipeline(PIPE_SEED, family=family)
    al = Aligner(pipe, "brightness", cfg, data, out, device="cpu")
    seen: dict = {}
    sample = al.sample

    def recording(items, seeds, k, **kw):
        seen.update(items=items, seeds=seeds, k=k)
        return sample(items, seeds, k, **kw)

    grads = []

    def capture():  # the step's gradient, not applied
        grads.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                                for p in al.params.values()]).clone())
        al.optimizer.zero_grad(set_to_none=True)
        return StepOutcome(norm=float(grads[-1].norm()), applied=False)

    al.sample, al.optimizer_step = recording, capture
    engine_rollout = al.engine.rollout

    def recording_rollout(*a, **kw):  # the sampler's own arguments, for the exact re-run
        seen.setdefault("rollout_kw", kw)
        return engine_rollout(*a, **kw)

    al.engine.rollout = recording_rollout
    rewards = []
    score = al.score

    def keep(images, masks):
        rb = score(images, masks)
        rewards.append(rb.scores)
        return rb

    al.score = keep
    al.algorithm.step(al, 0)
    update = -torch.stack(grads).sum(0)

    items, seeds, k = seen["items"], seen["seeds"], seen["k"]
    pipe = al.engine.pipeline
    cond = al.engine.encode_conditions([i.image for i in items], [i.mask for i in items], al.resolution,
                                       al.resolution, device="cpu", dtype=pipe.vae.dtype)
    groups = torch.tensor([g for g in range(len(items)) for _ in range(k)])
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    pos, neg = al._prompts(len(groups))
    with torch.enable_grad():
        if family == "flux-fill":
            from prefpaint_sdk.engines import flow_rollout as fr

            kw = seen["rollout_kw"]
            ro = fr.rollout.__wrapped__(pipe, cond, groups.tolist(), gens, num_steps=cfg.num_steps,
                                        guidance_scale=cfg.guidance_scale, prompt_embeds=pos, model=al.raw_model,
                                        noise_level=kw["sde_noise"], window=kw["window"], decode=False)
            images = fr.decode_latents.__wrapped__(pipe, ro.final_latents, al.resolution, al.resolution)
        else:
            ro = dr.rollout.__wrapped__(pipe, cond, groups.tolist(), gens, num_steps=cfg.num_steps, eta=cfg.eta,
                                        guidance_scale=cfg.guidance_scale, prompt_embeds=pos, negative_embeds=neg,
                                        unet=al.raw_model, decode=False)
            images = dr.decode_latents.__wrapped__(pipe, ro.final_latents)
        init01 = ((cond.init_image + 1) / 2).clamp(0, 1)
        mask = (cond.mask_pixels >= 0.5)[groups]
        r = brightness_in_mask(paste_back(images.float(), init01[groups], mask), mask[:, 0])
        al.raw_model.zero_grad(set_to_none=True)
        r.mean().backward()
    if not torch.allclose(r.detach(), rewards[0], atol=1e-5):
        raise RuntimeError("the re-run trajectories are not the trained samples")
    exact = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in al.params.values()])
    cos = float(update @ exact / (update.norm() * exact.norm()))
    return dict(algo=algo, seed=seed, overrides=overrides, cosine=round(cos, 4), samples=len(seeds))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--algos", default="ppo,nft,dpo")
    p.add_argument("--pipeline", choices=("random", "pretrained"), default="random")
    p.add_argument("--family", choices=("sd", "flux-fill"), default="sd")
    p.add_argument("--data", choices=("noise", "fields"), default=None,
                   help="noise images, or the pretrained fixture's smooth fields (default: the pipeline's own)")
    p.add_argument("--pretrain-steps", type=int, default=None,
                   help="the pretrained fixture's training steps (0: its random UNet, with its VAE scaling)")
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "prefpaint_pretrained_tiny"))
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a config override (JSON value)")
    args = p.parse_args(argv)
    overrides, tmp = experiment_setup(args.set, "exp_nft_direction_")
    from _helpers_align import make_data

    from prefpaint_sdk.testing.pretrained import (
        FLUX_PRETRAIN_STEPS,
        PRETRAIN_STEPS,
        pretrained_tiny_flux_fill,
        pretrained_tiny_inpaint_pipeline,
        write_smooth_field_images,
    )

    kind = args.data or ("fields" if args.pipeline == "pretrained" else "noise")
    data = write_smooth_field_images(tmp / "data", n=24) if kind == "fields" else make_data(tmp / "data", n=24)
    for seed in (int(s) for s in args.seeds.split(",")):
        for algo in args.algos.split(","):
            # a fresh pipeline per row: the step under test must not see weights another row changed
            flux = args.family == "flux-fill"
            build = pretrained_tiny_flux_fill if flux else pretrained_tiny_inpaint_pipeline
            default_steps = FLUX_PRETRAIN_STEPS if flux else PRETRAIN_STEPS
            steps = default_steps if args.pretrain_steps is None else args.pretrain_steps
            pipe = build(PIPE_SEED, steps, cache_dir=args.cache) if args.pipeline == "pretrained" else None
            row = cosine(algo, seed, data, tmp / f"{algo}_{seed}", overrides, pipe, args.family)
            print(json.dumps(dict(row, family=args.family, pipeline=args.pipeline, data=kind,
                                  pretrain_steps=args.pretrain_steps)),
                  flush=True)


if __name__ == "__main__":
    main()
