"""Corrupt state files get one line naming the file and the fix; used run folders are refused from Python.

Covers the shared reader (``prefpaint_sdk.state``) and every place that reads our state back: the Aligner's
checkpoints (resume), ``train_reward``'s resume state, reward model folders (config, weights, trust) and the
converted-reward cache.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from prefpaint_sdk.errors import CorruptFileError, DataError, InvalidInputError, OutputExistsError, PickleRefusedError
from prefpaint_sdk.state import json_safe, read_json, read_tensors, state_errors, write_json_state

sys.path.insert(0, str(Path(__file__).parent))
from _helpers_align import fast_config, make_data  # noqa: E402

FIX = "delete it and start over"


# ------------------------------------------------------------------------------------------------
# The reader
@pytest.mark.parametrize("content, problem", [
    (b"", "is empty"),
    (b"  \n", "is empty"),
    (b'{"iteration": 3, "num_proc', "is truncated or not valid JSON"),
    (b"\xff\xfe garbage", "is truncated or not valid JSON"),
    (b"[1, 2, 3]", "holds a JSON array, not a JSON object"),
    (b'"text"', "holds a string, not a JSON object"),
    (b'{"num_processes": 1}', "lacks the key 'iteration'"),
    (b'{"iteration": "3", "num_processes": 1}', "has 'iteration' as a string, not an integer"),
    (b'{"iteration": true, "num_processes": 1}', "has 'iteration' as true/false, not an integer"),
])
def test_read_json_names_the_file_the_problem_and_the_fix(tmp_path, content, problem):
    p = tmp_path / "state.json"
    p.write_bytes(content)
    with pytest.raises(CorruptFileError) as err:
        read_json(p, what="resume state", fix=FIX, keys={"iteration": int, "num_processes": int})
    msg = str(err.value)
    assert msg == f"resume state '{p}' {problem}; {FIX}" or (msg.startswith(f"resume state '{p}' {problem}") and msg.endswith(FIX))
    assert "\n" not in msg
    assert err.value.exit_code == 2


def test_read_json_accepts_a_good_file_and_missing_file_is_named(tmp_path):
    p = tmp_path / "state.json"
    p.write_text(json.dumps({"iteration": 3, "num_processes": 1, "baseline": None, "lr": 1}))
    assert read_json(p, what="x", fix=FIX, keys={"iteration": int, "baseline": (list, type(None)), "lr": float})["iteration"] == 3
    with pytest.raises(CorruptFileError, match=r"x '.*nope.json' is missing; delete it"):
        read_json(tmp_path / "nope.json", what="x", fix=FIX)


def test_read_tensors_refuses_empty_random_truncated_pickled_and_incomplete(tmp_path):
    good = tmp_path / "good.safetensors"
    save_file({"a": torch.arange(6.0), "b": torch.ones(2, 3)}, str(good))
    assert torch.equal(read_tensors(good, what="w", fix=FIX, keys=["a"])["a"], torch.arange(6.0))

    cases = {
        "empty": (b"", "is empty"),
        "random": (np.random.default_rng(0).bytes(300), "is truncated or not a safetensors file"),
        "truncated": (good.read_bytes()[:-7], "is truncated or not a safetensors file"),
    }
    for name, (data, problem) in cases.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(data)
        with pytest.raises(CorruptFileError) as err:
            read_tensors(p, what="checkpoint weights", fix=FIX)
        assert str(err.value).startswith(f"checkpoint weights '{p}' {problem}") and str(err.value).endswith(FIX), name
    with pytest.raises(CorruptFileError, match=r"lacks the tensor\(s\) 'c'"):
        read_tensors(good, what="w", fix=FIX, keys=["a", "c"])
    pickled = tmp_path / "pickled.safetensors"
    torch.save({"a": torch.zeros(2)}, pickled)
    with pytest.raises(PickleRefusedError, match="is a pickle file; PrefPaint does not load pickles: convert it to safetensors"):
        read_tensors(pickled, what="w", fix=FIX)


def test_nan_weights_are_a_data_error_naming_file_and_tensor(tmp_path):
    p = tmp_path / "w.safetensors"
    save_file({"ok": torch.ones(3), "bad": torch.tensor([1.0, float("nan"), float("inf")])}, str(p))
    with pytest.raises(DataError, match=r"weights '.*w.safetensors' holds 2 NaN/inf value\(s\) in 'bad'"):
        read_tensors(p, what="weights", fix=FIX, finite=True)
    assert set(read_tensors(p, what="weights", fix=FIX)) == {"ok", "bad"}  # only checked when asked


def test_state_errors_turn_low_level_failures_into_one_line(tmp_path):
    with pytest.raises(CorruptFileError, match=r"^opt '.*o.json' does not hold what this run expects \(KeyError: 'numpy'\); fix$"):
        with state_errors(tmp_path / "o.json", "opt", "fix"):
            {}["numpy"]
    with pytest.raises(OutputExistsError):  # toolkit errors pass through unchanged
        with state_errors(tmp_path / "o.json", "opt", "fix"):
            raise OutputExistsError("x")


def test_state_json_is_strict_and_nan_round_trips_as_null(tmp_path):
    p = write_json_state(tmp_path / "s.json", {"baseline": [1.0, float("nan")], "x": np.float32(2.5), "inf": float("inf")})
    text = p.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"baseline": [1.0, None], "x": 2.5, "inf": None}
    assert json_safe((1, float("-inf"))) == [1, None]


# ------------------------------------------------------------------------------------------------
# The Aligner's checkpoints
@pytest.fixture(scope="module")
def align_ckpt(tmp_path_factory):
    """A real (iteration-0) checkpoint of a tiny Aligner, saved once; tests corrupt copies of it."""
    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    root = tmp_path_factory.mktemp("align_ckpt")
    data = make_data(root / "data", n=4)
    al = Aligner(tiny_inpaint_pipeline(0), "brightness", fast_config(iterations=1), data, root / "run", device="cpu")
    al.baseline = [0.5, float("nan")]
    path = al.save_checkpoint()
    return al, path


def _corrupt_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src.parent, dst / "checkpoints")
    return dst / "checkpoints" / src.name


def _params(al):
    return {n: p.detach().clone() for n, p in al.params.items()}


def test_a_good_checkpoint_resumes_and_nan_baseline_survives(align_ckpt, tmp_path):
    al, path = align_ckpt
    ck = _corrupt_copy(path, tmp_path)
    assert al.load_checkpoint(ck) is True
    assert al.baseline[0] == 0.5 and np.isnan(al.baseline[1])
    assert "NaN" not in (ck / "state.json").read_text()


@pytest.mark.parametrize("file, content, problem", [
    ("state.json", b'{"iteration": 0, "num_pro', "is truncated or not valid JSON"),
    ("state.json", b"", "is empty"),
    ("state.json", b"[]", "holds a JSON array, not a JSON object"),
    ("rng_rank0.json", b'{"python": [3, [1, 2], null]}', "lacks the key 'numpy'"),
    ("rng_rank0.json", b'{"numpy": ["MT19937", [1, 2], 0, 0, 0.0], "python": [3, [1], null]}', "does not hold what this run expects"),
    ("optimizer.json", b'{"state": {}}', "lacks the key 'param_groups'"),
    ("trainable.safetensors", b"\x00\x01random bytes that are not safetensors", "is truncated or not a safetensors file"),
    ("optimizer.safetensors", b"", "is empty"),
    ("rng_rank0.safetensors", None, "is missing"),
])
def test_corrupt_align_checkpoint_is_one_line_and_changes_nothing(align_ckpt, tmp_path, file, content, problem):
    al, path = align_ckpt
    ck = _corrupt_copy(path, tmp_path)
    if content is None:
        (ck / file).unlink()
    else:
        (ck / file).write_bytes(content)
    before, it = _params(al), al.iteration
    rng = torch.get_rng_state()
    with pytest.raises(CorruptFileError) as err:
        al.load_checkpoint(ck)
    msg = str(err.value)
    assert msg.startswith(f"checkpoint file '{ck / file}' {problem}"), msg
    assert "\n" not in msg and "delete the checkpoint folder" in msg
    assert al.iteration == it and all(torch.equal(before[n], p) for n, p in al.params.items())
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("file, content, problem", [
    ("state.json", b'{"iteration": 0', "is truncated or not valid JSON"),
    ("rng_rank0.json", b'{"python": []}', "lacks the key 'numpy'"),
    ("trainable.safetensors", None, "is truncated or not a safetensors file"),
])
def test_resume_check_finds_a_damaged_checkpoint_without_a_model(align_ckpt, tmp_path, file, content, problem):
    from prefpaint_sdk.align import check_run_folder

    _, path = align_ckpt
    ck = _corrupt_copy(path, tmp_path / "run")
    f = ck / file
    f.write_bytes(content if content is not None else f.read_bytes()[:-5])
    assert check_run_folder(tmp_path / "other", resume=True) == []  # nothing there: nothing to check
    with pytest.raises(CorruptFileError, match=rf"^checkpoint file '{f}' {problem}"):
        check_run_folder(tmp_path / "run", resume=True)


@pytest.mark.parametrize("content, problem", [
    (b'{"checkp', "is truncated or not valid JSON"),
    (b'["iter_000000"]', "holds a JSON array"),
    (b'{"checkpoint": 3}', "has 'checkpoint' as an integer, not a string"),
])
def test_corrupt_latest_pointer(align_ckpt, tmp_path, content, problem):
    from prefpaint_sdk.align.checkpoint import latest_checkpoint

    al, path = align_ckpt
    ck = _corrupt_copy(path, tmp_path)
    (ck.parent / "latest.json").write_bytes(content)
    with pytest.raises(CorruptFileError, match=rf"^checkpoint pointer '.*latest.json' {problem}.*delete"):
        latest_checkpoint(ck.parent)


def test_aligner_train_refuses_a_used_run_folder(align_ckpt, tmp_path):
    from prefpaint_sdk.align.checkpoint import check_run_folder

    al, _ = align_ckpt
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "log.jsonl").write_text('{"iteration": 1}\n')
    (run / "notes.txt").write_text("mine")
    al.output_dir = run
    with pytest.raises(OutputExistsError, match=r"already holds an alignment run \(checkpoints, log.jsonl\); pass resume=True"):
        al.train()
    assert (run / "log.jsonl").read_text() == '{"iteration": 1}\n'  # untouched
    with pytest.raises(InvalidInputError, match="contradict"):
        al.train(resume=True, overwrite=True)
    assert check_run_folder(tmp_path / "fresh") == []
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InvalidInputError, match="is a file"):
        check_run_folder(tmp_path / "afile")
    # overwrite removes exactly the old run's files (a later train() starts clean), and keeps the user's
    assert check_run_folder(run, overwrite=True) == ["checkpoints", "log.jsonl"]
    from prefpaint_sdk.state import remove_run_files

    remove_run_files(run, ["checkpoints", "log.jsonl"])
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


# ------------------------------------------------------------------------------------------------
# train_reward's resume state (read before any model or data loads)
def test_reward_resume_with_corrupt_state_is_one_line(tmp_path):
    from prefpaint_sdk.reward.config import RewardTrainConfig
    from prefpaint_sdk.reward.train import train_reward

    ck = tmp_path / "run" / "checkpoints" / "epoch-0001"
    ck.mkdir(parents=True)
    cfg = RewardTrainConfig()
    (ck / "state.json").write_text('{"epoch": 1, "history": [')
    data = tmp_path / "data"  # its path is checked first (train_reward.validate); the state is read before its files
    data.mkdir()
    with pytest.raises(CorruptFileError, match=r"^resume state '.*epoch-0001/state.json' is truncated or not valid JSON.*; delete '"):
        train_reward(data, tmp_path / "run", cfg, resume=True)
    (ck / "state.json").write_text(json.dumps({"epoch": 1, "history": [], "optimizer": {}, "scheduler": {}, "config": cfg.to_dict()}))
    (ck / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match=r"^checkpoint weights '.*model.safetensors' is truncated or not a safetensors file"):
        train_reward(data, tmp_path / "run", cfg, resume=True)


def test_reward_trainer_refuses_a_used_folder_and_overwrite_clears_it(tmp_path):
    from prefpaint_sdk.reward.train import check_reward_run_folder

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    (run / "mine.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match=r"already holds a training run \(model, metrics.json\); pass resume=True to continue"):
        check_reward_run_folder(run)
    assert check_reward_run_folder(run, resume=True) == []  # no checkpoints: starts from scratch
    assert check_reward_run_folder(run, overwrite=True) == []
    assert sorted(p.name for p in run.iterdir()) == ["mine.txt"]


# ------------------------------------------------------------------------------------------------
# Reward model folders and the converted cache
@pytest.fixture()
def reward_dir(tmp_path):
    from prefpaint_sdk.testing import save_tiny_reward_model

    return save_tiny_reward_model(tmp_path / "rm", seed=0)


def _load(folder):
    from prefpaint_sdk.reward import RewardModel

    return RewardModel.from_pretrained(folder, device="cpu")


@pytest.mark.parametrize("file, content, err, problem", [
    ("config.json", b'{"vision_config": {"hidden', CorruptFileError, "reward model config '{p}' is truncated or not valid JSON"),
    ("config.json", b"[]", CorruptFileError, "reward model config '{p}' holds a JSON array"),
    ("config.json", b'{"no_such_arg": 1}', CorruptFileError, "reward model config '{p}' does not hold what this run expects"),
    ("model.safetensors", b"\x13" * 64, CorruptFileError, "reward weights '{p}' is truncated or not a safetensors file"),
    ("model.safetensors", b"", CorruptFileError, "reward weights '{p}' is empty"),
    ("trust.safetensors", b"xx", CorruptFileError, "trust matrix '{p}' is truncated or not a safetensors file"),
])
def test_corrupt_reward_folder_is_one_line(reward_dir, file, content, err, problem):
    (reward_dir / file).write_bytes(content)
    with pytest.raises(err) as e:
        _load(reward_dir)
    assert str(e.value).startswith(problem.format(p=reward_dir / file)), str(e.value)
    assert "re-save the model" in str(e.value) and "\n" not in str(e.value)


def test_nan_reward_weights_are_a_data_error_naming_the_file(reward_dir):
    from safetensors.torch import load_file

    w = reward_dir / "model.safetensors"
    sd = load_file(str(w))
    sd["last_layer.weight"][0, 0] = float("nan")
    save_file(sd, str(w))
    with pytest.raises(DataError, match=r"reward weights '.*model.safetensors' holds 1 NaN/inf value\(s\) in 'last_layer.weight'"):
        _load(reward_dir)


def test_nan_trust_matrix_is_a_data_error(reward_dir):
    from safetensors import safe_open
    from safetensors.torch import load_file

    t = reward_dir / "trust.safetensors"
    with safe_open(str(t), "pt") as f:
        meta = f.metadata()
    sd = load_file(str(t))
    k = next(iter(sd))
    sd[k].view(-1)[0] = float("inf")
    save_file(sd, str(t), metadata=meta)
    with pytest.raises(DataError, match=r"trust matrix '.*trust.safetensors' holds 1 NaN/inf"):
        _load(reward_dir)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "4"])
def test_score_batch_size_must_be_a_count(bad):
    from prefpaint_sdk.testing import tiny_reward_model

    m = tiny_reward_model(seed=0)
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(InvalidInputError, match="batch_size must be") as err:
        m.score(img, masks=np.ones((16, 16), np.uint8), batch_size=bad)
    assert err.value.param == "batch_size"


def test_corrupt_converted_cache_names_the_cache_and_the_fix(tmp_path, monkeypatch):
    from reward_reference import make_official_state_dict

    from prefpaint_sdk.reward.convert import converted_cache_dir

    monkeypatch.setenv("PREFPAINT_CACHE", str(tmp_path / "cache"))
    pt = tmp_path / "prefpaintReward.pt"
    torch.save(make_official_state_dict(seed=1), pt)
    assert _load(pt).embed_dim == 16
    (entry,) = [d for d in converted_cache_dir().iterdir() if d.is_dir()]
    (entry / "config.json").write_text('{"vision_con')
    with pytest.raises(CorruptFileError, match=r"delete the cached conversion '.*file-[0-9a-f]+' and it will be converted again"):
        _load(pt)
    shutil.rmtree(entry)  # the fix works: converted again
    assert _load(pt).embed_dim == 16
