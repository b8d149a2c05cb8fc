"""Hostile inputs written by hand for ``tests/test_hostile_inputs.py``: bombs, malicious pickles, corrupt files.

Nothing here uses the toolkit's own writers, so a reader is never tested only against itself.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import struct
import zlib
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A valid-looking PNG of a few dozen bytes whose IHDR claims ``width`` x ``height`` 8-bit grey pixels.

    The IDAT holds only a handful of zero rows, so any reader that trusts the header and allocates the
    whole image (10 gigapixels by default) is the bug; a reader that checks the header first refuses it.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    idat = zlib.compress(b"\x00" * 64, 9)
    path.write_bytes(PNG_MAGIC + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


class Evil:
    """Unpickling this object opens ``marker`` for writing, creating it: proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_raw_pickle(path: Path, marker: Path) -> Path:
    """A plain (non-zip) pickle, as an old ``torch.save`` or ``pickle.dump`` writes it, that creates ``marker``."""
    path.write_bytes(pickle.dumps({"state_dict": Evil(marker)}, protocol=2))
    return path


def write_torch_pickle(path: Path, marker: Path) -> Path:
    """A ``torch.save`` zip whose pickle creates ``marker`` when loaded without ``weights_only``."""
    import torch

    torch.save({"state_dict": Evil(marker), "weight": torch.zeros(2)}, path)
    return path


def pickled_model_folder(src: Path, dest: Path, marker: Path, weights: str, pickle_name: str) -> Path:
    """Copy a saved model folder and replace its safetensors file ``weights`` by a malicious ``pickle_name``."""
    shutil.copytree(src, dest)
    (dest / weights).unlink()
    write_torch_pickle(dest / pickle_name, marker)
    return dest


def truncate(path: Path, keep: int | None = None) -> Path:
    """Cut ``path`` to ``keep`` bytes (default: half of it)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])
    return path


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: folders, and files with size, mtime and a hash of their bytes."""
    out: dict[str, tuple] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir",)
        else:
            st = p.stat()
            out[rel] = ("file", st.st_size, st.st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
    return out


def diff(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """Human-readable differences between two snapshots (empty when equal)."""
    lines = [f"new: {k}" for k in sorted(set(after) - set(before))]
    lines += [f"gone: {k}" for k in sorted(set(before) - set(after))]
    lines += [f"changed: {k}" for k in sorted(set(before) & set(after)) if before[k] != after[k]]
    return lines
