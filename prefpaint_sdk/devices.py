"""Device and dtype choice: "auto" means cuda, then mps, then cpu; fp16 on cuda, fp32 elsewhere."""

from __future__ import annotations

from .errors import Arg, InvalidInputError

__all__ = ["resolve_device", "resolve_dtype", "quiet_loading"]

_DTYPES = {
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float32": "float32", "fp32": "float32", "float": "float32",
}


def resolve_device(device="auto"):
    """A ``torch.device`` from "auto", a name such as "cuda:1", or a device."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(f"device '{device}' is not a device name; use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device '{device}' was asked for but CUDA is not available here; use ", Arg("device", "cpu"))
    return dev


def resolve_dtype(dtype="auto", device=None):
    """A ``torch.dtype`` from "auto" (fp16 on cuda, fp32 elsewhere), a name, or a dtype."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        dev = resolve_device(device)
        return torch.float16 if dev.type == "cuda" else torch.float32
    name = _DTYPES.get(str(dtype).lower())
    if name is None:
        raise InvalidInputError(f"dtype '{dtype}' is not supported; use auto, float32, float16 or bfloat16")
    return getattr(torch, name)


class quiet_loading:
    """Silence diffusers' and transformers' own loading bars and chatter for the duration of a load.

    Their per-component bars add nothing to a user's view of a single model load and clutter ours.
    """

    def __enter__(self):
        import diffusers.utils.logging as dlog
        import transformers.utils.logging as tlog

        self._libs = [(lib, lib.is_progress_bar_enabled(), lib.get_verbosity()) for lib in (dlog, tlog)]
        for lib, _, _ in self._libs:
            lib.disable_progress_bar()
            lib.set_verbosity_error()
        return self

    def __exit__(self, *exc):
        for lib, bars, verbosity in self._libs:
            if bars:
                lib.enable_progress_bar()
            lib.set_verbosity(verbosity)
        return False
