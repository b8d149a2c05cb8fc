"""Guards against reward hacking: the monitor, reward ensembles, the evaluation rows, best weights, stop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _helpers_align import make_data

from prefpaint_sdk.align.audit import saturation
from prefpaint_sdk.align.config import AlignConfig, load_config
from prefpaint_sdk.align.evaluation import EvalResult
from prefpaint_sdk.align.guards import EvalGuards, HackingMonitor
from prefpaint_sdk.align.rewards import as_reward_fn
from prefpaint_sdk.errors import ConfigError
from prefpaint_sdk.reward.constraints import brightness_in_mask
from prefpaint_sdk.reward.specs import parse_weights, resolve_reward
from prefpaint_sdk.reward.stack import RewardEnsemble

NAN = float("nan")


# ------------------------------------------------------------------------------------------------
# HackingMonitor on synthetic sequences


def _run(pairs, patience=3):
    m = HackingMonitor(patience)
    return [m.update(p, g) for p, g in pairs], m


def test_monitor_fires_after_patience_rise_fall_pairs():
    pairs = [(0.1, 0.9), (0.2, 0.8), (0.3, 0.7), (0.4, 0.6), (0.5, 0.5)]
    flags, m = _run(pairs)
    assert flags == [False, False, False, True, True]  # 3 consecutive rise/fall pairs need 4 evaluations
    assert m.streak == 4
    assert "0.1 -> 0.5" in m.describe() and "0.9 -> 0.5" in m.describe() and "4 consecutive" in m.describe()


@pytest.mark.parametrize("breaker", [(0.3, 0.6), (0.3, 0.7), (0.4, 0.7), (0.4, 0.8), (0.2, 0.6), (0.2, 0.8)],
                         ids=["proxy-ties", "both-tie", "gold-ties", "gold-rises", "both-fall", "proxy-falls-gold-rises"])
def test_monitor_streak_resets_on_anything_but_rise_and_fall(breaker):
    flags, m = _run([(0.1, 0.9), (0.2, 0.8), (0.3, 0.7), breaker, (0.5, 0.5), (0.6, 0.4)])
    assert not any(flags)
    assert m.streak == 2


def test_monitor_skips_nan_without_resetting():
    flags, m = _run([(0.1, 0.9), (0.2, 0.8), (NAN, 0.1), (0.3, NAN), (None, 0.5), (0.3, 0.7), (0.4, 0.6)])
    assert flags == [False] * 6 + [True]
    assert m.last == (0.4, 0.6)
    # a NaN first evaluation sets no reference
    _, m2 = _run([(NAN, NAN), (0.1, 0.9), (0.2, 0.8)], patience=1)
    assert m2.streak == 1 and m2.hacking


def test_monitor_patience_one_and_bad_patience():
    flags, _ = _run([(1.0, 1.0), (2.0, 0.5), (3.0, 0.6)], patience=1)
    assert flags == [False, True, False]
    with pytest.raises(ConfigError, match="hacking_patience must be >= 1, got 0"):
        HackingMonitor(0)


def test_monitor_min_drop_ignores_a_streak_of_small_moves():
    # exp_learning seed 1: three rise/fall steps whose gold fell 0.0014 in all, within ~1.6x seed noise
    pairs = [(1.3468, 0.4905), (1.3480, 0.4900), (1.3488, 0.4896), (1.3490, 0.4891)]
    m = HackingMonitor(3, min_drop=0.00175)
    assert [m.update(p, g) for p, g in pairs] == [False] * 4 and m.streak == 3  # the streak counts, the drop is small
    assert m.update(1.3600, 0.4870)  # the gold keeps falling: 0.0035 over the streak now
    plain = HackingMonitor(3)
    assert [plain.update(p, g) for p, g in pairs][-1]  # without a margin the same noise fires
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="hacking_min_drop must be a finite number >= 0"):
            HackingMonitor(3, min_drop=bad)


# ------------------------------------------------------------------------------------------------
# Ensembles


def _fixed(scores, bounds=None):
    def fn(images, masks, masked):
        return (scores, bounds) if bounds is not None else scores
    return fn


IMGS, MASKS = torch.rand(2, 3, 4, 4), torch.ones(2, 4, 4, dtype=torch.bool)


def test_ensemble_scores_bounds_and_trust_exact():
    a, b = _fixed([1.0, 2.0], [1.0, 3.0]), _fixed([3.0, 4.0], [2.0, 2.0])
    rb = as_reward_fn(RewardEnsemble((a, b), (3, 1)))(IMGS, MASKS, IMGS)  # normalised to 0.75, 0.25
    assert rb.scores.tolist() == pytest.approx([1.5, 2.5])
    assert rb.bounds.tolist() == pytest.approx([1.25, 2.75])
    assert rb.trust.tolist() == pytest.approx([math.exp(-0.05 * 1.25 + 0.7), math.exp(-0.05 * 2.75 + 0.7)])
    # the same ensemble with weights 0.75,0.25, and a negative weight: |w| in the bound
    same = as_reward_fn(RewardEnsemble((a, b), (0.75, 0.25)))(IMGS, MASKS, IMGS)
    assert torch.equal(same.scores, rb.scores)
    neg = as_reward_fn(RewardEnsemble((a, b), (1, -1)), trust_clamp=(0.0, 10.0))(IMGS, MASKS, IMGS)
    assert neg.scores.tolist() == pytest.approx([-1.0, -1.0]) and neg.bounds.tolist() == pytest.approx([1.5, 2.5])
    # a list is an equal-weight ensemble
    eq = as_reward_fn([a, b])(IMGS, MASKS, IMGS)
    assert eq.scores.tolist() == pytest.approx([2.0, 3.0])


def test_ensemble_member_without_bounds_or_with_nan():
    rb = as_reward_fn(RewardEnsemble((_fixed([1.0, 2.0], [1.0, 1.0]), _fixed([NAN, 0.0])), (1, 1)))(IMGS, MASKS, IMGS)
    assert rb.bounds is None and rb.trust is None
    assert math.isnan(rb.scores[0]) and rb.scores[1].item() == pytest.approx(1.0)
    # built-in names and callables mix: brightness + 0.5 * saturation, exactly
    sat = lambda im, m, mi: (saturation(im) * m).sum((1, 2)) / m.sum((1, 2))  # noqa: E731
    mix = as_reward_fn(RewardEnsemble(("brightness", sat), (2, 1)))(IMGS, MASKS, IMGS)
    want = (2 * brightness_in_mask(IMGS, MASKS) + sat(IMGS, MASKS, None)) / 3
    assert torch.allclose(mix.scores, want)


@pytest.mark.parametrize("weights, pattern", [
    ((1.0,), "1 reward weights for 2 rewards"), ((1.0, NAN), "not finite"), ((float("inf"), 1.0), "not finite"),
    ((0.0, 0.0), "all zero"),
])
def test_ensemble_refuses_bad_weights(weights, pattern):
    with pytest.raises(ConfigError, match=pattern):
        RewardEnsemble(("brightness", "brightness"), weights)


@pytest.mark.parametrize("text, pattern", [
    ("0.7", "gives 1 weights for 2"), ("0.7,0.2,0.1", "gives 3 weights for 2"), ("0.7,nan", "non-finite"),
    ("inf,1", "non-finite"), ("0,0", "all zero"), ("a,b", "not a comma-separated list"),
])
def test_parse_weights_refusals(text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        parse_weights(text, 2, "--reward-weights")


def test_parse_weights_and_resolve_names(tmp_path):
    assert parse_weights(" 0.7, 0.3 ", 2) == (0.7, 0.3) and parse_weights(None, 2) is None
    assert resolve_reward("brightness") == "brightness"
    with pytest.raises(ConfigError, match="'shiny' is neither a built-in reward"):
        resolve_reward(["brightness", "shiny"], param="gold_reward")
    from prefpaint_sdk import InvalidInputError
    from prefpaint_sdk.testing import save_tiny_reward_model

    rm = save_tiny_reward_model(tmp_path / "rm")
    assert resolve_reward(str(rm)) == rm.resolve()  # a folder: found and its files checked, not loaded
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no config.json"):  # refused before the pipeline loads (issue 19)
        resolve_reward(str(tmp_path / "empty"))


def test_config_guard_fields_are_validated():
    base = AlignConfig()
    assert (base.on_hacking, base.hacking_patience) == ("warn", 3)
    for changes, pattern in [({"on_hacking": "panic"}, "on_hacking must be 'warn' or 'stop'"),
                             ({"hacking_patience": 0}, "hacking_patience must be >= 1"),
                             ({"audit_ring": 0}, "audit_ring must be >= 1"),
                             ({"hacking_min_drop": -0.01}, "hacking_min_drop must be >= 0"),
                             ({"hacking_min_drop": float("nan")}, "hacking_min_drop"),
                             ({"on_hacking": "stop", "eval_every": 0}, "eval_every=0 disables them")]:
        with pytest.raises(ConfigError, match=pattern):
            base.replace(**changes).validate()


# ------------------------------------------------------------------------------------------------
# EvalGuards bookkeeping (no model): rows, best weights, resume replay


class _Acc:
    is_main_process, num_processes, device = True, 1, "cpu"

    def wait_for_everyone(self):
        pass


def _ev(proxy, gold):
    return EvalResult(rewards=[proxy], mean_reward=proxy, win_rate=None, gold_rewards=[gold], gold_mean=gold,
                      audit={"hole_brightness": 0.5})


def test_eval_guards_rows_best_weights_and_resume(tmp_path):
    cfg = AlignConfig().replace(on_hacking="stop", hacking_patience=2, kl_coef=0.1)
    params = {"w": torch.zeros(3)}
    g = EvalGuards(cfg, tmp_path, _Acc(), params, has_gold=True)
    history = [{"iteration": 1, "approx_kl": 0.2, "kl_ref": 1.0}, {"iteration": 2, "approx_kl": 0.4, "kl_ref": NAN}]
    row = g.record(_ev(0.1, 0.5), 0, [])
    assert row["train_approx_kl"] is None and g.best["iteration"] == 0
    params["w"] += 1  # "training": the next evaluation has better gold, so its weights become the best
    row = g.record(_ev(0.2, 0.6), 2, history)
    assert row["train_approx_kl"] == pytest.approx(0.3) and row["train_kl_ref"] == pytest.approx(1.0)
    assert row["proxy_mean"] == 0.2 and row["gold_mean"] == 0.6 and row["hole_brightness"] == 0.5
    assert json.loads((tmp_path / "eval" / "best" / "best.json").read_text())["iteration"] == 2
    params["w"] += 1
    g.record(_ev(0.3, 0.55), 4, history)
    assert not g.stop and g.best["iteration"] == 2
    # a resumed run at iteration 4 replays the rows up to it: one more rise/fall stops it
    params["w"] += 1
    again = EvalGuards(cfg, tmp_path, _Acc(), params, has_gold=True, iteration=4)
    assert again.monitor.streak == 1 and again.best["iteration"] == 2
    again.record(_ev(0.4, 0.5), 6, [])
    assert again.stop and "iteration 6" in again.stopped_reason and "rose 0.2 -> 0.4" in again.stopped_reason
    assert again.restore_best()["iteration"] == 2
    assert params["w"].tolist() == [1.0, 1.0, 1.0]
    rows = json.loads((tmp_path / "eval" / "guards.json").read_text())["rows"]
    assert [r["iteration"] for r in rows] == [0, 2, 4, 6]
    # a run resumed from iteration 2 forgets the rows after it
    assert EvalGuards(cfg, tmp_path, _Acc(), params, has_gold=True, iteration=2).monitor.last == (0.2, 0.6)


def test_eval_guards_warn_keeps_going(tmp_path, caplog):
    cfg = AlignConfig().replace(hacking_patience=1)
    g = EvalGuards(cfg, tmp_path, _Acc(), {"w": torch.zeros(1)}, has_gold=True)
    g.record(_ev(0.1, 0.5), 0, [])
    with caplog.at_level("WARNING", logger="prefpaint_sdk.align.guards"):
        g.record(_ev(0.2, 0.4), 1, [])
    assert not g.stop and g.stopped_reason is None
    assert "reward hacking suspected at iteration 1: the proxy reward rose 0.1 -> 0.2 while the gold reward fell 0.5 -> 0.4" in caplog.text


# ------------------------------------------------------------------------------------------------
# On the tiny SD pipeline


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("guards_data"), n=6, size=32)


def _smoke(**over):
    small = dict(prompts_per_iter=2, samples_per_prompt=2, rollout_batch_size=4, train_batch_size=4, iterations=2,
                 eval_every=1, eval_size=2, eval_samples=1, save_every=0, log_with="none", audit_ring=4)
    return load_config("cpu-smoke", overrides={**small, **over})


W_SAT = 0.5


def _proxy(images, masks, masked):
    """brightness + W_SAT * saturation inside the hole: a proxy that a saturated hole can please."""
    m = masks.to(images.dtype)
    return brightness_in_mask(images, masks) + W_SAT * (saturation(images) * m).sum((1, 2)) / m.sum((1, 2))


def test_eval_rows_hold_gold_proxy_and_audit_figures(data, tmp_path):
    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    torch.set_num_threads(1)
    al = Aligner(tiny_inpaint_pipeline(0), _proxy, _smoke(iterations=1), data, tmp_path, device="cpu",
                 gold_reward="brightness")
    res = al.train()
    assert [e["iteration"] for e in res.evals] == [0, 1] and res.stopped_reason is None
    for e in res.evals:
        # gold = brightness in the hole = the audit's hole brightness; the proxy is its linear mix with saturation
        assert e["gold_mean"] == pytest.approx(e["hole_brightness"], abs=1e-5)
        assert e["proxy_mean"] == pytest.approx(e["hole_brightness"] + W_SAT * e["hole_saturation"], abs=1e-5)
        assert e["diff_colourfulness"] == pytest.approx(e["hole_colourfulness"] - e["context_colourfulness"], abs=1e-5)
        assert all(np.isfinite(e[k]) for k in ("context_brightness", "context_saturation", "hole_colourfulness"))
    assert res.evals[1]["train_approx_kl"] is not None and res.evals[1]["train_kl_ref"] is None  # kl_coef = 0
    assert res.best["iteration"] in (0, 1) and (tmp_path / "eval" / "best" / "trainable.safetensors").is_file()
    assert res.best["gold_mean"] == max(e["gold_mean"] for e in res.evals)
    logged = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert any("eval/gold_mean" in r and "audit/diff_saturation" in r for r in logged)


def test_on_hacking_stop_with_engineered_falling_gold_restores_best(data, tmp_path):
    """Engineered, so the pattern is certain: every call of the proxy adds 1 to all its scores (a constant per
    batch, so batch-standardised advantages and training are unchanged) and every call of the gold takes 1 off."""
    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    torch.set_num_threads(1)
    calls = {"proxy": 0, "gold": 0}

    def rising_proxy(images, masks, masked):
        calls["proxy"] += 1
        return _proxy(images, masks, masked) + calls["proxy"]

    def falling_gold(images, masks, masked):
        calls["gold"] += 1
        return brightness_in_mask(images, masks) - calls["gold"]

    al = Aligner(tiny_inpaint_pipeline(0), rising_proxy, _smoke(iterations=5, on_hacking="stop", hacking_patience=2),
                 data, tmp_path, device="cpu", gold_reward=falling_gold)
    best_before = None

    real_record = EvalGuards.record

    def spy(self, ev, iteration, history):  # the trained tensors at the best (first) evaluation
        nonlocal best_before
        if iteration == 0:
            best_before = {k: v.detach().clone() for k, v in al.params.items()}
        return real_record(self, ev, iteration, history)

    EvalGuards.record = spy
    try:
        res = al.train()
    finally:
        EvalGuards.record = real_record
    assert res.iterations_done == 2 and [e["hacking_streak"] for e in res.evals] == [0, 1, 2]
    assert res.stopped_reason.startswith("reward hacking suspected at iteration 2") and not res.interrupted
    assert res.best["iteration"] == 0
    assert json.loads((tmp_path / "checkpoints" / "latest.json").read_text())["checkpoint"] == "iter_000002"
    # the Aligner now holds the best weights (what exports write), not the last ones
    assert all(torch.equal(al.params[k].detach(), v) for k, v in best_before.items())


def test_stop_without_gold_is_refused_before_training(data, tmp_path):
    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    with pytest.raises(ConfigError, match="on_hacking='stop' needs a gold reward"):
        Aligner(tiny_inpaint_pipeline(0), "brightness", _smoke(on_hacking="stop"), data, tmp_path, device="cpu")


