"""The evaluation protocol with fake inpainters and a fake reward: WinRate behaviour, resume, caching, data."""

import json

import numpy as np
import pytest
from _helpers_eval import FakeInpainter, FakeScorer, write_data
from PIL import Image

from prefpaint_sdk.errors import ConfigError, DataError, InvalidInputError
from prefpaint_sdk.evaluation import EvalReport, evaluate, mask_for, read_eval_data


def _run(tmp_path, model, baseline, data, **kw):
    kw.setdefault("samples", (1, 3))
    kw.setdefault("write_report", False)
    return evaluate(model, baseline, FakeScorer(), data, out_dir=tmp_path / kw.pop("out", "out"), steps=1, **kw)


def _pure(report: EvalReport) -> list[dict]:
    """Case records without run times, for comparing runs."""
    return [{k: v for k, v in c.items() if k != "seconds"} for c in report.cases]


def test_identical_models_tie_on_common_seeds(tmp_path):
    data = write_data(tmp_path / "data", n=8)
    rep = _run(tmp_path, FakeInpainter(0, "A"), FakeInpainter(0, "A"), data, samples=(1, 3))
    s1, s3 = rep.rows()
    # The baseline reuses sample 0's seed, so identical models produce identical samples: all ties, 50% exactly.
    assert (s1["wins"], s1["ties"], s1["losses"]) == (0, 8, 0) and s1["win_rate"] == 0.5
    assert s1["ci_low"] < 0.5 < s1["ci_high"]
    # At S=3 the best of 3 includes the baseline's own sample: a case is a win (another sample scored higher)
    # or a tie; the rate counts exactly those, ties half.
    best = [max(c["model"]["scores"][:3]) for c in rep.cases]
    wins = sum(b > c["baseline"]["score"] for b, c in zip(best, rep.cases))
    assert (s3["wins"], s3["ties"]) == (wins, 8 - wins) and s3["win_rate"] == (wins + (8 - wins) / 2) / 8
    assert 0 < wins < 8  # both kinds occur, so the count is tested


def test_identical_models_with_independent_seeds_are_near_half(tmp_path):
    data = write_data(tmp_path / "data", n=120, size=8)
    rep = _run(tmp_path, FakeInpainter(0, "A"), FakeInpainter(0, "A"), data, samples=(1,), common_seeds=False)
    (s1,) = rep.rows()
    assert s1["ci_low"] <= 0.5 <= s1["ci_high"]
    assert abs(s1["win_rate"] - 0.5) < 0.15
    assert s1["ties"] < 10  # 150 grey levels: ties are rare, and each counted half


def test_win_rate_does_not_decrease_with_s(tmp_path):
    data = write_data(tmp_path / "data", n=40, size=8)
    samples = (1, 2, 3, 5, 8)
    for common in (True, False):
        rep = _run(tmp_path, FakeInpainter(-30, "worse"), FakeInpainter(0, "B"), data, samples=samples,
                   common_seeds=common, out=f"out{common}")
        rates = [r["win_rate"] for r in rep.rows()]
        assert rates == sorted(rates), rates
        assert rates[-1] > rates[0]  # more samples really helped the worse model
        rewards = [r["mean_reward"] for r in rep.rows()]
        assert rewards == sorted(rewards)


def test_known_better_model_wins(tmp_path):
    data = write_data(tmp_path / "data", n=30, size=8)
    rep = _run(tmp_path, FakeInpainter(80, "better"), FakeInpainter(0, "B"), data, samples=(1,), common_seeds=False)
    (s1,) = rep.rows()
    assert s1["win_rate"] > 0.8 and s1["ci_low"] > 0.5
    worse = _run(tmp_path, FakeInpainter(0, "B"), FakeInpainter(80, "better"), data, samples=(1,), common_seeds=False,
                 out="out2").rows()[0]
    assert worse["win_rate"] < 0.2 and worse["ci_high"] < 0.5


