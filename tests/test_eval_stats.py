"""WinRate and confidence-interval maths, against hand-computed cases."""

import math

import numpy as np
import pytest

from prefpaint_sdk.errors import InvalidInputError
from prefpaint_sdk.reward.winrate import (
    best_of,
    bootstrap_interval,
    normal_quantile,
    outcomes,
    wilson_interval,
    win_stats,
)

Z95 = 1.959963984540054


def test_normal_quantile():
    assert normal_quantile(0.95) == pytest.approx(Z95, abs=1e-12)
    assert normal_quantile(0.90) == pytest.approx(1.6448536269514722, abs=1e-12)
    with pytest.raises(InvalidInputError, match="confidence must be in"):
        normal_quantile(1.0)


def test_wilson_seven_of_ten():
    # By hand: p = 0.7, z^2 = 3.841459, denom = 1 + z^2/10 = 1.3841459;
    # centre = (0.7 + z^2/20) / denom = 0.644496; half = z*sqrt(0.021 + z^2/400) / denom = 0.247713.
    lo, hi = wilson_interval(7, 10)
    z2 = Z95 ** 2
    denom = 1 + z2 / 10
    centre = (0.7 + z2 / 20) / denom
    half = Z95 * math.sqrt(0.7 * 0.3 / 10 + z2 / 400) / denom
    assert (lo, hi) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (lo, hi) == pytest.approx((0.3968, 0.8922), abs=1e-4)  # the textbook value


def test_wilson_edges_and_symmetry():
    # p = 0: the interval is [0, z^2/n / (1 + z^2/n)] = [0, 0.277533] for n = 10.
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx((Z95 ** 2 / 10) / (1 + Z95 ** 2 / 10), abs=1e-12)
    lo1, hi1 = wilson_interval(10, 10)
    assert (lo1, hi1) == pytest.approx((1 - hi, 1.0), abs=1e-12)
    a, b = wilson_interval(3, 20)
    c, d = wilson_interval(17, 20)
    assert (a, b) == pytest.approx((1 - d, 1 - c), abs=1e-12)
    # A fractional count (ties as halves) sits between its neighbours.
    assert wilson_interval(6, 10)[0] < wilson_interval(6.5, 10)[0] < wilson_interval(7, 10)[0]
    with pytest.raises(InvalidInputError, match="at least one case"):
        wilson_interval(0, 0)
    with pytest.raises(InvalidInputError, match=r"successes must be in \[0, n=10\]"):
        wilson_interval(11, 10)


def test_outcomes_count_ties_as_half():
    model = [0.3, 0.5, 0.1, 0.9]
    base = [0.2, 0.5, 0.4, 0.8]
    assert outcomes(model, base).tolist() == [1.0, 0.5, 0.0, 1.0]
    st = win_stats(model, base)
    assert (st.wins, st.ties, st.losses, st.n) == (2, 1, 1, 4)
    assert st.win_rate == pytest.approx((2 + 0.5) / 4)
    assert (st.ci_low, st.ci_high) == pytest.approx(wilson_interval(2.5, 4), abs=1e-12)
    # Within the tolerance a difference is a tie: 0.3 vs 0.2 (0.1) and 0.9 vs 0.8 ties at 0.15.
    assert outcomes(model, base, tie_tolerance=0.15).tolist() == [0.5, 0.5, 0.0, 0.5]


def test_win_rate_is_antisymmetric():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50).round(1), rng.normal(size=50).round(1)  # rounding makes some ties
    assert (a == b).any()
    assert win_stats(a, b).win_rate + win_stats(b, a).win_rate == pytest.approx(1.0)


def test_outcome_errors():
    with pytest.raises(InvalidInputError, match="3 model rewards but 2 baseline"):
        outcomes([1, 2, 3], [1, 2])
    with pytest.raises(InvalidInputError, match="finite"):
        outcomes([1, float("nan")], [1, 2])
    with pytest.raises(InvalidInputError, match="tie_tolerance"):
        outcomes([1], [1], tie_tolerance=-1)
    with pytest.raises(InvalidInputError, match="no cases"):
        win_stats([], [])
    with pytest.raises(InvalidInputError, match="ci must be 'wilson' or 'bootstrap', got 'exact'"):
        win_stats([1], [0], ci="exact")


def test_best_of_takes_the_first_maximum_of_the_prefix():
    r = [0.2, 0.7, 0.7, 0.9]
    assert best_of(r, 1) == (0, 0.2)
    assert best_of(r, 3) == (1, 0.7)
    assert best_of(r, 4) == (3, 0.9)
    with pytest.raises(InvalidInputError, match="best-of-5 needs at least 5 samples, got 4"):
        best_of(r, 5)


def test_bootstrap_interval():
    assert bootstrap_interval([1.0] * 20) == (1.0, 1.0)
    v = np.r_[np.ones(60), np.zeros(40)]
    lo, hi = bootstrap_interval(v, n_boot=4000, seed=1)
    assert (lo, hi) == bootstrap_interval(v, n_boot=4000, seed=1)  # seeded: reproducible
    # For n = 100 and p = 0.6 the normal interval is 0.6 +- 1.96 * 0.049 = [0.504, 0.696].
    assert lo == pytest.approx(0.504, abs=0.02) and hi == pytest.approx(0.696, abs=0.02)
    st = win_stats(v, np.full(100, 0.5), ci="bootstrap", n_boot=4000, seed=1)
    assert (st.ci_low, st.ci_high) == (lo, hi) and st.method == "bootstrap"
    with pytest.raises(InvalidInputError, match="at least one case"):
        bootstrap_interval([])


def test_wilson_coverage_is_close_to_nominal():
    # 2000 simulated experiments of n = 40 at p = 0.3: the 95% interval should cover p about 95% of the time.
    rng = np.random.default_rng(0)
    k = rng.binomial(40, 0.3, size=2000)
    covered = np.mean([lo <= 0.3 <= hi for lo, hi in (wilson_interval(int(x), 40) for x in k)])
    assert 0.93 <= covered <= 0.975
