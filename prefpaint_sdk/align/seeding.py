"""Seed derivation for alignment runs.

Every random choice is drawn from generators seeded by (seed, iteration, process), so an interrupted
run resumed from its checkpoint continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["derive_seed"]


def derive_seed(*parts: int) -> int:
    """A 32-bit seed mixed from integer ``parts`` (each taken modulo 2**32)."""
    return int(np.random.SeedSequence([int(p) % (2**32) for p in parts]).generate_state(1)[0])
