"""Facts about the installation, and an end-to-end smoke test that needs no weights or network."""

from __future__ import annotations

import importlib.metadata as md
import platform
import tempfile
import time

import numpy as np

from .errors import PrefPaintError

__all__ = ["environment_report", "smoke_test", "prefetch_model", "is_model_cached"]

_PACKAGES = ["prefpaint", "torch", "diffusers", "transformers", "accelerate", "peft", "safetensors",
             "huggingface_hub", "open3d", "trimesh", "kornia", "typer", "rich", "imageio"]


def environment_report() -> dict[str, str]:
    """Versions, the device "auto" picks, the cache folder and which default models are cached."""
    from .devices import resolve_device, resolve_dtype
    from .hub import BASE_MODEL, DEFAULT_MODEL, DEFAULT_REWARD_MODEL, cache_dir, is_offline

    facts = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            facts[name] = md.version(name)
        except md.PackageNotFoundError:
            facts[name] = "not installed"
    import torch

    dev = resolve_device("auto")
    desc = dev.type
    if dev.type == "cuda":
        desc += f" ({torch.cuda.get_device_name(dev)})"
    facts["device (auto)"] = f"{desc}, {str(resolve_dtype('auto', dev)).replace('torch.', '')}"
    facts["offline"] = str(is_offline())
    facts["cache"] = str(cache_dir())
    for model in (DEFAULT_MODEL, BASE_MODEL, DEFAULT_REWARD_MODEL):
        facts[f"cached: {model}"] = "yes" if is_model_cached(model) else "no"
    return facts


def prefetch_model(model: str, revision: str | None = None):
    """Download a model for later offline use; an official reward checkpoint is also converted once.

    Returns the :class:`~prefpaint_sdk.hub.ResolvedModel` (its ``path`` is the usable local folder).
    """
    from .hub import download_model
    from .reward import resolve_reward_model
    from .reward.convert import OFFICIAL_REWARD_FILES

    if model in OFFICIAL_REWARD_FILES or model.endswith((".pt", ".pth")):
        return resolve_reward_model(model, offline=False, revision=revision)
    return download_model(model, revision=revision)


def is_model_cached(model: str) -> bool:
    """Whether ``model`` can be used offline (for the official reward: downloaded and converted)."""
    from .errors import ModelNotFoundError
    from .hub import is_cached
    from .reward import resolve_reward_model
    from .reward.convert import OFFICIAL_REWARD_FILES

    if model in OFFICIAL_REWARD_FILES:
        try:
            resolve_reward_model(model, offline=True)
            return True
        except ModelNotFoundError:
            return False
    return is_cached(model)


def smoke_test(seed: int = 0, families: tuple[str, ...] | None = None) -> dict[str, float | str]:
    """For every model family (or those in ``families``): save a tiny random pipeline, load it through
    ``from_pretrained`` offline, inpaint a synthetic image best-of-2 with a tiny reward model, and check the
    output's size, the untouched pixels and the pick.

    Raises:
        InvalidInputError: a family without a fixture. PrefPaintError: any check failed (naming the family).
    """
    from .errors import InvalidInputError
    from .testing import FAMILIES, save_tiny_reward_model

    unknown = [f for f in families or () if f not in FAMILIES]
    if unknown:
        raise InvalidInputError(f"family must be one of {', '.join(FAMILIES)}, got {', '.join(unknown)}")

    t0 = time.perf_counter()
    facts: dict[str, float | str] = {}
    with tempfile.TemporaryDirectory(prefix="prefpaint-smoke-") as tmp:
        reward = save_tiny_reward_model(f"{tmp}/tiny-reward", seed=seed)
        for family in families or FAMILIES:
            facts[family] = _smoke_family(family, f"{tmp}/tiny-{family}", reward, seed)
    facts["seconds"] = round(time.perf_counter() - t0, 2)
    return facts


def _smoke_family(family: str, folder: str, reward, seed: int) -> str:
    from .inpainter import Inpainter
    from .testing import save_tiny_inpaint_pipeline

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(77, 93, 3), dtype=np.uint8)
    mask = np.zeros((77, 93), dtype=bool)
    mask[20:50, 30:70] = True
    save_tiny_inpaint_pipeline(folder, seed=seed, family=family)
    inpainter = Inpainter.from_pretrained(folder, device="cpu", dtype="float32", offline=True, reward_model=reward)
    result = inpainter(image, mask, seed=seed, steps=4, num_candidates=2, mask_blur=4)
    out = np.asarray(result.image)
    if inpainter.family != family:
        raise PrefPaintError(f"smoke test ({family}): the folder loaded as family {inpainter.family}")
    if out.shape != image.shape:
        raise PrefPaintError(f"smoke test ({family}): output shape {out.shape} != input shape {image.shape}")
    far = ~_grow(mask, 4 + 1)
    if not np.array_equal(out[far], image[far]):
        raise PrefPaintError(f"smoke test ({family}): pixels outside the mask changed")
    if np.array_equal(out[mask], image[mask]):
        raise PrefPaintError(f"smoke test ({family}): the hole was not filled")
    if result.scores is None or result.best_index != int(np.argmax(result.scores)):
        raise PrefPaintError(f"smoke test ({family}): best-of-N did not pick the highest reward ({result.scores})")
    return f"ok {out.shape[1]}x{out.shape[0]} seeds {result.seeds} scores {[round(x, 4) for x in result.scores]}"


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    from .imaging import dilate_mask

    return dilate_mask(mask, px)
