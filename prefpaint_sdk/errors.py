"""Exception hierarchy of the toolkit.

Every error a user can cause is a :class:`PrefPaintError` subclass whose message says what was wrong,
with the offending value, and how to fix it. The CLI maps the class to an exit code:
bad input → 2, missing model → 3, anything else → 1.

A message names a parameter as data, never as text: ``OutputExistsError("output 'a.png' already exists",
Hint("; pass ", Arg("overwrite", True), " to replace it"))``. ``str(error)`` renders it for a Python caller
("pass overwrite=True"); each front end renders the same parts in its own terms (the CLI: "pass --overwrite"). A
:class:`Hint` is advice a front end leaves out when it has no way to say one of its parameters (a command
without ``--overwrite``).
"""

from __future__ import annotations

__all__ = [
    "Arg",
    "Hint",
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
    "StoredMessage",
    "parts_from_json",
    "parts_to_json",
]


_NAMED = object()  # an Arg that names its parameter without a value ("steps must be ≥ 1")


class Arg:
    """A parameter named in a message: a Python caller reads ``name`` or ``name=value``, the CLI its flag.

    ``value`` is the fix (``Arg("overwrite", True)``: "pass overwrite=True" / "pass --overwrite"); without one,
    the parameter is only named (``Arg("steps")``: "steps must be ≥ 1" / "--steps must be ≥ 1").
    """

    __slots__ = ("name", "value")

    def __init__(self, name: str, value=_NAMED):
        self.name, self.value = name, value

    @property
    def has_value(self) -> bool:
        return self.value is not _NAMED

    def __str__(self) -> str:
        return f"{self.name}={self.value!r}" if self.has_value else self.name

    def __repr__(self) -> str:
        return f"Arg({self.name!r}{f', {self.value!r}' if self.has_value else ''})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Arg) and (self.name, self.value) == (other.name, other.value)

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self):
        return (Arg, (self.name, self.value) if self.has_value else (self.name,))


class Hint:
    """Advice inside a message, ``Hint("; pass ", Arg("overwrite", True), " to replace it")``: shown whole, or
    left out by a front end that cannot say one of its parameters."""

    __slots__ = ("parts",)

    def __init__(self, *parts):
        self.parts = parts

    def __str__(self) -> str:
        return render(self.parts)

    def __repr__(self) -> str:
        return f"Hint{self.parts!r}"

    def __eq__(self, other) -> bool:
        return isinstance(other, Hint) and self.parts == other.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __reduce__(self):
        return (Hint, self.parts)


def render(parts, name=str) -> str:
    """``parts`` (text, :class:`Arg`, :class:`Hint`) as one string. ``name`` renders an Arg (``str``: Python
    terms); where it gives None (a parameter the front end lacks) the Arg is shown as Python shows it, and a
    Hint holding it is left out."""
    out = []
    for p in parts:
        if isinstance(p, Hint):
            inner = [name(a) if isinstance(a, Arg) else render((a,), name) for a in p.parts]
            if None not in inner:
                out.extend(inner)
        elif isinstance(p, Arg):
            shown = name(p)
            out.append(str(p) if shown is None else shown)
        else:
            out.append(str(p))
    return "".join(out)


def _json_value(value):
    import json
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value


def parts_to_json(parts) -> list:
    """A message's parts as JSON data, so a stored error (a job record) keeps its parameters: text stays text,
    ``Arg("overwrite", True)`` becomes ``{"arg": "overwrite", "value": true}`` (``{"arg": "steps"}`` without a
    value) and a Hint ``{"hint": [...]}``. A value JSON cannot hold is stored as its text."""
    out: list = []
    for p in parts:
        if isinstance(p, Hint):
            out.append({"hint": parts_to_json(p.parts)})
        elif isinstance(p, Arg):
            out.append({"arg": p.name, "value": _json_value(p.value)} if p.has_value else {"arg": p.name})
        else:
            out.append(str(p))
    return out


def parts_from_json(data) -> tuple | None:
    """The parts :func:`parts_to_json` stored, or None when ``data`` is not such a list (an older record)."""
    if not isinstance(data, list):
        return None
    out: list = []
    for p in data:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, dict) and isinstance(p.get("arg"), str):
            out.append(Arg(p["arg"], p["value"]) if "value" in p else Arg(p["arg"]))
        elif isinstance(p, dict) and "hint" in p:
            inner = parts_from_json(p["hint"])
            if inner is None:
                return None
            out.append(Hint(*inner))
        else:
            return None
    return tuple(out)


class StoredMessage(str):
    """An error message read back from a store (a job record): the text a Python caller reads, with ``.parts``
    (text, :class:`Arg`, :class:`Hint`) for a front end to render in its own terms."""

    parts: tuple

    def __new__(cls, parts, text: str | None = None):
        self = super().__new__(cls, " ".join((render(parts) if text is None else text).split()))
        self.parts = tuple(parts)
        return self


def _args(parts) -> list:
    return [a for p in parts for a in (_args(p.parts) if isinstance(p, Hint) else [p] if isinstance(p, Arg) else [])]


class PrefPaintError(Exception):
    """Base class of every error the toolkit raises on purpose.

    ``PrefPaintError(*parts, param=None)``: the message is the parts joined, text and :class:`Arg`.
    ``.param`` is the parameter the error is about (the first Arg unless given) and ``.fix`` the value the
    message advises for it (its last Arg with a value; None when it advises none).
    """

    exit_code = 1

    def __init__(self, *parts, param: str | None = None):
        # ``args`` holds the Python message alone: OSError (ModelNotFoundError's base) would read several
        # arguments as errno and strerror and drop the rest.
        super().__init__(render(parts))
        self.parts = parts
        named = _args(parts)
        self.param = param or (named[0].name if named else None)
        fixes = [p for p in named if p.has_value and p.name == self.param]
        self.fix = fixes[-1].value if fixes else None  # the advice follows the value it corrects

    def __str__(self) -> str:
        return render(getattr(self, "parts", self.args))


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
    """An image whose pixel count passes the limit (``max_pixels``), decompression bombs included."""


class PickleRefusedError(InvalidInputError):
    """A weights or state file that is a pickle. We never unpickle, and never advise ``weights_only=False``."""

    @classmethod
    def for_file(cls, path, what: str = "") -> "PickleRefusedError":
        name = f"{what} '{path}'" if what else f"'{path}'"
        return cls(f"{name} is a pickle file; PrefPaint does not load pickles: convert it to safetensors")


class CorruptFileError(InvalidInputError):
    """A checkpoint, resume state, cache entry or config file that is truncated, empty or of the wrong type.

    The message names the file and the fix (delete it, pass ``overwrite=True``, resume from another checkpoint).
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
