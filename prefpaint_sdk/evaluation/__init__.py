"""Evaluation: the PrefPaint WinRate protocol, masked PSNR/SSIM, visual reports and reproducible mask sets.

* :mod:`.run`: :func:`evaluate` (resumable, cached per case); :mod:`.checks`: its model-free checks, first;
* :mod:`.report`: :class:`EvalReport` (figures per S, ``to_json``/``to_csv``/``to_html``/``summary``);
  :mod:`.html` and :mod:`.sheet` draw ``report.html`` and ``contact_sheet.png``;
* outcomes (ties count half a win), WinRate, Wilson and bootstrap intervals: :mod:`prefpaint_sdk.reward.winrate`,
  the one definition, shared with the aligner;
* :mod:`.identity`: what a model *is* for the cache (hub commit, or a SHA-256 of its weights);
* :mod:`.metrics`: masked PSNR and SSIM;
* :mod:`.data`: the data convention reader; :mod:`.masksets`: mask kinds, depth proxy, mask sets.
"""

from ..reward.winrate import WinStats, bootstrap_interval, outcomes, wilson_interval, win_rate, win_stats
from .data import EvalCase, as_cases, read_eval_data
from .masksets import MASK_CHOICES, case_seed, generate_mask_set, mask_for, normalize_kind, proxy_depth
from .metrics import masked_psnr, masked_ssim
from .report import EvalReport
from .run import evaluate

__all__ = [
    "MASK_CHOICES",
    "EvalCase",
    "EvalReport",
    "WinStats",
    "as_cases",
    "bootstrap_interval",
    "case_seed",
    "evaluate",
    "generate_mask_set",
    "mask_for",
    "masked_psnr",
    "masked_ssim",
    "normalize_kind",
    "outcomes",
    "proxy_depth",
    "read_eval_data",
    "wilson_interval",
    "win_rate",
    "win_stats",
]