def test_figures_match_a_hand_computation(tmp_path):
    data = write_data(tmp_path / "data", n=5)
    model, base = FakeInpainter(10, "A"), FakeInpainter(0, "B")
    rep = _run(tmp_path, model, base, data, samples=(1, 3))
    wins = 0.0
    best3, all3 = [], []
    for c in rep.cases:
        # The fake's reward is the mean brightness: recompute it from the saved files.
        scores = [np.asarray(Image.open(rep.out_dir / f), dtype=np.float64).mean() / 255 for f in c["model"]["files"]]
        b = np.asarray(Image.open(rep.out_dir / c["baseline"]["file"]), dtype=np.float64).mean() / 255
        assert scores == pytest.approx(c["model"]["scores"]) and b == pytest.approx(c["baseline"]["score"])
        assert c["model"]["seeds"] == [c["seed"] + k for k in range(3)] and c["baseline"]["seed"] == c["seed"]
        wins += 1.0 if max(scores) > b else (0.5 if max(scores) == b else 0.0)
        best3.append(max(scores))
        all3 += scores
    s3 = rep.rows()[1]
    assert s3["win_rate"] == pytest.approx(wins / 5)
    assert s3["mean_reward"] == pytest.approx(np.mean(best3))
    assert s3["reward_var"] == pytest.approx(np.var(all3, ddof=1))
    assert s3["within_var"] == pytest.approx(np.mean([np.var(c["model"]["scores"], ddof=1) for c in rep.cases]))
    assert s3["mean_bound"] == pytest.approx(0.1) and rep.rows()[0]["within_var"] is None


def test_interrupted_run_resumes_without_recomputing(tmp_path):
    data = write_data(tmp_path / "data", n=6)
    full = _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data, out="full")

    # Interrupted on the model's 5th call: 4 cases finished, the 5th had nothing cached.
    with pytest.raises(RuntimeError, match="interrupted"):
        _run(tmp_path, FakeInpainter(5, "A", fail_after=4), FakeInpainter(0, "B"), data, out="resumed")
    cached = sorted(p.stem for p in (tmp_path / "resumed" / "cache").glob("*.json"))
    assert cached == ["img00", "img01", "img02", "img03"]
    model, base = FakeInpainter(5, "A"), FakeInpainter(0, "B")
    resumed = _run(tmp_path, model, base, data, out="resumed")
    assert len(model.calls) == 2 and len(base.calls) == 2  # only img04 and img05
    assert _pure(resumed) == _pure(full)
    assert resumed.rows() == full.rows()
    # Running the same command once more computes nothing.
    again_model = FakeInpainter(5, "A")
    _run(tmp_path, again_model, FakeInpainter(0, "B"), data, out="resumed")
    assert again_model.calls == []


def test_more_samples_draw_only_the_missing_ones(tmp_path):
    data = write_data(tmp_path / "data", n=3)
    _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data, samples=(1, 3), out="grow")
    model, base = FakeInpainter(5, "A"), FakeInpainter(0, "B")
    grown = _run(tmp_path, model, base, data, samples=(1, 3, 5), out="grow")
    assert [n for _, n in model.calls] == [2, 2, 2] and base.calls == []
    fresh = _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data, samples=(1, 3, 5), out="fresh")
    strip = lambda r: [{k: v for k, v in c.items() if k not in ("seconds",)} for c in r.cases]  # noqa: E731
    assert [c["model"]["scores"] for c in strip(grown)] == [c["model"]["scores"] for c in strip(fresh)]
    assert grown.rows() == fresh.rows()


def test_other_settings_on_the_same_folder_are_refused(tmp_path):
    data = write_data(tmp_path / "data", n=2)
    _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data)
    with pytest.raises(ConfigError, match=r"other settings \(seed: 0 there, 1 now\).*pass overwrite=True"):
        _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data, seed=1)
    model = FakeInpainter(5, "A")
    rep = _run(tmp_path, model, FakeInpainter(0, "B"), data, seed=1, overwrite=True)
    assert len(model.calls) == 2 and len(rep.cases) == 2
    assert json.loads((tmp_path / "out" / "eval_config.json").read_text())["seed"] == 1


def test_a_failing_case_is_reported_and_the_rest_go_on(tmp_path):
    data = write_data(tmp_path / "data", n=3)
    (data / "images" / "img01.png").write_bytes(b"not an image")
    rep = _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data)
    assert [c["name"] for c in rep.cases] == ["img00", "img02"]
    assert [f["name"] for f in rep.failures] == ["img01"] and "img01.png" in rep.failures[0]["error"]
    for name in ("img00", "img01", "img02"):
        (data / "images" / f"{name}.png").write_bytes(b"bad")
    with pytest.raises(DataError, match="all 3 cases failed"):
        _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data, out="out2")


