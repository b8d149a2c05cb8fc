"""``prefpaint eval`` whose every case fails (exit 2) leaves the output folder as it found it: no folder when
it made it, else only what was there (``eval_config.json``, ``fingerprints.json``, ``cache/``, ``images/``
are the run's own). The inputs pass the header checks (truncated PNGs), so the models load and the folder
is claimed before the cases fail one by one."""

from __future__ import annotations

import json

import pytest
from _helpers_eval import write_data
from typer.testing import CliRunner

runner = CliRunner()
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    from prefpaint_sdk.testing import save_tiny_reward_model

    return save_tiny_reward_model(tmp_path_factory.mktemp("all-failed-rm") / "tiny-reward")


def _truncate_images(data):
    for p in (data / "images").iterdir():
        b = p.read_bytes()
        p.write_bytes(b[: len(b) // 2])  # a whole PNG header, half of the pixel data


def _eval(data, out, model, rm):
    from prefpaint_cli.main import app

    args = ["eval", "--data", data, "-o", out, "--model", model, "--baseline", model, "--reward-model", rm,
            "--samples", "1", "--steps", "1", "--device", "cpu", "--dtype", "float32", "--offline"]
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "2000"})


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_every_case_failing_leaves_no_folder(tmp_path, tiny_pipeline_dir, rm_dir):
    data = write_data(tmp_path / "data", n=2, size=32)
    _truncate_images(data)
    r = _eval(data, tmp_path / "ev", tiny_pipeline_dir, rm_dir)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "all 2 cases failed;" in r.output, r.output
    assert not (tmp_path / "ev").exists(), _tree(tmp_path / "ev")


def test_every_case_failing_leaves_only_what_was_there(tmp_path, tiny_pipeline_dir, rm_dir):
    data = write_data(tmp_path / "data", n=2, size=32)
    _truncate_images(data)
    out = tmp_path / "ev"
    (out / "images").mkdir(parents=True)  # a folder of the user's that happens to have the run's names
    (out / "notes.txt").write_text("mine")
    before = _tree(out)
    r = _eval(data, out, tiny_pipeline_dir, rm_dir)
    assert r.exit_code == 2, r.output
    assert _tree(out) == before and (out / "notes.txt").read_text() == "mine"


def test_a_rerun_whose_new_cases_all_fail_keeps_the_earlier_evaluation(tmp_path, tiny_pipeline_dir, rm_dir):
    """Cases published before stay, and the folder's settings with them: the next run resumes from them."""
    data = write_data(tmp_path / "data", n=2, size=32)
    out = tmp_path / "ev"
    r = _eval(data, out, tiny_pipeline_dir, rm_dir)
    assert r.exit_code == 0, r.output
    config = json.loads((out / "eval_config.json").read_text())
    before = _tree(out)
    new = write_data(tmp_path / "new", n=2, size=32, seed=1)
    for p in (new / "images").iterdir():  # other case names: nothing of theirs is in the cache
        p.rename(p.with_name("x" + p.name))
    for p in (new / "masks").iterdir():
        p.rename(p.with_name("x" + p.name))
    _truncate_images(new)
    r = _eval(new, out, tiny_pipeline_dir, rm_dir)
    assert r.exit_code == 2 and "all 2 cases failed;" in r.output, r.output  # failed in the run, not the screening
    assert _tree(out) == before and json.loads((out / "eval_config.json").read_text()) == config
