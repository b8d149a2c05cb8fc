"""A "pretrained" tiny SD inpainting pipeline: the random tiny SD fixture whose UNet was trained briefly with the
ordinary denoising (epsilon) objective on a synthetic image distribution, offline and deterministic.

Why it exists: DiffusionNFT and online Diffusion-DPO train a denoising surrogate on re-noised samples; that
surrogate follows the reward only where the model's forward process resembles its sampler's path, which a
random UNet's does not (benchmarks/RESULTS.md, "NFT and online DPO on a pretrained tiny SD"). Real users start
from a pretrained model; this is the smallest stand-in for one.

The data (:func:`smooth_fields`): smooth colour fields (a random linear gradient plus a few Gaussian blobs),
each with a random box mask, half of them inverted (outpainting), fed to the 9-channel UNet as SD-inpainting is
trained: ``[noisy latents, mask at latent size, latents of the masked image]``, the empty prompt's embedding.
The VAE and text encoder stay the random fixture's; only the UNet learns.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["smooth_fields", "box_masks", "write_smooth_field_images", "pretrained_tiny_inpaint_pipeline",
           "pretrained_tiny_flux_fill", "denoising_loss", "flow_matching_loss", "sample_stats"]

PRETRAIN_STEPS = 200
PRETRAIN_SIZE = 32  # the cpu-smoke preset's working size


def smooth_fields(n: int, size: int = PRETRAIN_SIZE, seed: int = 0):
    """``n`` smooth RGB images in [0, 1], shape (n, 3, size, size): a random linear colour gradient plus
    three Gaussian blobs of random colour, centre and width (float32 tensor)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ax = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    base = torch.rand(n, 3, 1, 1, generator=g)
    slope = (torch.rand(n, 3, 2, generator=g) - 0.5)
    img = base + slope[..., 0, None, None] * (xx - 0.5) + slope[..., 1, None, None] * (yy - 0.5)
    for _ in range(3):
        c = torch.rand(n, 2, generator=g)
        w = 0.08 + 0.2 * torch.rand(n, generator=g)
        col = torch.rand(n, 3, generator=g) - 0.5
        d2 = (xx - c[:, 0, None, None]) ** 2 + (yy - c[:, 1, None, None]) ** 2
        img = img + col[:, :, None, None] * torch.exp(-d2 / (2 * w[:, None, None] ** 2))[:, None]
    return img.clamp(0, 1)


