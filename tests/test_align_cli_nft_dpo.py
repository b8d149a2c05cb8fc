"""``prefpaint train align --algo nft|dpo`` end to end on the tiny fixtures: runs, exports, resumes; DPO's
rated data with missing files is refused after naming each one."""

from __future__ import annotations

import json

import pytest
from _helpers_align import make_data
from _helpers_pairs import write_hostile_rated, write_rated
from typer.testing import CliRunner

from prefpaint_sdk.testing import save_tiny_inpaint_pipeline

runner = CliRunner()


def _app():
    from prefpaint_cli.main import app

    return app


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("align_cli_nft_dpo")
    return (save_tiny_inpaint_pipeline(root / "tiny", seed=2), make_data(root / "data", n=6),
            write_rated(root / "rated", n_prompts=6))


@pytest.mark.parametrize("algo", ["nft", "dpo"])
def test_train_align_algo_runs_exports_and_resumes(tiny, tmp_path, algo):
    model, prompts, rated = tiny
    out = tmp_path / "run"
    args = ["train", "align", "--data", str(rated if algo == "dpo" else prompts), "--out", str(out), "--model",
            str(model), "--reward", "brightness", "--preset", "cpu-smoke", "--algo", algo, "--iterations", "1",
            "--finetune", "lora", "--set", "eval_every=1", "--set", "eval_size=2", "--set", "eval_samples=1",
            "--set", "log_with=none", "--offline"]
    res = runner.invoke(_app(), args)
    assert res.exit_code == 0, res.output
    assert (out / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert (out / "merged" / "model_index.json").is_file()
    record = json.loads((out / "align_config.json").read_text())
    assert record["algo"] == algo
    assert record["algo_settings"]["timesteps_per_pair" if algo == "dpo" else "timesteps_per_traj"] == (2 if algo == "dpo" else 4)
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    key = "eval/dpo_accuracy" if algo == "dpo" else "nft_positive_norm"
    assert any(key in r for r in lines), lines
    more = runner.invoke(_app(), [*args[:-1], "--iterations", "2", "--resume", "--no-export", "--offline"])
    assert more.exit_code == 0, more.output
    assert "done: 2 iterations" in more.output


def test_dpo_ratings_with_missing_files_are_named_then_refused(tiny, tmp_path):
    model, _, _ = tiny
    rated = write_hostile_rated(tmp_path / "rated", "missing")
    res = runner.invoke(_app(), ["train", "align", "--data", str(rated), "--out", str(tmp_path / "run"), "--model",
                                 str(model), "--reward", "brightness", "--preset", "cpu-smoke", "--algo", "dpo",
                                 "--offline"], env={"COLUMNS": "2000"})
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and not (tmp_path / "run" / "checkpoints").exists()
    last = res.stderr.strip().splitlines()[-1]
    assert "3 of 9 samples" in last and "p0_0.png (missing)" in last, res.stderr
