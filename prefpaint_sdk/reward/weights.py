"""Published ``.pt`` checkpoints of open reward models (HPSv2, ImageReward), read without unpickling code.

:func:`check_pickle` reads only a checkpoint's pickle (not its tensors) and refuses one that names anything but
torch's tensor rebuilders, so a hostile file is refused before any model loads; :func:`read_state_dict` then
loads it with ``torch.load(weights_only=True)`` (or safetensors), which stays the guard.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

from ..errors import CorruptFileError, InvalidInputError, PickleRefusedError

__all__ = ["check_pickle", "read_state_dict"]

# what a plain tensor dict's pickle may name: torch's rebuild functions and storages, and OrderedDict
_SAFE_GLOBALS = ("torch ", "torch.", "collections OrderedDict")


def _unsafe_global(stream) -> str | None:
    """The first global one pickle in ``stream`` names that a plain tensor dict never does, else ``None``."""
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(stream):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(str(arg))
        name = {"GLOBAL": str(arg).replace("\n", " "), "INST": str(arg).replace("\n", " "),
                "STACK_GLOBAL": " ".join(strings[-2:])}.get(op.name)
        if name is not None and not name.startswith(_SAFE_GLOBALS):
            return name
    return None


def check_pickle(path: Path, what: str, fix: str) -> None:
    """Refuse a checkpoint whose pickle names anything but tensors, reading only the pickle (not the tensors).

    ``torch.load(weights_only=True)`` stays the guard when the weights load; this says so before any model loads.
    """
    import io

    bad = None
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if pkl is None:
                raise CorruptFileError(f"{what} '{path}' is a zip without a torch pickle; {fix}")
            streams = [io.BytesIO(z.read(pkl))]
    except zipfile.BadZipFile:
        with open(path, "rb") as fh:
            head = fh.read(2)
        if not (len(head) == 2 and head[0] == 0x80):
            raise CorruptFileError(f"{what} '{path}' is not a torch or safetensors file; {fix}") from None
        streams = None  # a legacy torch file (or a bare pickle): magic, protocol, sys info, then the object
    try:
        if streams is not None:
            bad = _unsafe_global(streams[0])
        else:
            with open(path, "rb") as fh:
                for _ in range(4):
                    bad = _unsafe_global(fh)
                    if bad is not None:
                        break
    except (ValueError, IndexError, EOFError):
        if streams is not None:
            raise CorruptFileError(f"{what} '{path}' holds a truncated pickle; {fix}") from None
        # past a legacy file's pickles come raw tensor bytes: the weights_only loader judges the rest
    if bad is not None:
        raise PickleRefusedError(f"{what} '{path}' is a pickle that names '{bad}', not a plain tensor dict; "
                                 "PrefPaint does not load such pickles: use the published file or convert it to "
                                 "safetensors")


def read_state_dict(ckpt: Path, what: str, fix: str) -> dict:
    """A checkpoint's tensors (``{"state_dict": ...}`` unwrapped), all finite.

    Raises:
        PickleRefusedError / InvalidInputError / CorruptFileError: not a plain tensor file. DataError: NaN/inf.
    """
    from ..files import load_torch_file
    from ..state import check_finite, read_tensors

    if ckpt.suffix == ".safetensors":
        sd = read_tensors(ckpt, what=what, fix=fix)
    else:
        sd = load_torch_file(ckpt, what, fix)
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]  # HPSv2's files wrap the weights, as its img_score.py reads them
    if not isinstance(sd, dict):
        raise InvalidInputError(f"{what} '{ckpt}' holds a {type(sd).__name__}, not a state dict; {fix}")
    check_finite(sd, ckpt, what, "use an intact copy of the published checkpoint")
    return sd
