"""Issue 19, classes 6 and 7: values accepted that should not be, and messages that mislead.

The CLI cases are rows of the hostile table (tests/test_hostile_inputs.py, whose ``check_refusal`` also checks
that every line names only options of its command). Here: the SDK side a Python user meets, the ``requires``
mechanism over every declared relation, and the cases a one-line row cannot express.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from prefpaint_sdk.errors import DataError, InvalidInputError

runner = CliRunner()


def _app():
    from prefpaint_cli.main import app

    return app


def _leaf_commands(group, prefix=()):
    for name, cmd in group.commands.items():
        if getattr(cmd, "commands", None):
            yield from _leaf_commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


# ------------------------------------------------------------------------------------------------
# Model names that name no model: one check in hub.py, for every function that takes a name


@pytest.mark.parametrize("name", ["", ".", "..", "   ", "\t"])
def test_every_model_name_taker_refuses_an_empty_or_dot_name(name, tmp_path, monkeypatch):
    from prefpaint_sdk.hub import check_model_name, download_model, is_cached, resolve_model
    from prefpaint_sdk.reward.convert import resolve_reward_model

    monkeypatch.chdir(tmp_path)  # "" and "." would be this folder, ".." its parent
    for call in (lambda: check_model_name(name), lambda: resolve_model(name, offline=True),
                 lambda: download_model(name), lambda: is_cached(name),
                 lambda: resolve_reward_model(name, offline=True)):
        with pytest.raises(InvalidInputError, match="names no model"):
            call()


def test_a_model_folder_named_by_a_path_is_still_taken(tmp_path, monkeypatch):
    from prefpaint_sdk.hub import resolve_model

    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path / "m")
    assert resolve_model("../m", offline=True).path == (tmp_path / "m").resolve()


# ------------------------------------------------------------------------------------------------
# Non-finite weights on import, a masked image of another size


def test_convert_refuses_non_finite_weights_naming_the_tensor(tmp_path):
    import torch
    from reward_reference import make_official_state_dict

    from prefpaint_sdk.reward.convert import convert_official_checkpoint

    sd = make_official_state_dict(seed=1)
    key = next(k for k in sd if k.endswith("mlp.layers.2.weight"))
    sd[key][0, 0] = float("nan")
    torch.save(sd, tmp_path / "r.pt")
    with pytest.raises(DataError, match=r"'mlp\.layers\.2\.weight'"):
        convert_official_checkpoint(tmp_path / "r.pt", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.pt"], "something was written"


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    from prefpaint_sdk.reward import RewardModel
    from prefpaint_sdk.testing import save_tiny_reward_model

    return RewardModel.from_pretrained(save_tiny_reward_model(tmp_path_factory.mktemp("rm") / "rm"), device="cpu")


def test_score_refuses_a_masked_image_of_another_size(reward_model):
    import torch

    img, small = Image.new("RGB", (40, 40)), Image.new("RGB", (30, 20))
    with pytest.raises(InvalidInputError, match="masked image is 30x20 but image is 40x40"):
        reward_model.score(img, masked_images=small)
    with pytest.raises(InvalidInputError, match="masked image is 30x20 but image is 40x40"):
        reward_model.score(torch.rand(1, 3, 40, 40), masked_images=torch.rand(1, 3, 20, 30), grad=True)
    same = reward_model.score([img, img], masked_images=Image.new("RGB", (40, 40), (9, 9, 9)))
    assert same.scores.shape == (2,) and bool(torch.isfinite(same.scores).all())


# ------------------------------------------------------------------------------------------------
# Options that have no effect without another: one declared relation, checked once


def _relations():
    import typer as _typer

    for path, cmd in _leaf_commands(_typer.main.get_command(_app())):
        for name, needed in getattr(cmd.callback, "requires", {}).items():
            yield pytest.param(path, cmd, name, needed, id=f"{' '.join(path)}:{name}->{needed}")


def _given(param) -> list[str]:
    """Command-line words that give ``param`` a value that is on (values are checked after the relation)."""
    if getattr(param, "is_flag", False):
        return [param.opts[0]]
    return [param.opts[0], "1"] if param.opts[0].startswith("-") else ["1"]


def _required_words(cmd, skip=()) -> list[str]:
    words = []
    for p in cmd.params:
        if p.required and p.name not in skip:
            words += [p.opts[0], "x"] if p.opts[0].startswith("-") else ["x"]
    return words


def test_the_declared_relations_exist():
    found = {r.id for r in _relations()}
    assert {"extend:seam_strength->seam_pass", "train align:gold_weights->gold_reward", "rate:output->do_import",
            "train align:on_hacking->gold_reward",
            "inpaint:reward_weights->reward"} <= found, found  # inpaint --select needs --reward-model or --reward: its body


@pytest.mark.parametrize("path, cmd, name, needed", list(_relations()))
def test_an_option_without_the_one_it_needs_is_refused_naming_both(path, cmd, name, needed):
    from prefpaint_cli._flags import flag_of
    from prefpaint_cli._options import check_requires

    params = {p.name: p for p in cmd.params}
    assert name in params and needed in params, f"{path}: requires names unknown options"
    flag, other = flag_of(params[name]), flag_of(params[needed])
    # through the real app: exit 2, one line naming both flags, before the body runs (no model, no files)
    args = [*path, *_required_words(cmd), *_given(params[name])]
    r = runner.invoke(_app(), args, env={"COLUMNS": "2000"})
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert f"{flag} has no effect without {other}" in lines[0], lines[0]
    # with the option it needs, the relation holds
    ctx = cmd.make_context(path[-1], [*_required_words(cmd), *_given(params[name]), *_given(params[needed])])
    check_requires(cmd, ctx)


def test_seam_strength_without_seam_pass_is_refused_in_the_app_too():
    from prefpaint_apps.outpaint import check_run_options

    with pytest.raises(InvalidInputError, match="no effect without"):
        check_run_options(seam_strength=0.5)
    assert check_run_options(seam_pass=True)["seam_strength"] == 0.3
    assert check_run_options(seam_pass=True, seam_strength=0.4)["seam_strength"] == 0.4
    assert check_run_options()["seam_strength"] is None


# ------------------------------------------------------------------------------------------------
# --voxel-size bounded by the scene's extent


@pytest.fixture(scope="module")
def scene_frames():
    from _recon3d_fakes import scene as synthetic

    return synthetic(3, 160, 120).frames


def test_the_voxel_bound_follows_the_scene_extent(scene_frames):
    from prefpaint_apps.recon3d.extent import MAX_VOXELS_PER_AXIS, check_voxel_size, default_voxel_size, scene_extent

    extent = scene_extent(scene_frames)
    centres = np.stack([f.c2w[:3, 3] for f in scene_frames])
    depths = np.concatenate([f.load_depth()[f.load_depth() > 0] for f in scene_frames])
    assert extent >= np.ptp(centres, axis=0).max() and 0.5 * depths.max() < extent < 10 * depths.max()
    assert scene_extent(scene_frames, depth_trunc=1.0) < extent  # far points are cut as fusion cuts them
    with pytest.raises(InvalidInputError, match=rf"at most {MAX_VOXELS_PER_AXIS} per axis") as info:
        check_voxel_size(1e-6, extent)
    assert info.value.param == "voxel_size"
    advised = info.value.fix
    assert f"pass voxel_size={advised!r} or larger" in str(info.value)
    assert check_voxel_size(advised, extent) == advised  # the advice passes
    assert check_voxel_size(extent / 100, extent) == extent / 100
    median = float(np.median(depths))
    assert default_voxel_size(median, extent) == max(0.005, round(median / 150, 3))  # a compact scene: as before
    wide = 1000.0 * extent
    assert wide / default_voxel_size(median, wide) <= MAX_VOXELS_PER_AXIS  # a wide one: raised to the bound


def test_voxel_help_states_the_bound_the_app_applies():
    from prefpaint_apps.recon3d.extent import MAX_VOXELS_PER_AXIS

    r = runner.invoke(_app(), ["recon3d", "--help"], env={"COLUMNS": "2000"})
    assert r.exit_code == 0
    assert f"at most {MAX_VOXELS_PER_AXIS} voxels per axis" in " ".join(r.output.split())


# ------------------------------------------------------------------------------------------------
# Messages: numpy's pickle advice, stored errors in the command's terms, an all-failed batch


@pytest.mark.parametrize("content", [b"1 2 3\n", b"", b"\x93NUMPY\x01\x00v\x00{'descr'"], ids=["text", "empty", "cut"])
def test_npy_readers_give_one_line_of_their_own(tmp_path, content):
    from prefpaint_apps.recon3d.scene import read_depth

    from prefpaint_sdk.evaluation.masksets import load_depth
    from prefpaint_sdk.files import load_npy

    p = tmp_path / "d.npy"
    p.write_bytes(content)
    for call in (lambda: load_npy(p, "depth map"), lambda: load_depth(p, (4, 4)), lambda: read_depth(p, 1000.0)):
        with pytest.raises(DataError) as info:
            call()
        text = str(info.value)
        assert "d.npy" in text and "\n" not in text
        assert "allow_pickle" not in text and "pickle.load" not in text, text


def test_a_stored_error_is_shown_as_it_was_stored(tmp_path):
    """eval stores a case's error text (results.json, in the SDK's terms) and prints it as one 'failed:' line:
    no flag the command lacks is made up from it."""
    import typer as _typer
    from prefpaint_cli import _common

    eval_cmd = _typer.main.get_command(_app()).commands["eval"]
    text = "mask is 30x20 but image is 40x40;\npass resize_mask=True to resize it"
    with eval_cmd.make_context("eval", ["--data", "d", "-o", "o"]), _common.console.capture() as cap:
        _common.failed("a", text)
    shown = cap.get()
    assert shown.strip() == "failed: a: mask is 30x20 but image is 40x40; pass resize_mask=True to resize it"


def test_a_batch_whose_every_item_failed_says_so(tmp_path):
    from hostile.inputs import write_bomb

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        write_bomb(folder / f"b{i}.png")
    Image.new("L", (8, 8), 255).save(tmp_path / "mask.png")
    out = tmp_path / "nowhere"
    r = runner.invoke(_app(), ["inpaint", str(folder), str(tmp_path / "mask.png"), "-o", str(out), "--model",
                               "nobody/not-cached", "--offline"], env={"COLUMNS": "2000"})
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 2, r.output
    # a folder batch is a job: a job none of whose items is usable is refused in one line naming the first
    assert [ln.split(":")[0] for ln in lines] == ["error"], lines
    assert "no image of the folder is usable (2 of 2 failed)" in lines[-1] and "b0.png" in lines[-1], lines
    assert not out.exists()


# ------------------------------------------------------------------------------------------------
# Raw exceptions found by hostile inputs: now one line (exit 2)


@pytest.mark.parametrize("params", [[1, 2], "ab", 3])
def test_manifest_params_that_are_not_an_object(tmp_path, params):
    from prefpaint_sdk.jobs.manifest import read_job_manifest

    m = tmp_path / "jobs.jsonl"
    m.write_text(json.dumps({"id": "a", "image": "i.png", "mask": "m.png", "params": params}) + "\n")
    with pytest.raises(DataError, match=r"jobs\.jsonl:1 \(id 'a'\): 'params' must be an object"):
        read_job_manifest(m)


def test_an_empty_label_entry_is_one_line(tmp_path):
    from prefpaint_sdk.reward.data import read_reward_data
    from prefpaint_sdk.testing import write_synthetic_reward_dataset

    root = write_synthetic_reward_dataset(tmp_path / "d", n_prompts=2, per_prompt=2, size=16)
    labels = json.loads((root / "labels.json").read_text())
    labels[sorted(labels)[0]] = []
    (root / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(DataError, match=r"has score \[\]; expected \[score, rank\]"):
        read_reward_data(root)

