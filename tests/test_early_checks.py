"""Early checks and skip-and-report (issue 19, classes 4 and 5): what the hostile table's rows cannot express.

* training data: an unreadable image is found by decoding it before any model loads, skipped with a warning
  and counted against ``max_bad_fraction``; a run goes on past it, and a run above the limit is refused;
* a training run that fails before its first iteration leaves no run folder (nor ``align_config.json``);
* the model-free checks read from config files alone (a model folder without weights passes them).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from _helpers_align import fast_config, make_data
from hostile.inputs import truncate
from PIL import Image
from typer.testing import CliRunner

runner = CliRunner()


def _truncated_jpeg(p: Path) -> None:
    """A JPEG cut short, under ``p``'s name: its header is whole, and Pillow's ``verify()`` passes it."""
    buf = io.BytesIO()
    Image.open(p).convert("RGB").save(buf, "JPEG")
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])


def _hollow(src: Path, dest: Path) -> Path:
    """A copy of a pipeline folder with its config files and no weights file."""
    shutil.copytree(src, dest)
    for p in dest.rglob("*.safetensors"):
        p.unlink()
    return dest


# ------------------------------------------------------------------------------------------------
# Training data: decoded whole, bad images skipped and counted


def test_align_data_skips_a_truncated_image_and_counts_it(tmp_path, caplog):
    from prefpaint_sdk.align.data import AlignDataset

    data = make_data(tmp_path / "d", n=10, size=32)
    truncate(data / "images" / "03.png")
    _truncated_jpeg(data / "images" / "07.png")
    with caplog.at_level("WARNING", logger="prefpaint_sdk"):
        ds = AlignDataset(data, 32, seed=0, max_bad_fraction=0.2)
    assert (len(ds), ds.skipped) == (8, 2)
    assert {Path(img).name for img, _, _ in ds.entries} == {f"{i:02d}.png" for i in range(10)} - {"03.png", "07.png"}
    text = caplog.text
    assert "03.png" in text and "07.png" in text, text  # each skipped file is named
    assert "skipped 2 of 10 images" in text and "limit 20%" in text, text
    for i in range(len(ds)):  # every kept item loads: nothing left to stop a run later
        assert ds.get(i).image.size == (32, 32)


def test_align_data_over_the_bad_fraction_is_refused_naming_the_limit(tmp_path):
    from prefpaint_sdk import DataError
    from prefpaint_sdk.align.data import AlignDataset

    data = make_data(tmp_path / "d", n=10, size=32)
    for name in ("01.png", "02.png"):
        truncate(data / "images" / name)
    AlignDataset(data, 32, max_bad_fraction=0.2)  # 2 of 10 = 20%: at the limit, allowed
    with pytest.raises(DataError, match=r"2 of 10 images cannot be used \(20%\), more than the limit of 10% "
                                        r"\(max_bad_fraction\); first: .*01\.png"):
        AlignDataset(data, 32, max_bad_fraction=0.1)


def test_align_config_refuses_a_bad_fraction_outside_0_to_1():
    from prefpaint_sdk import ConfigError

    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ConfigError, match="max_bad_fraction"):
            fast_config(max_bad_fraction=bad).validate()


def test_train_align_runs_past_a_truncated_image(tmp_path, tiny_pipeline_dir):
    """The CLI run that a truncated image used to stop after the model load (leaving align_config.json)."""
    from prefpaint_cli.main import app

    data = make_data(tmp_path / "d", n=8, size=32)
    truncate(data / "images" / "05.png")
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "align", "--data", str(data), "--out", str(out), "--model", str(tiny_pipeline_dir),
                            "--reward", "brightness", "--preset", "cpu-smoke", "--iterations", "1", "--no-export",
                            "--offline", "--set", "eval_every=0", "--set", "save_every=1", "--set", "log_with=none",
                            "--set", "max_bad_fraction=0.2"], env={"COLUMNS": "2000"})
    assert r.exit_code == 0, r.output
    assert "05.png" in r.stderr and "skipped 1 of 8 images" in r.stderr, r.stderr
    assert (out / "checkpoints" / "latest.json").is_file()
    assert json.loads((out / "align_config.json").read_text())["max_bad_fraction"] == 0.2


def test_reward_data_decodes_every_image(tmp_path):
    """A truncated JPEG passes Pillow's verify(); decoded, it is skipped and named (or refused over the limit)."""
    from prefpaint_sdk import DataError
    from prefpaint_sdk.reward import read_reward_data
    from prefpaint_sdk.testing import write_synthetic_reward_dataset

    root = write_synthetic_reward_dataset(tmp_path / "r", n_prompts=5, per_prompt=2, size=32)
    _truncated_jpeg(root / "inpaint" / "p0002_1.png")
    data = read_reward_data(root, max_bad_fraction=0.2)
    assert len(data.samples) == 9
    assert [(Path(f).name, why) for f, why in data.skipped] == [("p0002_1.png", "truncated or corrupt")]
    with pytest.raises(DataError, match=r"1 of 10 samples .* more than 1% allowed; first: .*p0002_1\.png"):
        read_reward_data(root)


# ------------------------------------------------------------------------------------------------
# A run that fails before its first iteration leaves nothing


def _failing_reward(images, masks, masked_images):
    raise RuntimeError("the reward server is down")