def box_masks(n: int, size: int = PRETRAIN_SIZE, seed: int = 0):
    """``n`` masks (n, 1, size, size), 1 = fill: a random box whose sides are 1/4 to 3/4 of the image's,
    inverted (an outpainting mask) for half of them."""
    import torch

    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(n, 1, size, size)
    for i in range(n):
        h, w = (int(v) for v in torch.randint(size // 4, 3 * size // 4 + 1, (2,), generator=g))
        y = int(torch.randint(0, size - h + 1, (1,), generator=g))
        x = int(torch.randint(0, size - w + 1, (1,), generator=g))
        m[i, :, y:y + h, x:x + w] = 1
        if torch.rand(1, generator=g) < 0.5:
            m[i] = 1 - m[i]
    return m


def write_smooth_field_images(root: str | os.PathLike, n: int = 24, size: int = 64, seed: int = 1) -> Path:
    """``root/images/NN.png``: ``n`` :func:`smooth_fields` images (seed ``seed``; the fixture trains on seed
    ``2``'s pool), an alignment data folder from the pretrained fixture's own distribution."""
    import numpy as np
    from PIL import Image

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    imgs = (smooth_fields(n, size, seed).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(root / "images" / f"{i:02d}.png")
    return root


def _encode(vae, images):
    import torch

    with torch.no_grad():
        return vae.encode(images).latent_dist.mean * vae.config.scaling_factor


def _denoising_data(pipe, n: int, seed: int):
    """(clean latents, mask at latent size, masked-image latents) of ``n`` (field, box) pairs."""
    import torch

    img = smooth_fields(n, seed=seed) * 2 - 1
    mask = box_masks(n, seed=seed + 1)
    f = pipe.vae_scale_factor
    lat = torch.cat([_encode(pipe.vae, img[i:i + 64]) for i in range(0, n, 64)])
    masked = img * (mask < 0.5)
    mlat = torch.cat([_encode(pipe.vae, masked[i:i + 64]) for i in range(0, n, 64)])
    mask_lat = torch.nn.functional.interpolate(mask, size=(img.shape[-2] // f, img.shape[-1] // f))
    return lat, mask_lat, mlat


def denoising_loss(pipe, n: int = 128, seed: int = 10_000, draws: int = 4) -> float:
    """The UNet's mean epsilon-prediction error on ``n`` held-out (field, box) pairs, ``draws`` (t, noise) each."""
    import torch

    lat, mask_lat, mlat = _denoising_data(pipe, n, seed)
    emb = _empty_prompt(pipe, n)
    g = torch.Generator().manual_seed(seed)
    sched = pipe.scheduler
    total = 0.0
    with torch.no_grad():
        for _ in range(draws):
            t = torch.randint(0, sched.config.num_train_timesteps, (n,), generator=g)
            eps = torch.randn(lat.shape, generator=g)
            x = sched.add_noise(lat, eps, t)
            pred = pipe.unet(torch.cat([x, mask_lat, mlat], 1), t, encoder_hidden_states=emb).sample
            total += float(((pred - eps) ** 2).mean()) / draws
    return total


def _empty_prompt(pipe, n: int):
    import torch

    with torch.no_grad():
        emb, _ = pipe.encode_prompt([""], "cpu", 1, False)
    return emb.expand(n, -1, -1)


def _pretrain(pipe, steps: int, seed: int, batch: int = 16, lr: float = 1e-3, pool: int = 512) -> None:
    import torch

    # SD's scaling factor makes the data's latents unit-variance (0.18215 for its VAE); the random VAE's
    # latents of these fields are ~20x smaller, which would make "predict the noise from the input" trivial.
    pipe.vae.register_to_config(scaling_factor=1.0)
    raw = _denoising_data(pipe, pool, seed)[0]
    pipe.vae.register_to_config(scaling_factor=round(1.0 / float(raw.std()), 3))
    lat, mask_lat, mlat = _denoising_data(pipe, pool, seed)
    emb = _empty_prompt(pipe, batch)
    sched, unet = pipe.scheduler, pipe.unet

    def batch_loss(g):
        idx = torch.randint(0, pool, (batch,), generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,), generator=g)
        eps = torch.randn(lat[idx].shape, generator=g)
        x = sched.add_noise(lat[idx], eps, t)
        pred = unet(torch.cat([x, mask_lat[idx], mlat[idx]], 1), t, encoder_hidden_states=emb).sample
        return ((pred - eps) ** 2).mean()

    _fit(unet, steps, lr, seed, batch_loss)


def _fit(model, steps: int, lr: float, seed: int, batch_loss) -> None:
    """``steps`` AdamW steps (gradients clipped at norm 1) on ``batch_loss(generator)``, every draw from one
    generator seeded by ``seed``; the model is left frozen in eval mode."""
    import torch

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        loss = batch_loss(g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    model.requires_grad_(False)


def _cached(folder: Path | None, family: str, build, **load_kwargs):
    """Load the pipeline saved in ``folder``, or ``build()`` it (outside the global RNG stream) and save it there
    (safetensors, written to a temporary folder and renamed, so a reader never sees half a model)."""
    import torch

    from ..devices import quiet_loading

    if folder is not None and (folder / "model_index.json").is_file():
        from ..engines import engine_class

        with quiet_loading():  # the family's pipeline class, named by its engine (engines/ names pipelines)
            pipe = engine_class(family).pipeline_class().from_pretrained(folder, use_safetensors=True, **load_kwargs)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    with torch.random.fork_rng(devices=[]):
        pipe = build()
    if folder is not None:
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        with quiet_loading():
            pipe.save_pretrained(tmp, safe_serialization=True)
        os.replace(tmp, folder)
    return pipe


def pretrained_tiny_inpaint_pipeline(seed: int = 2, steps: int = PRETRAIN_STEPS,
                                     cache_dir: str | os.PathLike | None = None):
    """The tiny SD inpainting pipeline of ``seed`` (:func:`.pipelines.tiny_inpaint_pipeline`) with its UNet
    trained ``steps`` AdamW steps (batch 16, lr 1e-3) on the epsilon objective over :func:`smooth_fields`.

    Deterministic for a seed (one thread or many: CPU kernels). With ``cache_dir`` the result is saved there
    and later calls load it instead of training.
    """
    from .pipelines import tiny_inpaint_pipeline

    def build():
        pipe = tiny_inpaint_pipeline(seed)
        _pretrain(pipe, steps, seed)
        return pipe

    folder = Path(cache_dir) / f"pretrained-tiny-sd-s{seed}-n{steps}" if cache_dir is not None else None
    return _cached(folder, "sd", build, safety_checker=None,
                   requires_safety_checker=False)


# --- FLUX Fill: the same data, the rectified-flow objective ----------------------------------------------------

FLUX_PRETRAIN_STEPS = 200


def _flux_data(pipe, n: int, seed: int):
    """``n`` (field, box) pairs as ``FluxFillPipeline`` feeds its transformer (``prepare_latents``,
    ``prepare_mask_latents``): packed clean latents (the VAE mean, ``(z - shift) * scale``), the packed
    masked-image latents' mean and std (the pipeline draws a sample: ``retrieve_latents``), the packed mask."""
    import torch

    img = smooth_fields(n, seed=seed) * 2 - 1
    mask = box_masks(n, seed=seed + 1)
    vae = pipe.vae
    f = int(pipe.vae_scale_factor)
    h = w = img.shape[-1] // f
    shift, scale = vae.config.shift_factor, vae.config.scaling_factor

    def encode(x):
        with torch.no_grad():
            dists = [vae.encode(x[i:i + 64]).latent_dist for i in range(0, n, 64)]
        mean, std = torch.cat([d.mean for d in dists]), torch.cat([d.std for d in dists])
        return pipe._pack_latents((mean - shift) * scale, n, mean.shape[1], h, w), \
            pipe._pack_latents(std * scale, n, std.shape[1], h, w)

    x0 = encode(img)[0]
    masked_mean, masked_std = encode(img * (1 - mask))
    m = mask[:, 0].view(n, h, f, w, f).permute(0, 2, 4, 1, 3).reshape(n, f * f, h, w)
    return x0, masked_mean, masked_std, pipe._pack_latents(m, n, f * f, h, w)


def _flux_velocity_loss(pipe, data, idx, g, text):
    """The mean squared error of the transformer's velocity against ``noise - x0`` at ``x_t = (1 - t) x0 +
    t noise``, ``t ~ U(0, 1)``, on samples ``idx`` of ``data`` (with grad where the transformer has it)."""
    import torch

    from ..engines.flow_rollout import predict_velocity

    x0, mmean, mstd, mask = data
    b = len(idx)
    x0 = x0[idx]
    t = torch.rand(b, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
    cond = torch.cat([mmean[idx] + mstd[idx] * torch.randn(x0.shape, generator=g), mask[idx]], dim=-1)
    # the distilled guidance is an input: any value a sampler may pass (the trainer's 1, the pipeline's 30)
    gs = torch.rand(b, generator=g) * 29 + 1
    side = int(round(x0.shape[1] ** 0.5))
    ids = pipe._prepare_latent_image_ids(b, side, side, "cpu", torch.float32)
    pred = predict_velocity(pipe.transformer, xt, cond, t * 1000, gs, text[:b], ids)
    return ((pred.float() - (noise - x0)) ** 2).mean()


def flow_matching_loss(pipe, n: int = 128, seed: int = 10_000, draws: int = 4) -> float:
    """The transformer's mean velocity error on ``n`` held-out (field, box) pairs, ``draws`` (t, noise) each."""
    import torch

    from ..engines.flow_rollout import encode_prompts

    data = _flux_data(pipe, n, seed)
    text = encode_prompts(pipe, "", n, "cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return sum(float(_flux_velocity_loss(pipe, data, torch.arange(n), g, text)) for _ in range(draws)) / draws


def _pretrain_flux(pipe, steps: int, seed: int, batch: int = 16, lr: float = 1e-3, pool: int = 512) -> None:
    import torch

    from ..engines.flow_rollout import encode_prompts

    # As for SD: shift and scale the VAE's latents of the data to zero mean and unit variance (what FLUX's
    # shift_factor and scaling_factor do for its VAE), measured on the data's VAE means.
    vae = pipe.vae
    vae.register_to_config(shift_factor=0.0, scaling_factor=1.0)
    raw = _flux_data(pipe, pool, seed)[0]
    vae.register_to_config(shift_factor=round(float(raw.mean()), 4), scaling_factor=round(1.0 / float(raw.std()), 3))
    data = _flux_data(pipe, pool, seed)
    text = encode_prompts(pipe, "", batch, "cpu")  # the empty prompt, at the pipeline's 512 T5 tokens
    _fit(pipe.transformer, steps, lr, seed,
         lambda g: _flux_velocity_loss(pipe, data, torch.randint(0, pool, (batch,), generator=g), g, text))


def pretrained_tiny_flux_fill(seed: int = 2, steps: int = FLUX_PRETRAIN_STEPS,
                              cache_dir: str | os.PathLike | None = None):
    """The tiny FLUX Fill pipeline of ``seed`` with its transformer trained ``steps`` AdamW steps (batch 16, lr
    1e-3) on the rectified-flow objective (:func:`flow_matching_loss`) over :func:`smooth_fields` and
    :func:`box_masks`, the empty prompt, the distilled guidance drawn from [1, 30]. Deterministic; cached as
    :func:`pretrained_tiny_inpaint_pipeline` is."""
    from .pipelines import tiny_inpaint_pipeline

    def build():
        pipe = tiny_inpaint_pipeline(seed, family="flux-fill")
        _pretrain_flux(pipe, steps, seed)
        return pipe

    folder = Path(cache_dir) / f"pretrained-tiny-flux-fill-s{seed}-n{steps}" if cache_dir is not None else None
    return _cached(folder, "flux-fill", build)


def sample_stats(pipe, n: int = 16, steps: int = 4, seed: int = 20_000) -> dict:
    """How close the pipeline's inpainted latents are to the data's, in the latent space the UNet models, inside
    the hole, for ``n`` held-out (field, box) pairs sampled with ``steps`` DDIM steps (eta 0): ``error``, the
    mean squared distance to the true image's latents; ``roughness``, the mean squared difference between
    neighbouring latents; ``variance``; and the same two for the data (``data_roughness``, ``data_variance``)."""
    import torch

    img = smooth_fields(n, seed=seed) * 2 - 1
    mask = box_masks(n, seed=seed + 1)
    with torch.no_grad():
        out = pipe(prompt=[""] * n, image=(img + 1) / 2, mask_image=mask, height=img.shape[-1], width=img.shape[-1],
                   num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                   output_type="latent").images.float()
    data = _encode(pipe.vae, img)
    m = torch.nn.functional.interpolate(mask, size=out.shape[-2:]) > 0.5

    def rough(x):
        both = (m[..., 1:] & m[..., :-1]).expand_as(x[..., 1:])
        return float(((x[..., 1:] - x[..., :-1]) ** 2)[both].mean())

    inside = m.expand_as(out)
    return dict(error=float(((out - data) ** 2)[inside].mean()), roughness=rough(out),
                variance=float(out[inside].var()), data_roughness=rough(data), data_variance=float(data[inside].var()))
