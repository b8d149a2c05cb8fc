"""Eval goes on: a bomb, an oversized or an unreadable input is reported and skipped; the rest are evaluated."""

import json

import numpy as np
import pytest
from _helpers_eval import FakeInpainter, FakeScorer, write_data
from PIL import Image

from prefpaint_sdk.errors import DataError, InvalidInputError
from prefpaint_sdk.evaluation import EvalReport, evaluate
from prefpaint_sdk.imaging import set_max_pixels
from prefpaint_sdk.testing import write_png_bomb


def _run(tmp_path, data, model=None, **kw):
    kw.setdefault("samples", (1,))
    return evaluate(model or FakeInpainter(5, "A"), FakeInpainter(0, "B"), FakeScorer(), data,
                    out_dir=tmp_path / "out", steps=1, **kw)


def test_a_bomb_among_the_cases_is_skipped_and_named(tmp_path):
    data = write_data(tmp_path / "data", n=4)
    bomb = write_png_bomb(data / "images" / "img02.png")
    assert bomb.stat().st_size < 100
    model = FakeInpainter(5, "A")
    rep = _run(tmp_path, data, model)
    assert [c["name"] for c in rep.cases] == ["img00", "img01", "img03"]
    assert [f["name"] for f in rep.failures] == ["img02"]
    err = rep.failures[0]["error"]
    assert "img02.png" in err and "10000000000" in err.replace(",", "").replace("_", "")  # names file and size
    assert len(model.calls) == 3  # the bomb never reached the model
    assert not (tmp_path / "out" / "images" / "img02").exists()
    # The report says which were skipped.
    assert "1 skipped" in rep.summary().splitlines()[0]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [f["name"] for f in saved["failures"]] == ["img02"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Skipped cases (1)" in html and "img02" in html
    assert EvalReport.load(tmp_path / "out").failures == rep.failures


def test_oversized_mask_and_unreadable_target_skip_only_their_cases(tmp_path):
    data = write_data(tmp_path / "data", n=4)
    Image.fromarray(np.zeros((200, 200), np.uint8)).save(data / "masks" / "img01.png")  # 40000 px
    (data / "targets").mkdir()
    (data / "targets" / "img03.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    set_max_pixels(10_000)
    try:
        rep = _run(tmp_path, data)
    finally:
        set_max_pixels(None)
    assert [c["name"] for c in rep.cases] == ["img00", "img02"]
    errors = {f["name"]: f["error"] for f in rep.failures}
    assert set(errors) == {"img01", "img03"}
    assert "img01.png" in errors["img01"] and "10000" in errors["img01"].replace(",", "")
    assert "targets/img03.png" in errors["img03"]


def test_only_bombs_fail_before_any_model_loads(tmp_path):
    data = write_data(tmp_path / "data", n=2)
    for name in ("img00", "img01"):
        write_png_bomb(data / "images" / f"{name}.png")
    with pytest.raises(DataError, match="all 2 cases failed their input checks, before any model loaded"):
        # Model ids that do not exist: the inputs are refused first.
        evaluate("no/such-model", "no/such-baseline", "no/such-reward", data, samples=(1,), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_output_folder_problems_are_found_before_models_load(tmp_path):
    data = write_data(tmp_path / "data", n=1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="is a file"):
        evaluate("no/such-model", None, "no/such-reward", data, out_dir=tmp_path / "file")
    with pytest.raises(InvalidInputError, match="file"):
        evaluate("no/such-model", None, "no/such-reward", data, out_dir=tmp_path / "file" / "sub")


def test_non_finite_inpaint_setting_is_refused_by_name(tmp_path):
    data = write_data(tmp_path / "data", n=1)
    with pytest.raises(InvalidInputError, match="guidance_scale must be a finite number") as info:
        evaluate("no/such-model", None, "no/such-reward", data, out_dir=tmp_path / "out",
                 inpaint_kwargs=dict(guidance_scale=float("inf")))
    assert info.value.param == "guidance_scale"
