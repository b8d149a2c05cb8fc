"""WinRate and its confidence intervals, as the evaluation reports use them.

The one definition lives in :mod:`prefpaint_sdk.reward.winrate`, below both evaluation and alignment, so
``prefpaint eval``, the aligner's held-out evaluation and ``log.jsonl`` report the same measure (ties count
half a win). This module re-exports it under its historical name.
"""

from __future__ import annotations

from ..reward.winrate import (
    WinStats,
    best_of,
    bootstrap_interval,
    check_tie_tolerance,
    normal_quantile,
    outcomes,
    wilson_interval,
    win_rate,
    win_stats,
)

__all__ = [
    "WinStats",
    "best_of",
    "bootstrap_interval",
    "check_tie_tolerance",
    "normal_quantile",
    "outcomes",
    "wilson_interval",
    "win_rate",
    "win_stats",
]
