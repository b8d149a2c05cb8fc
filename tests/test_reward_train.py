"""Reward training: it learns, resumes exactly, checkpoints atomically, logs, and fits the trust matrix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from prefpaint_sdk.errors import ConfigError, OutputExistsError
from prefpaint_sdk.reward import RewardModel
from prefpaint_sdk.reward.config import load_reward_config
from prefpaint_sdk.reward.data import read_reward_data, split_by_group
from prefpaint_sdk.reward.train import _build_model, _Images, predict, reward_metrics, train_reward
from prefpaint_sdk.testing import write_synthetic_reward_dataset


@pytest.mark.slow
def test_training_learns_a_known_reward_on_held_out_prompts(tmp_path):
    """Trained on "bright is good" and on "dark is good", both rank held-out prompts' inpaintings >= 90% right.

    One fixed network cannot do both (its accuracies on the two tasks sum to 1), and both runs start from
    the same initial weights, so passing both proves the training moved the model.
    """
    cfg = load_reward_config("cpu-smoke", overrides={"epochs": 4})
    accuracy, untrained = {}, {}
    for target in ("bright", "dark"):
        root = write_synthetic_reward_dataset(tmp_path / target, n_prompts=90, seed=1, target=target)
        result = train_reward(root, tmp_path / f"run-{target}", cfg.replace(log_with="tensorboard" if target == "bright" else "none"))
        accuracy[target] = result.test["pairwise_accuracy"]
        _, _, test = split_by_group(read_reward_data(root), cfg.split, seed=cfg.seed)
        init = _build_model(cfg)
        untrained[target] = reward_metrics(predict(init, _Images(test, np.zeros(len(test.samples)), 32, (0, 0, 0)), 64),
                                           test)["pairwise_accuracy"]
        model = RewardModel.from_pretrained(result.model_dir, device="cpu")
        assert model.trust is not None and model.trust.count == len(split_by_group(read_reward_data(root), cfg.split)[0].samples)
    assert accuracy["bright"] >= 0.9 and accuracy["dark"] >= 0.9, accuracy
    assert untrained["bright"] + untrained["dark"] == pytest.approx(1.0, abs=0.05)  # ties aside, mirror images
    assert max(accuracy[t] - untrained[t] for t in accuracy) >= 0.4
    assert list((tmp_path / "run-bright" / "logs").rglob("events.out.tfevents.*")), "no tensorboard log"
    metrics = json.loads((tmp_path / "run-bright" / "metrics.json").read_text())
    assert len(metrics["history"]) == 4 and {"val_pairwise_accuracy", "val_mse", "val_spearman"} <= set(metrics["history"][0])


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return write_synthetic_reward_dataset(tmp_path_factory.mktemp("small") / "data", n_prompts=24, seed=2)


def _weights(run):
    return load_file(str(run / "model" / "model.safetensors"))


def test_interrupted_and_resumed_run_equals_uninterrupted(small, tmp_path):
    cfg = load_reward_config("cpu-smoke", overrides={"epochs": 3, "log_with": "none", "batch_size": 8})
    full = train_reward(small, tmp_path / "full", cfg)
    part = train_reward(small, tmp_path / "part", cfg.replace(stop_after_epochs=1))
    assert part.model_dir is None and part.epochs_done == 1
    assert [d.name for d in (tmp_path / "part" / "checkpoints").iterdir()] == ["epoch-0001"]
    resumed = train_reward(small, tmp_path / "part", cfg, resume=True)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == full.history
    ckpts = sorted(d.name for d in (tmp_path / "full" / "checkpoints").iterdir())
    assert ckpts == ["epoch-0002", "epoch-0003"]  # keep_checkpoints=2, no temporary leftovers
    # frozen layers kept their initial weights; trained ones moved
    init = _build_model(cfg).state_dict()
    frozen = "backbone.vision_model.encoder.layers.0.mlp.fc1.weight"
    trained = "backbone.vision_model.encoder.layers.1.mlp.fc1.weight"
    assert torch.equal(a[frozen], init[frozen]) and not torch.equal(a[trained], init[trained])
    assert not torch.equal(a["last_layer.weight"], init["last_layer.weight"])


def test_existing_run_needs_resume_and_the_same_settings(small, tmp_path):
    cfg = load_reward_config("cpu-smoke", overrides={"epochs": 2, "log_with": "none", "stop_after_epochs": 1})
    train_reward(small, tmp_path / "run", cfg)
    with pytest.raises(OutputExistsError, match="resume=True"):
        train_reward(small, tmp_path / "run", cfg)
    with pytest.raises(ConfigError, match="lr was 0.001 .* but is 0.01 now"):
        train_reward(small, tmp_path / "run", cfg.replace(lr=0.01), resume=True)


def test_bradley_terry_on_preference_pairs(small, tmp_path):
    rows = []
    data = read_reward_data(small)
    # A pairs manifest names files beside or below it (no '../', no absolute paths): it sits above the data.
    pairs = Path(small).parent / "pairs.jsonl"
    rel = lambda p: Path(p).relative_to(pairs.parent).as_posix()  # noqa: E731
    for b, w in data.group_pairs():
        sb, sw = data.samples[b], data.samples[w]
        rows.append({"better": rel(sb.image), "worse": rel(sw.image), "masked_image": rel(sb.masked), "group": sb.group})
    pairs.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = load_reward_config("cpu-smoke", overrides={"epochs": 1, "log_with": "none"})
    with pytest.raises(ConfigError, match="bradley-terry"):
        train_reward(pairs, tmp_path / "reg", cfg)
    result = train_reward(pairs, tmp_path / "bt", cfg.replace(loss="bradley-terry"))
    assert result.model_dir.is_dir() and "pairwise_accuracy" in result.test and "mse" not in result.test


@pytest.mark.slow
def test_two_process_training_with_torchrun(small, tmp_path):
    """The accelerate path: torchrun with 2 CPU processes (gloo) trains, checkpoints and saves once."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "run.py"
    script.write_text(
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from prefpaint_sdk.reward.config import load_reward_config\n"
        "from prefpaint_sdk.reward.train import train_reward\n"
        "cfg = load_reward_config('cpu-smoke', overrides={'epochs': 1, 'log_with': 'none', 'batch_size': 8})\n"
        "train_reward(sys.argv[1], sys.argv[2], cfg)\n"
    )
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run([str(torchrun), "--nproc_per_node", "2", str(script), str(small), str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "processes=2" in r.stderr and "effective_batch=16" in r.stderr
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert [d.name for d in (tmp_path / "run" / "checkpoints").iterdir()] == ["epoch-0001"]
