"""One meaning for each measure: one WinRate (ties half) and one reward framing, whichever path computes it."""

import math

import numpy as np
import pytest
import torch
from _helpers_eval import FakeInpainter, FakeScorer, write_data
from PIL import Image

from prefpaint_sdk import Inpainter
from prefpaint_sdk import evaluation as eval_pkg
from prefpaint_sdk.align import as_reward_fn
from prefpaint_sdk.align import evaluation as align_evaluation
from prefpaint_sdk.errors import InvalidInputError
from prefpaint_sdk.evaluation import EvalReport, evaluate
from prefpaint_sdk.reward import winrate
from prefpaint_sdk.reward.framing import reward_view, reward_views

NAN = float("nan")


# ------------------------------------------------------------------------------------------------
# WinRate


@pytest.mark.parametrize(("a", "b", "tol", "expected"), [
    ([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 5.0, 4.0], 0.0, 0.5),     # tie, win, loss, tie -> (1 + 2/2) / 4
    ([3.0, 2.0], [1.0, 2.0], 0.0, 0.75),                          # win, tie
    ([2.0, 2.0, 2.0], [2.0, 2.0, 2.0], 0.0, 0.5),                 # identical models: exactly half
    ([1.4, 2.0, 5.0], [1.0, 3.0, 1.0], 0.5, 0.5),                 # tie within tolerance, loss, win
    ([1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0, 2.0], 0.0, 0.5),
    ([0.3], [0.2], 0.0, 1.0),
])
def test_win_rate_exact_values_with_ties_as_half(a, b, tol, expected):
    assert winrate.win_rate(a, b, tol) == expected
    st = winrate.win_stats(a, b, tie_tolerance=tol)
    assert st.win_rate == expected and st.wins + st.ties / 2 == expected * len(a)


def test_one_definition_everywhere():
    # The aligner's held-out evaluation and eval's stats use the very same function.
    assert align_evaluation.win_rate is winrate.win_rate
    assert eval_pkg.win_rate is winrate.win_rate and eval_pkg.outcomes is winrate.outcomes
    with open(align_evaluation.__file__) as f:
        assert "def win_rate" not in f.read()


def test_aligner_form_skips_unscored_pairs_and_counts_ties_half():
    # The aligner's pairs: (NaN, 1) dropped; (2, 2) tie; (3, 1) win; (0, 1) loss -> (1 + 0.5) / 3.
    assert winrate.win_rate([NAN, 2.0, 3.0, 0.0], [1.0, 2.0, 1.0, 1.0], skip_nonfinite=True) == pytest.approx(0.5)
    # The starting model against itself: every pair ties, so 50% (the old aligner formula gave 0%).
    assert winrate.win_rate([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], skip_nonfinite=True) == 0.5
    assert winrate.win_rate([NAN], [1.0], skip_nonfinite=True) is None
    with pytest.raises(InvalidInputError, match="finite"):
        winrate.win_rate([NAN], [1.0])


@pytest.mark.parametrize("tol", [NAN, math.inf, -0.1, "x"])
def test_tie_tolerance_must_be_finite_and_non_negative(tol):
    with pytest.raises(InvalidInputError) as info:
        winrate.outcomes([1.0], [0.0], tol)
    assert info.value.param == "tie_tolerance"
    rep = EvalReport(config={}, samples=(1,), cases=[])
    with pytest.raises(InvalidInputError, match="tie_tolerance"):
        rep.with_stats(tie_tolerance=tol)


def test_nan_tie_tolerance_is_refused_before_any_model_loads(tmp_path):
    data = write_data(tmp_path / "data", n=2)
    with pytest.raises(InvalidInputError, match="tie_tolerance") as info:
        # The model ids do not exist: the error must come from the value, before loading is tried.
        evaluate("no/such-model", "no/such-baseline", "no/such-reward", data, samples=(1,),
                 out_dir=tmp_path / "out", tie_tolerance=NAN)
    assert info.value.param == "tie_tolerance"
    assert not (tmp_path / "out").exists()


def test_eval_report_counts_ties_half(tmp_path):
    # Identical models with common seeds tie on every case: 50%, the truth; a NaN tolerance would also say 50%
    # for models that always lose, which is why it is refused.
    data = write_data(tmp_path / "data", n=4)
    rep = evaluate(FakeInpainter(0, "A"), FakeInpainter(0, "A"), FakeScorer(), data, samples=(1,),
                   out_dir=tmp_path / "same", write_report=False)
    assert rep.rows()[0]["win_rate"] == 0.5 and rep.rows()[0]["ties"] == 4
    worse = evaluate(FakeInpainter(-200, "W"), FakeInpainter(0, "A"), FakeScorer(), data, samples=(1,),
                     out_dir=tmp_path / "worse", write_report=False)
    assert worse.rows()[0]["win_rate"] == 0.0


