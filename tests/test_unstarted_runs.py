"""A new training run that fails before its first epoch ends leaves no run behind (train reward, as train
align): no ``train_config.json``, logs or checkpoints, and no output folder when the run made it. A resumed
run, and a run past its first epoch, keep theirs. The mechanism is ``prefpaint_sdk.state.remove_unstarted_run``,
shared with the aligner."""

from __future__ import annotations

import pytest

import prefpaint_sdk.reward.train as reward_train
from prefpaint_sdk.errors import OutputExistsError
from prefpaint_sdk.reward.config import load_reward_config
from prefpaint_sdk.reward.train import train_reward
from prefpaint_sdk.testing import write_synthetic_reward_dataset


class Broken(RuntimeError):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synthetic_reward_dataset(tmp_path_factory.mktemp("unstarted") / "data", n_prompts=12, seed=3)


@pytest.fixture
def cfg():
    return load_reward_config("cpu-smoke", overrides={"epochs": 2, "log_with": "none", "batch_size": 8})


def _fail_from_step(monkeypatch, n: int) -> list[int]:
    """Make the training loss raise at its ``n``-th call (1-based): a failure inside an epoch."""
    calls, real = [], reward_train._loss

    def loss(model, batch, kind):
        calls.append(1)
        if len(calls) >= n:
            raise Broken("the loss failed")
        return real(model, batch, kind)

    monkeypatch.setattr(reward_train, "_loss", loss)
    return calls


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_new_run_failing_in_its_first_epoch_leaves_no_folder(data, cfg, tmp_path, monkeypatch):
    calls = _fail_from_step(monkeypatch, 1)
    with pytest.raises(Broken):
        train_reward(data, tmp_path / "run", cfg)
    assert calls, "the run never reached its first step"
    assert not (tmp_path / "run").exists()


def test_a_new_run_in_an_existing_folder_leaves_only_what_was_there(data, cfg, tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    _fail_from_step(monkeypatch, 2)
    with pytest.raises(Broken):
        train_reward(data, run, cfg.replace(log_with="tensorboard"))  # logs/ is the run's too
    assert _tree(run) == ["notes.txt"]
    assert (run / "notes.txt").read_text() == "mine"


def test_an_interrupted_first_epoch_leaves_no_run(data, cfg, tmp_path, monkeypatch):
    def interrupted(model, batch, kind):
        raise KeyboardInterrupt

    monkeypatch.setattr(reward_train, "_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_reward(data, tmp_path / "run", cfg)
    assert not (tmp_path / "run").exists()


def test_a_run_past_its_first_epoch_and_a_resumed_run_keep_theirs(data, cfg, tmp_path, monkeypatch):
    run = tmp_path / "run"
    calls = _fail_from_step(monkeypatch, 10_000)  # never fails: counts the steps of one epoch
    train_reward(data, tmp_path / "count", cfg.replace(epochs=1))
    first_epoch = len(calls)
    monkeypatch.undo()

    _fail_from_step(monkeypatch, first_epoch + 1)  # fails in the second epoch: the first one is saved
    with pytest.raises(Broken):
        train_reward(data, run, cfg)
    kept = _tree(run)
    assert "train_config.json" in kept and "checkpoints/epoch-0001" in kept
    monkeypatch.undo()

    _fail_from_step(monkeypatch, 1)  # a resumed run failing at once: the earlier run's files stay
    with pytest.raises(Broken):
        train_reward(data, run, cfg, resume=True)
    assert _tree(run) == kept
    monkeypatch.undo()
    result = train_reward(data, run, cfg, resume=True)  # and it still resumes
    assert result.epochs_done == 2 and (run / "model").is_dir()


def test_a_refused_run_removes_nothing(data, cfg, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train_reward(data, run, cfg.replace(stop_after_epochs=1))
    before = _tree(run)
    with pytest.raises(OutputExistsError):
        train_reward(data, run, cfg)
    assert _tree(run) == before