def test_generated_masks_match_mask_for_and_give_ground_truth(tmp_path):
    data = write_data(tmp_path / "data", n=3, masks=False)
    rep = _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data, masks="outpaint-strip")
    for c in rep.cases:
        saved = np.asarray(Image.open(rep.out_dir / c["files"]["mask"])) > 127
        expected, kind = mask_for("outpaint-strip", (32, 32), c["name"], seed=0)
        assert np.array_equal(saved, expected) and c["mask_kind"] == kind == "outpaint_strip"
        # The input is the ground truth of a generated hole: masked PSNR/SSIM are reported.
        assert c["has_ground_truth"] and None not in c["model"]["psnr"] and c["baseline"]["ssim"] is not None
    assert rep.rows()[0]["n_ground_truth"] == 3 and rep.baseline_row()["psnr"] is not None


def test_given_masks_have_no_ground_truth_unless_targets_exist(tmp_path):
    data = write_data(tmp_path / "data", n=2)
    rep = _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data)
    assert rep.rows()[0]["psnr"] is None and rep.rows()[0]["n_ground_truth"] == 0
    (data / "targets").mkdir()
    grey = Image.new("RGB", (32, 32), (10, 10, 10))
    grey.save(data / "targets" / "img00.png")
    rep = _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data, out="out2")
    c0, c1 = rep.cases
    assert c0["has_ground_truth"] and not c1["has_ground_truth"] and "target" in c0["files"]
    level = FakeInpainter(5).level(c0["model"]["seeds"][0])
    # Hole filled with `level` everywhere against a target of 10: PSNR = 10 log10(1 / ((level - 10)/255)^2).
    assert c0["model"]["psnr"][0] == pytest.approx(-20 * np.log10(abs(level - 10) / 255), abs=1e-6)


def test_masks_given_requires_every_mask(tmp_path):
    data = write_data(tmp_path / "data", n=2)
    (data / "masks" / "img01.png").unlink()
    rep = _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data, masks="given")
    assert [f["name"] for f in rep.failures] == ["img01"]
    assert "no mask but masks='given'" in rep.failures[0]["error"]
    auto = _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data, out="auto")
    assert [c["mask_kind"] for c in auto.cases][0] == "given" and auto.cases[1]["mask_kind"] != "given"


def test_manifest_and_in_memory_pairs(tmp_path):
    write_data(tmp_path / "data", n=2)
    (tmp_path / "m").mkdir()
    lines = [dict(image="../data/images/img00.png", mask="../data/masks/img00.png", name="first"),
             dict(image="../data/images/img01.png", mask=None)]
    (tmp_path / "m" / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    cases = read_eval_data(tmp_path / "m")
    assert [c.name for c in cases] == ["first", "img01"] and cases[1].mask is None
    (tmp_path / "m" / "manifest.jsonl").write_text('{"image": "missing.png"}\n')
    with pytest.raises(DataError, match="missing.png', which does not exist"):
        read_eval_data(tmp_path / "m")
    with pytest.raises(DataError, match="neither images/ nor manifest.jsonl"):
        read_eval_data(tmp_path)
    img = np.zeros((16, 16, 3), np.uint8)
    hole = np.zeros((16, 16), bool)
    hole[4:12, 4:12] = True
    rep = _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), [(img, hole), (img, hole)], out="mem")
    assert [c["name"] for c in rep.cases] == ["case0000", "case0001"]


def test_bad_arguments(tmp_path):
    data = write_data(tmp_path / "data", n=1)
    for kw, msg in [(dict(samples=(0, 3)), "samples must be integers >= 1"),
                    (dict(masks="circles"), "mask kind 'circles' is unknown"),
                    (dict(ground_truth="maybe"), "ground_truth must be one of"),
                    (dict(ci="exact"), "ci must be 'wilson' or 'bootstrap'")]:
        with pytest.raises(InvalidInputError, match=msg):
            _run(tmp_path, FakeInpainter(5, "A"), FakeInpainter(0, "B"), data, out=f"bad{len(msg)}", **kw)
    with pytest.raises(InvalidInputError, match="reward_model is a int without .score"):
        evaluate(FakeInpainter(), FakeInpainter(), 3, data, out_dir=tmp_path / "x")


def test_evaluate_is_exported_as_the_function():
    import prefpaint_sdk
    import prefpaint_sdk.evaluation.report  # noqa: F401 - importing the package must not shadow the function
    from prefpaint_sdk import EvalReport as R
    from prefpaint_sdk import evaluate as ev

    assert ev is evaluate and R is EvalReport and prefpaint_sdk.evaluate is evaluate
