"""What the signal tests share: whether a child process has our handlers in place yet."""

from __future__ import annotations

import signal
from pathlib import Path


def owns_sigterm(pid: int) -> bool:
    """Whether the process has its SIGTERM handler (Linux: the SigCgt mask in /proc): our handlers are in."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except OSError:
        pass
    return False