@pytest.mark.parametrize("existed", [False, True], ids=["new-folder", "empty-folder"])
def test_a_run_that_fails_before_its_first_iteration_leaves_no_run(tmp_path, tiny_pipeline_dir, existed):
    from prefpaint_sdk.align.trainer import Aligner

    data = make_data(tmp_path / "d", n=4, size=32)
    out = tmp_path / "run"
    if existed:
        out.mkdir()
    al = Aligner.from_pretrained(tiny_pipeline_dir, _failing_reward, fast_config(iterations=1), data, out, device="cpu")
    with pytest.raises(RuntimeError, match="reward server is down"):
        al.train()
    if existed:
        assert out.is_dir() and not any(out.iterdir()), sorted(p.name for p in out.iterdir())
    else:
        assert not out.exists(), sorted(p.name for p in out.iterdir())


def test_a_refused_run_folder_is_left_as_it_was(tmp_path, tiny_pipeline_dir):
    """The clean-up removes only what the failing run wrote: a folder refused as a used run keeps its files."""
    from prefpaint_sdk import OutputExistsError
    from prefpaint_sdk.align.trainer import Aligner

    data = make_data(tmp_path / "d", n=4, size=32)
    out = tmp_path / "run"
    out.mkdir()
    (out / "align_config.json").write_text('{"earlier": true}\n')
    with pytest.raises(OutputExistsError):  # from_pretrained refuses it before the load; train() would too
        Aligner.from_pretrained(tiny_pipeline_dir, _failing_reward, fast_config(iterations=1), data, out,
                                device="cpu").train()
    assert (out / "align_config.json").read_text() == '{"earlier": true}\n'


# ------------------------------------------------------------------------------------------------
# Model-free checks read config files only


def test_model_limits_come_from_the_config_files(tmp_path, tiny_pipeline_dir):
    from prefpaint_sdk import Inpainter, InvalidInputError, ModelNotFoundError
    from prefpaint_sdk.engines import check_model_limits

    hollow = _hollow(tiny_pipeline_dir, tmp_path / "hollow")
    assert check_model_limits(hollow, steps=999) == "sd"
    with pytest.raises(InvalidInputError, match="steps must be ≤ 999") as info:
        check_model_limits(hollow, steps=1000)
    assert info.value.param == "steps"
    assert check_model_limits("nobody/not-cached-model", steps=1000, offline=True) is None  # loading says why
    resolved, family = Inpainter.check_files(hollow, device="cpu", steps=50)
    assert (resolved.path, family) == (hollow, "sd")
    with pytest.raises(InvalidInputError, match="steps"):
        Inpainter.from_pretrained(hollow, device="cpu", steps=1000)
    with pytest.raises(InvalidInputError, match="select"):
        Inpainter.from_pretrained(hollow, device="cpu", select="best")
    with pytest.raises(ModelNotFoundError):  # the hollow folder passes every check; only its load fails
        Inpainter.from_pretrained(hollow, device="cpu", steps=50)


def test_reward_files_are_checked_without_loading(tmp_path, monkeypatch):
    import torch

    from prefpaint_sdk import PickleRefusedError
    from prefpaint_sdk.errors import CorruptFileError
    from prefpaint_sdk.reward import RewardModel
    from prefpaint_sdk.reward.checks import check_reward_model
    from prefpaint_sdk.testing import save_tiny_reward_model

    folder = save_tiny_reward_model(tmp_path / "rm")
    monkeypatch.setattr(RewardModel, "load_state_dict", lambda *a, **k: pytest.fail("a check loaded the weights"))
    assert check_reward_model(folder, offline=True).path == folder
    evil = tmp_path / "vinv.pt"
    torch.save({"v": torch.eye(4), "x": object()}, evil)  # a pickle of more than tensors
    with pytest.raises(PickleRefusedError, match="vinv.pt"):
        check_reward_model(folder, offline=True, v_inverse=evil)
    truncate(folder / "trust.safetensors")
    with pytest.raises(CorruptFileError, match="trust.safetensors"):
        check_reward_model(folder, offline=True)


@pytest.mark.parametrize(("mode", "ok"), [("RGBA", True), ("LA", True), ("P", True), ("L", False), ("RGB", False)])
def test_alpha_mask_rule_from_the_header(tmp_path, mode, ok):
    from prefpaint_sdk import InvalidInputError
    from prefpaint_sdk.imaging import check_alpha_mask, load_mask

    p = tmp_path / "m.png"
    Image.new(mode, (8, 8)).save(p)
    if ok:
        check_alpha_mask(p)
        load_mask(p, from_alpha=True)  # the same rule as the load
    else:
        for check in (check_alpha_mask, lambda q: load_mask(q, from_alpha=True)):
            with pytest.raises(InvalidInputError, match="no alpha channel; drop mask_from_alpha"):
                check(p)


def test_recon3d_one_readable_frame_is_enough_before_the_load(tmp_path):
    from _recon3d_fakes import scene as synthetic
    from prefpaint_apps.recon3d import Recon3DConfig, check_inputs
    from prefpaint_apps.recon3d.testing import write_scene

    from prefpaint_sdk import DataError

    write_scene(synthetic(3, 160, 120).frames, tmp_path / "scene", "redwood")
    colour = sorted((tmp_path / "scene" / "color").glob("*.png"))
    for p in colour[:2]:
        truncate(p, 40)
    cfg = Recon3DConfig(depth_model="none")
    assert len(check_inputs(tmp_path / "scene", tmp_path / "out", cfg).frames) == 3  # the run skips the bad two
    truncate(colour[2], 40)
    with pytest.raises(DataError, match="all 3 frames .* are unreadable"):
        check_inputs(tmp_path / "scene", tmp_path / "out", cfg)
    assert not (tmp_path / "out").exists()