# ------------------------------------------------------------------------------------------------
# Reward framing


def test_reward_views_crop_the_box_and_fill_the_hole():
    src = Image.fromarray(np.arange(8 * 6 * 3, dtype=np.uint8).reshape(6, 8, 3))
    cand = Image.fromarray(np.full((6, 8, 3), 200, np.uint8))
    hole = np.zeros((6, 8), bool)
    hole[2:4, 3:5] = True
    views, masked = reward_views([cand, cand], src, hole, (2, 1, 6, 5), (255, 0, 10))
    assert [v.size for v in views] == [(4, 4), (4, 4)] and masked.size == (4, 4)
    m = np.asarray(masked)
    exp = np.asarray(src)[1:5, 2:6].copy()
    exp[1:3, 1:3] = (255, 0, 10)
    assert np.array_equal(m, exp)
    view, whole = reward_view(cand, hole, None, (0, 0, 0), source=src)
    assert view.size == (8, 6) and np.array_equal(np.asarray(whole)[hole], np.zeros((4, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="outside"):
        reward_views([cand], src, hole, (0, 0, 9, 6))


@pytest.fixture(scope="module")
def judge():
    from prefpaint_sdk.testing import tiny_reward_model

    rm = tiny_reward_model(seed=3).eval()
    rm.mask_fill = (255, 0, 255)  # not black: the aligner's path must honour the model's fill too
    return rm


def test_same_candidate_same_score_through_inpainter_evaluate_and_aligner(tiny_inpainter, judge, tmp_path):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))  # larger than the 64 px model
    hole = np.zeros((96, 128), bool)
    hole[40:52, 90:104] = True
    call = dict(steps=2, crop_margin=4, mask_blur=2)
    inp = Inpainter(tiny_inpainter.pipeline, model_id="tiny", reward_model=judge)

    rep = evaluate(inp, inp, judge, [dict(name="c", image=img, mask=hole)], samples=(2,), out_dir=tmp_path / "ev",
                   steps=2, inpaint_kwargs=dict(crop_margin=4, mask_blur=2), write_report=False)
    case = rep.cases[0]

    # Inpainter's best-of-N scores of the same seeds, in the same frame.
    res = inp(img, hole, num_candidates=2, seed=case["model"]["seeds"][0], **call)
    assert res.box == tuple(case["box"]) and res.box != (0, 0, 128, 96)
    assert np.allclose(res.scores, case["model"]["scores"], atol=1e-5)

    # The aligner's reward path: its samples are the model's frame (the context box), pasted back.
    x0, y0, x1, y1 = res.box
    crops = np.stack([np.asarray(c.crop(res.box)) for c in res.candidates])
    images = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    masks = torch.from_numpy(np.stack([hole[y0:y1, x0:x1]] * 2))
    src = torch.from_numpy(np.array(img.crop(res.box))).permute(2, 0, 1)[None].float() / 255
    masked = (src * (~masks[:, None]).float()).expand(2, -1, -1, -1)  # as the aligner builds it: input, hole black
    rb = as_reward_fn(judge)(images, masks, masked)
    assert np.allclose(rb.scores.numpy(), res.scores, atol=1e-5)

    # And the frame matters: the whole picture scores differently (the old eval framing).
    whole = judge.score(res.candidates, masked_images=reward_view(res.candidates[0], hole, None, judge.mask_fill,
                                                                  source=img)[1])
    assert not np.allclose(whole.scores.numpy(), res.scores, atol=1e-4)


def test_aligner_logs_the_same_win_rate_ties_half(tmp_path):
    # A reward that cannot tell samples apart: every held-out pair ties, so the WinRate is 50% in the result
    # and in log.jsonl (the old aligner formula counted ties as losses and logged 0%).
    import json

    from _helpers_align import fast_config, make_data

    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    def flat(images, masks, masked_images):
        return torch.zeros(images.shape[0])

    data = make_data(tmp_path / "data", n=4)
    al = Aligner(tiny_inpaint_pipeline(0), flat, fast_config(iterations=1, eval_every=1, eval_size=2, eval_samples=1),
                 data, tmp_path / "run", device="cpu")
    res = al.train()
    assert res.evals[-1]["win_rate"] == 0.5
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["eval/win_rate"] for r in logged if "eval/win_rate" in r] == [0.5]
