"""Exception hierarchy of the toolkit.

Every error a user can cause is a :class:`PrefPaintError` subclass whose message says what was wrong,
with the offending value, and how to fix it. The CLI maps the class to an exit code:
bad input → 2, missing model → 3, anything else → 1.
"""

from __future__ import annotations

__all__ = [
    "PrefPaintError",
    "InvalidInputError",
    "ModelNotFoundError",
    "ConfigError",
    "DataError",
    "OutputExistsError",
    "MissingDependencyError",
    "ImageTooLargeError",
    "PickleRefusedError",
    "CorruptFileError",
    "RemoteRewardError",
]


class PrefPaintError(Exception):
    """Base class of every error the toolkit raises on purpose."""

    exit_code = 1


class InvalidInputError(PrefPaintError, ValueError):
    """An image, mask, size or argument the toolkit cannot use."""

    exit_code = 2


class OutputExistsError(InvalidInputError, FileExistsError):
    """An output file already exists and ``overwrite`` was not given."""


class ConfigError(InvalidInputError):
    """Inconsistent or unknown configuration values."""


class DataError(InvalidInputError):
    """A dataset is malformed, or too much of it is unreadable."""


class ImageTooLargeError(InvalidInputError):
    """An image whose pixel count passes the limit (``--max-pixels``), decompression bombs included."""


class PickleRefusedError(InvalidInputError):
    """A weights or state file that is a pickle. We never unpickle, and never advise ``weights_only=False``."""

    @classmethod
    def for_file(cls, path, what: str = "") -> "PickleRefusedError":
        name = f"{what} '{path}'" if what else f"'{path}'"
        return cls(f"{name} is a pickle file; PrefPaint does not load pickles: convert it to safetensors")


class CorruptFileError(InvalidInputError):
    """A checkpoint, resume state, cache entry or config file that is truncated, empty or of the wrong type.

    The message names the file and the fix (delete it, pass --overwrite, resume from another checkpoint).
    """


class ModelNotFoundError(PrefPaintError, FileNotFoundError):
    """Weights that are neither cached, nor local, nor reachable."""

    exit_code = 3


class RemoteRewardError(PrefPaintError):
    """A remote reward server that answered, but not with one finite score per image (or an HTTP error)."""

    exit_code = 1


class MissingDependencyError(PrefPaintError, ImportError):
    """An optional package is needed for this feature; the message names the install command (exit 2)."""

    exit_code = 2


def require(module: str, extra: str | None = None, purpose: str = ""):
    """Import an optional dependency or raise a :class:`MissingDependencyError` naming the fix."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pip_name = module.split(".")[0].replace("_", "-")
        fix = f"pip install 'prefpaint[{extra}]'" if extra else f"pip install {pip_name}"
        why = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(f"'{module}' is needed{why} but is not installed; run: {fix}") from exc
