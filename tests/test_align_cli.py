"""``prefpaint train align``: the cpu-smoke run end to end, refusals with exit codes."""

import json

import pytest
from _helpers_align import make_data
from typer.testing import CliRunner

from prefpaint_sdk.align.config import family_presets
from prefpaint_sdk.testing import save_tiny_inpaint_pipeline

runner = CliRunner()


def _app():
    from prefpaint_cli.main import app

    return app


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("align_cli")
    return save_tiny_inpaint_pipeline(root / "tiny", seed=2), make_data(root / "data", n=6)


def test_train_align_cpu_smoke_runs_resumes_and_exports(tiny, tmp_path):
    model, data = tiny
    out = tmp_path / "run"
    args = ["train", "align", "--data", str(data), "--out", str(out), "--model", str(model), "--reward", "brightness",
            "--preset", "cpu-smoke", "--iterations", "2", "--finetune", "lora", "--set", "eval_every=2", "--set", "eval_size=2",
            "--set", "log_with=tensorboard", "--offline"]
    res = runner.invoke(_app(), args)
    assert res.exit_code == 0, res.output
    assert "samples per iteration" in res.output and "held-out reward" in res.output
    assert (out / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert (out / "merged" / "model_index.json").is_file()
    assert any((out / "logs").rglob("events.out.tfevents*"))
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert any("reward_mean" in r for r in lines) and any("eval/win_rate" in r for r in lines)
    # the same --out again refuses without --resume, and --resume continues to the new total
    again = runner.invoke(_app(), args)
    assert again.exit_code == 2 and "--resume" in again.output
    more = runner.invoke(_app(), [*args[:-1], "--iterations", "3", "--resume", "--no-export", "--offline"])
    assert more.exit_code == 0, more.output
    assert "done: 3 iterations" in more.output


def test_train_align_flux_fill_runs_exports_and_resumes(tmp_path):
    """The same command on a FLUX Fill folder (GRPO by the family's default), LoRA: lora/ and merged/ exported,
    --resume continues. Reduced from cpu-smoke (2 flow steps, 2 groups of 4, no evaluation) to stay cheap."""
    model = save_tiny_inpaint_pipeline(tmp_path / "flux", seed=2, family="flux-fill")
    data = make_data(tmp_path / "data", n=4)
    out = tmp_path / "run"
    args = ["train", "align", "--data", str(data), "--out", str(out), "--model", str(model), "--reward", "brightness",
            "--preset", "cpu-smoke", "--iterations", "1", "--finetune", "lora", "--set", "num_steps=2",
            "--set", "timesteps_per_traj=2", "--set", "prompts_per_iter=2", "--set", "rollout_batch_size=8",
            "--set", "train_batch_size=8", "--set", "eval_every=0", "--set", "log_with=none", "--offline"]
    res = runner.invoke(_app(), args)
    assert res.exit_code == 0, res.output
    assert "GRPO: 2 groups of 4" in res.output
    # cpu-smoke took its FLUX Fill values (the family read from the folder's model_index.json before loading),
    # and the flags and --set values still won over them
    printed = " ".join(res.output.split())
    assert "preset cpu-smoke for flux-fill:" in printed
    assert "iterations 1," in printed and "eval_every 0," in printed  # the values that run, flags included
    saved = json.loads((out / "align_config.json").read_text())
    given = {"iterations": 1, "num_steps": 2, "timesteps_per_traj": 2, "eval_every": 0}  # by --iterations / --set
    flux = family_presets()["cpu-smoke"]["flux-fill"]
    assert {k: saved[k] for k in flux} == {k: given.get(k, v) for k, v in flux.items()}
    assert (out / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert (out / "merged" / "transformer" / "config.json").is_file()
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert any("zero_std_ratio" in r for r in lines)  # the GRPO statistics were logged
    more = runner.invoke(_app(), [*args[:-1], "--iterations", "2", "--resume", "--no-export", "--offline"])
    assert more.exit_code == 0, more.output
    assert "done: 2 iterations" in more.output


@pytest.mark.parametrize("extra, pattern", [
    (["--reward", "brightness", "--reward-model", "x/y", "--reward-weights", "1"], "gives 1 weights for 2 rewards"),
    ([], "give a reward: --reward NAME"),
    (["--reward", "shiny"], "--reward 'shiny' is neither a built-in reward name"),
    (["--reward", "brightness", "--set", "timesteps_per_traj=9", "--steps", "4"], "timesteps_per_traj=9 exceeds num_steps=4"),
    (["--reward", "brightness", "--set", "clip"], "not NAME=VALUE"),
    (["--reward", "brightness", "--preset", "huge"], "unknown preset 'huge'"),
    # guards against reward hacking
    (["--reward", "brightness", "--on-hacking", "stop"], "--on-hacking has no effect without --gold-reward"),
    (["--reward", "brightness", "--on-hacking", "maybe", "--gold-reward", "brightness"], "--on-hacking must be 'warn' or 'stop'"),
    (["--reward", "brightness", "--gold-reward", "shiny"], "--gold-reward 'shiny' is neither a built-in reward"),
    (["--reward", "brightness", "--reward-weights", "1,2"], "gives 2 weights for 1 rewards"),
    (["--reward-model", "a/b", "--reward-model", "c/d", "--reward-weights", "1,2,3"], "gives 3 weights for 2 rewards"),
    (["--reward", "brightness", "--gold-weights", "1"], "--gold-weights has no effect without --gold-reward"),
    (["--reward", "brightness", "--gold-reward", "brightness", "--gold-weights", "nan"], "non-finite"),
])
def test_refusals_exit_2(tiny, tmp_path, extra, pattern):
    model, data = tiny
    res = runner.invoke(_app(), ["train", "align", "--data", str(data), "--out", str(tmp_path / "o"),
                                 "--model", str(model), "--preset", "cpu-smoke", "--offline", *extra])
    assert res.exit_code == 2, res.output
    assert pattern in " ".join(res.output.split())


def test_missing_model_exits_3(tiny, tmp_path):
    _, data = tiny
    res = runner.invoke(_app(), ["train", "align", "--data", str(data), "--out", str(tmp_path / "o"),
                                 "--model", "nobody/no-such-model", "--reward", "brightness", "--offline"])
    assert res.exit_code == 3, res.output


def test_gold_reward_and_on_hacking_stop(tiny, tmp_path):
    model, data = tiny
    out = tmp_path / "run"
    res = runner.invoke(_app(), ["train", "align", "--data", str(data), "--out", str(out), "--model", str(model),
                                 "--reward", "brightness", "--gold-reward", "brightness", "--on-hacking", "stop",
                                 "--preset", "cpu-smoke", "--iterations", "2", "--set", "eval_every=1", "--set",
                                 "eval_size=2", "--set", "eval_samples=1", "--set", "prompts_per_iter=2", "--set", "train_batch_size=8", "--set",
                                 "log_with=none", "--no-export", "--offline"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    # gold = proxy here, so no hacking: the run goes to the end and keeps the best weights by gold
    assert "held-out gold reward" in text and "best weights by gold reward: iteration" in text
    assert "stopped early" not in text and "done: 2 iterations" in text
    assert json.loads((out / "align_config.json").read_text())["on_hacking"] == "stop"
    rows = json.loads((out / "eval" / "guards.json").read_text())["rows"]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert all(r["gold_mean"] == pytest.approx(r["proxy_mean"]) and "diff_saturation" in r for r in rows)
    assert (out / "eval" / "best" / "trainable.safetensors").is_file()
