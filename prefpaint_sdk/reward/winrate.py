"""WinRate, the one definition: pure functions on arrays of rewards, and its confidence interval.

Every WinRate the toolkit reports comes from here: ``prefpaint eval`` and its reports
(:mod:`prefpaint_sdk.evaluation`), the aligner's periodic held-out evaluation (``eval/win_rate`` in
``log.jsonl`` and ``AlignResult.evals``), and anything a user computes with :func:`win_rate`. It sits in
:mod:`prefpaint_sdk.reward`, below both evaluation and alignment, so neither re-implements it.

The PrefPaint protocol compares, for each (image, mask) case, a model's best-of-S sample (the one with
the highest reward among its first S samples) against the baseline's single sample. Each case is an
*outcome*:

* a **win** (1.0) when the model's reward beats the baseline's by more than ``tie_tolerance``;
* a **loss** (0.0) when it is lower by more than ``tie_tolerance``;
* a **tie** (0.5) otherwise. **A tie counts as half a win**, so two identical models score exactly 50%
  and the WinRate is symmetric: WinRate(A vs B) + WinRate(B vs A) = 1.

WinRate = mean outcome = (wins + ties / 2) / n.

``tie_tolerance`` must be finite and >= 0: a NaN tolerance would make every comparison false and every
case a "tie" (50%), whatever the rewards.

Confidence intervals (95% by default):

* ``wilson``: the Wilson score interval for a binomial proportion with ``p = WinRate`` and ``n`` cases
  (ties enter as half a success). With ties the outcomes are {0, 0.5, 1}, whose variance is at most the
  Bernoulli variance at the same mean, so the interval is, if anything, conservative;
* ``bootstrap``: the percentile interval of the mean outcome over ``n_boot`` resamples of the cases
  (seeded, so reports are reproducible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import Arg, InvalidInputError
from ..validation import finite

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


def check_tie_tolerance(tie_tolerance) -> float:
    """``tie_tolerance`` as a finite float >= 0.

    Raises:
        InvalidInputError: NaN, infinite, negative or not a number (``.param`` is ``"tie_tolerance"``).
    """
    return float(finite("tie_tolerance", tie_tolerance, lo=0.0))


def normal_quantile(confidence: float) -> float:
    """The two-sided standard normal quantile ``z`` for ``confidence`` (1.959964 for 0.95).

    Raises:
        InvalidInputError: ``confidence`` outside (0, 1).
    """
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise InvalidInputError(Arg("confidence"), f" must be in (0, 1), got {confidence}; use e.g. 0.95")
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``.

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``.

    Args:
        successes: number of successes (may be fractional: wins + ties / 2).
        n: number of trials (> 0).
        confidence: two-sided coverage.

    Returns:
        (low, high), inside [0, 1].

    Raises:
        InvalidInputError: ``n`` < 1 or ``successes`` outside [0, n].
    """
    if n < 1:
        raise InvalidInputError(f"a confidence interval needs at least one case, got n={n}")
    if not 0.0 <= successes <= n:
        raise InvalidInputError(Arg("successes"), f" must be in [0, n={n}], got {successes}")
    z = normal_quantile(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(values, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling cases with replacement).

    Args:
        values: per-case outcomes (1-D).
        confidence: two-sided coverage.
        n_boot: number of resamples.
        seed: seeds the resampling, so the same data give the same interval.

    Returns:
        (low, high).

    Raises:
        InvalidInputError: empty ``values`` or ``n_boot`` < 1.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise InvalidInputError("a confidence interval needs at least one case, got none")
    if n_boot < 1:
        raise InvalidInputError(Arg("n_boot"), f" must be >= 1, got {n_boot}")
    normal_quantile(confidence)  # validates the level
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    means = v[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def outcomes(model_rewards, baseline_rewards, tie_tolerance: float = 0.0) -> np.ndarray:
    """Per-case outcome: 1.0 win, 0.5 tie (``|a - b| <= tie_tolerance``), 0.0 loss.

    Raises:
        InvalidInputError: different lengths, non-finite rewards, or a tolerance that is negative or not finite.
    """
    a = np.asarray(model_rewards, dtype=np.float64).ravel()
    b = np.asarray(baseline_rewards, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise InvalidInputError(f"{a.size} model rewards but {b.size} baseline rewards; they must be paired per case")
    tie_tolerance = check_tie_tolerance(tie_tolerance)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise InvalidInputError("rewards must be finite; drop the failed cases first")
    d = a - b
    return np.where(d > tie_tolerance, 1.0, np.where(d < -tie_tolerance, 0.0, 0.5))


def win_rate(model_rewards, baseline_rewards, tie_tolerance: float = 0.0, *,
             skip_nonfinite: bool = False) -> float | None:
    """WinRate of paired rewards: ``(wins + ties / 2) / n`` (see the module docstring).

    Args:
        model_rewards / baseline_rewards: one reward each per paired case or sample.
        tie_tolerance: differences within it are ties (half a win).
        skip_nonfinite: drop the pairs where either reward is NaN or infinite (a sample the reward could not
            score, such as an empty hole) instead of refusing them.

    Returns:
        The WinRate in [0, 1]; ``None`` when no pair is left.

    Raises:
        InvalidInputError: unpaired inputs, a bad ``tie_tolerance``, or (without ``skip_nonfinite``) a
            non-finite reward.
    """
    a = np.asarray(model_rewards, dtype=np.float64).ravel()
    b = np.asarray(baseline_rewards, dtype=np.float64).ravel()
    if skip_nonfinite and a.shape == b.shape:
        ok = np.isfinite(a) & np.isfinite(b)
        a, b = a[ok], b[ok]
    o = outcomes(a, b, tie_tolerance)
    return float(o.mean()) if o.size else None


def best_of(rewards, s: int) -> tuple[int, float]:
    """Index and value of the highest of the first ``s`` rewards (the first one on equal rewards).

    Raises:
        InvalidInputError: fewer than ``s`` rewards, or ``s`` < 1.
    """
    r = np.asarray(rewards, dtype=np.float64).ravel()
    if s < 1 or r.size < s:
        raise InvalidInputError(f"best-of-{s} needs at least {max(s, 1)} samples, got {r.size}")
    i = int(np.argmax(r[:s]))
    return i, float(r[i])


@dataclass(frozen=True)
class WinStats:
    """WinRate of one comparison with its confidence interval.

    Attributes:
        n / wins / ties / losses: case counts.
        win_rate: (wins + ties / 2) / n.
        ci_low / ci_high: the interval at ``confidence`` by ``method``.
    """

    n: int
    wins: int
    ties: int
    losses: int
    win_rate: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str


def win_stats(model_rewards, baseline_rewards, *, tie_tolerance: float = 0.0, ci: str = "wilson",
              confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> WinStats:
    """WinRate of paired rewards with a confidence interval (see the module docstring).

    Args:
        model_rewards / baseline_rewards: one reward per case each (the model's best-of-S, the baseline's).
        tie_tolerance: differences within it are ties (half a win).
        ci: "wilson" or "bootstrap".
        confidence: two-sided coverage of the interval.
        n_boot / seed: bootstrap resamples and their seed.

    Returns:
        :class:`WinStats`.

    Raises:
        InvalidInputError: no cases, unpaired inputs, a bad ``tie_tolerance``, or an unknown ``ci``.
    """
    o = outcomes(model_rewards, baseline_rewards, tie_tolerance)
    if o.size == 0:
        raise InvalidInputError("no cases to compare; check that the evaluation produced results")
    wins, ties = int((o == 1.0).sum()), int((o == 0.5).sum())
    losses = int(o.size - wins - ties)
    rate = float(o.mean())
    if ci == "wilson":
        lo, hi = wilson_interval(wins + ties / 2.0, int(o.size), confidence)
    elif ci == "bootstrap":
        lo, hi = bootstrap_interval(o, confidence, n_boot, seed)
    else:
        raise InvalidInputError(Arg("ci"), f" must be 'wilson' or 'bootstrap', got '{ci}'")
    return WinStats(n=int(o.size), wins=wins, ties=ties, losses=losses, win_rate=rate, ci_low=lo, ci_high=hi,
                    confidence=confidence, method=ci)
