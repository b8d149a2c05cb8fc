"""``prefpaint score``, ``prefpaint convert-reward`` and ``prefpaint train reward``: outputs and exit codes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from prefpaint_cli.main import app
from reward_reference import make_official_state_dict
from typer.testing import CliRunner

from prefpaint_sdk.testing import save_tiny_reward_model, write_synthetic_reward_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def rm(tmp_path_factory):
    return save_tiny_reward_model(tmp_path_factory.mktemp("rm") / "tiny")


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"a{i}.png")
    m = np.zeros((40, 40), np.uint8)
    m[10:30, 10:30] = 255
    Image.fromarray(m).save(tmp_path / "mask.png")
    return tmp_path


def test_score_json_has_score_bound_trust(rm, pair):
    r = runner.invoke(app, ["score", str(pair / "imgs" / "a0.png"), str(pair / "mask.png"), "--reward-model", str(rm),
                            "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(rec) == {"image", "score", "bound", "trust"}
    from prefpaint_sdk.reward import RewardModel

    direct = RewardModel.from_pretrained(rm, device="cpu").score(pair / "imgs" / "a0.png", masks=pair / "mask.png")
    assert rec["score"] == pytest.approx(direct.scores.item(), abs=1e-6)
    assert rec["bound"] == pytest.approx(direct.bounds.item(), abs=1e-6) and rec["bound"] > 0
    # The paper's trust weight, written out here: clamp(exp(-0.05 b + 0.7), 1, 2.21).
    assert rec["trust"] == pytest.approx(min(max(np.exp(-0.05 * rec["bound"] + 0.7), 1.0), 2.21), abs=1e-6)
    plain = runner.invoke(app, ["score", str(pair / "imgs" / "a0.png"), str(pair / "mask.png"), "--reward-model", str(rm), "-q"])
    assert plain.exit_code == 0 and "score" in plain.stdout and "bound" in plain.stdout and "trust" in plain.stdout


def test_score_folder_writes_csv_and_refuses_to_overwrite(rm, pair):
    args = ["score", str(pair / "imgs"), str(pair / "mask.png"), "--reward-model", str(rm), "-q"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((pair / "imgs_scores.csv").open()))
    assert [row["image"].rsplit("/", 1)[-1] for row in rows] == ["a0.png", "a1.png", "a2.png"]
    assert all(float(row["bound"]) > 0 for row in rows)
    # a folder score is a job (issue 24, score-runner): a rerun finishes nothing new and writes the same CSV
    first = (pair / "imgs_scores.csv").read_bytes()
    r2 = runner.invoke(app, args)
    assert r2.exit_code == 0 and (pair / "imgs_scores.csv").read_bytes() == first
    # a CSV the job did not write (no records beside it) is refused without --overwrite
    import shutil

    shutil.rmtree(pair / "imgs_scores")
    r3 = runner.invoke(app, args)
    assert r3.exit_code == 2 and "--overwrite" in r3.output and (pair / "imgs_scores.csv").read_bytes() == first
    assert runner.invoke(app, args + ["--overwrite", "--json"]).stdout.count('"score"') == 3


def test_score_exit_codes(rm, pair):
    missing = runner.invoke(app, ["score", str(pair / "nope.png"), str(pair / "mask.png"), "--reward-model", str(rm), "-q"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    no_model = runner.invoke(app, ["score", str(pair / "imgs" / "a0.png"), str(pair / "mask.png"),
                                   "--reward-model", "someone/not-cached-reward", "--offline", "-q"])
    assert no_model.exit_code == 3, no_model.output


def test_convert_reward_cli(tmp_path):
    pt = tmp_path / "prefpaintReward.pt"
    torch.save(make_official_state_dict(seed=1), pt)
    r = runner.invoke(app, ["convert-reward", str(pt), "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "model.safetensors").is_file() and "no trust matrix" in r.output
    again = runner.invoke(app, ["convert-reward", str(pt), "-o", str(tmp_path / "out")])
    assert again.exit_code == 2 and "--overwrite" in again.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    assert runner.invoke(app, ["convert-reward", str(bad), "-o", str(tmp_path / "o2")]).exit_code == 2


def test_train_reward_cli(tmp_path):
    data = write_synthetic_reward_dataset(tmp_path / "data", n_prompts=12, seed=0)
    r = runner.invoke(app, ["train", "reward", "--data", str(data), "--out", str(tmp_path / "run"), "--preset", "cpu-smoke",
                            "--epochs", "1", "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "model" / "trust.safetensors").is_file() and "reward model written" in r.output
    bad = runner.invoke(app, ["train", "reward", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "r2"), "-q"])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    preset = runner.invoke(app, ["train", "reward", "--data", str(data), "--out", str(tmp_path / "r3"), "--preset", "huge"])
    assert preset.exit_code == 2 and "unknown preset" in preset.output
