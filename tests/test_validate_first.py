"""Issue 24, item 4: every front door runs its model-free ``validate`` first, before anything loads.

* Through Python: each SDK or app entry point, given one bad model-free value while every model loader raises,
  raises the typed error of its ``validate`` and never reaches a loader.
* Through the CLI: the same refusal is exit 2, one ``error:`` line naming the flag, no loader reached.
* Each command calls its SDK ``validate``: with that validate replaced by one that raises a sentinel, the
  command reports the sentinel (so a check written only in the CLI is not where a Python caller misses it).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from prefpaint_sdk.errors import ConfigError, InvalidInputError, PrefPaintError

runner = CliRunner()


class LoaderReached(AssertionError):
    """A model loader ran: the front door loaded (or read weights) before its checks were done."""


def _boom(*args, **kwargs):
    raise LoaderReached("a model loader ran before the model-free checks")


@pytest.fixture
def no_loaders(monkeypatch):
    """Every way a front door loads a model or reads weights raises :class:`LoaderReached`."""
    from prefpaint_sdk import Inpainter, RewardModel
    from prefpaint_sdk.align import resolve
    from prefpaint_sdk.engines.base import Engine
    from prefpaint_sdk.evaluation import run as eval_run
    from prefpaint_sdk.reward import convert, specs
    from prefpaint_sdk.reward import train as reward_train

    # an inpainter's first read after its validate: the model's files, then the pipeline's weights
    monkeypatch.setattr(Inpainter, "check_files", staticmethod(_boom))
    monkeypatch.setattr(RewardModel, "from_pretrained", classmethod(_boom))
    monkeypatch.setattr(Engine, "load", classmethod(_boom))
    monkeypatch.setattr(resolve, "plan_run", _boom)  # the align run's file checks come after its validate
    monkeypatch.setattr(specs, "load_reward", _boom)
    monkeypatch.setattr(specs, "load_stack", _boom)
    monkeypatch.setattr(eval_run, "_load_models", _boom)
    monkeypatch.setattr(reward_train, "_build_model", _boom)
    monkeypatch.setattr(convert, "load_official_state_dict", _boom)


class _NoInpainter:
    """An inpainter that must not be touched: any use is a load."""

    def __getattr__(self, name):
        raise LoaderReached(f"inpainter.{name} used before the checks")

    def __call__(self, *args, **kwargs):
        raise LoaderReached("inpainter called before the checks")


def _image(path):
    from PIL import Image

    Image.new("RGB", (32, 32), (90, 120, 60)).save(path)
    return path


# ---- Python: each entry point, one bad model-free value -----------------------------------------
def _align(tmp):
    from prefpaint_sdk import Aligner

    Aligner.from_pretrained("nobody/model", reward="brightness", data=tmp, output_dir=tmp / "out", algo="sgd")


def _align_settings(tmp):
    from prefpaint_sdk import Aligner

    Aligner.from_pretrained("nobody/model", reward="brightness", data=tmp, output_dir=tmp / "out",
                            settings=["clip_range"])


def _train_reward(tmp):
    from prefpaint_sdk import RewardTrainConfig, train_reward

    train_reward(tmp, tmp / "out", RewardTrainConfig(lr=-1.0))


def _convert(tmp):
    from prefpaint_sdk.reward.convert import convert_official_checkpoint

    convert_official_checkpoint(tmp / "missing.pt", tmp / "out")


def _evaluate(tmp):
    from prefpaint_sdk import evaluate

    evaluate("nobody/model", "nobody/base", "nobody/judge", tmp, samples=(0,), out_dir=tmp / "out")


def _generate(tmp):
    from prefpaint_sdk import run_generate_dataset

    run_generate_dataset(tmp, tmp / "out", per_image=3, masks="warp,nosuch")


def _inpaint_job(tmp):
    from prefpaint_sdk import run_inpaint_job

    run_inpaint_job(tmp / "jobs.jsonl", tmp / "out", select="best")


def _inpainter(tmp):
    from prefpaint_sdk import Inpainter

    Inpainter.from_pretrained("nobody/model", scheduler="euler-magic")


def _extend(tmp):
    from prefpaint_apps.outpaint import extend

    extend(_NoInpainter(), _image(tmp / "photo.png"), strength=2.0)


def _recon3d(tmp):
    from prefpaint_apps.recon3d import Recon3DConfig, reconstruct

    reconstruct(_image(tmp / "scene.png"), tmp / "out", Recon3DConfig(views=0))


def _rate(tmp):
    from prefpaint_apps.rate import write_rating_page

    write_rating_page(tmp / "no-such-dataset")


def _serve(tmp):
    from prefpaint_apps.serve.checks import validate

    validate(port=70000)


PYTHON = [
    pytest.param(_align, ConfigError, "algo must be one of", id="align"),
    pytest.param(_align_settings, ConfigError, "settings item 'clip_range' is not NAME=VALUE", id="align-settings"),
    pytest.param(_train_reward, ConfigError, "lr must be > 0", id="train-reward"),
    pytest.param(_convert, InvalidInputError, "checkpoint '", id="convert-reward"),
    pytest.param(_evaluate, InvalidInputError, "samples must be integers >= 1", id="eval"),
    pytest.param(_generate, InvalidInputError, "nosuch", id="generate-dataset"),
    pytest.param(_inpaint_job, InvalidInputError, "select must be", id="inpaint-job"),
    pytest.param(_inpainter, InvalidInputError, "scheduler", id="inpaint"),
    pytest.param(_extend, InvalidInputError, "strength must lie in (0, 1]", id="extend"),
    pytest.param(_recon3d, InvalidInputError, "views", id="recon3d"),
    pytest.param(_rate, InvalidInputError, "dataset folder", id="rate"),
    pytest.param(_serve, InvalidInputError, "port must lie in 1..65535", id="serve"),
]


@pytest.mark.parametrize("call, error, pattern", PYTHON)
def test_python_front_door_validates_before_any_load(no_loaders, tmp_path, call, error, pattern):
    with pytest.raises(error) as info:
        call(tmp_path)
    assert not isinstance(info.value, LoaderReached)
    assert pattern in " ".join(str(info.value).split())


# ---- the CLI: exit 2, one line naming the flag, no load -----------------------------------------
def _cli(tmp):
    """The arguments of each command with one bad model-free value (and the flag its line must name)."""
    img = str(_image(tmp / "photo.png"))
    out = str(tmp / "out")
    return {
        "train-align": (["train", "align", "--data", str(tmp), "--out", out, "--reward", "brightness",
                         "--algo", "sgd", "--offline"], "--algo"),
        "train-align-set": (["train", "align", "--data", str(tmp), "--out", out, "--reward", "brightness",
                             "--set", "clip_range", "--offline"], "--set"),
        "train-reward": (["train", "reward", "--data", str(tmp), "--out", out, "--loss", "hinge", "--offline"],
                         "--loss"),
        "convert-reward": (["convert-reward", str(tmp / "missing.pt"), "-o", out], "checkpoint '"),
        "eval": (["eval", "--data", str(tmp), "-o", out, "--reward-weights", "1,2", "--offline"],
                 "--reward-weights"),
        "generate-dataset": (["generate-dataset", str(tmp), "-o", out, "--masks", "warp,nosuch", "--offline"],
                             "nosuch"),
        "inpaint": (["inpaint", img, img, "--scheduler", "euler-magic", "--offline"], "--scheduler"),
        "extend": (["extend", img, "-o", str(tmp / "wide.png"), "--strength", "2", "--offline"], "--strength"),
        "recon3d": (["recon3d", img, "-o", out, "--views", "0", "--offline"], "--views"),
        "rate": (["rate", str(tmp / "no-such-dataset")], "dataset folder"),
        "serve": (["serve", "--port", "70000", "--api-key", " ", "--offline"], "--port"),
        "serve-key": (["serve", "--api-key", " ", "--offline"], "--api-key"),
    }


CLI_CASES = ["train-align", "train-align-set", "train-reward", "convert-reward", "eval", "generate-dataset", "inpaint",
             "extend", "recon3d", "rate", "serve", "serve-key"]


def _app():
    from prefpaint_cli.main import app

    return app


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_front_door_refuses_before_any_load(no_loaders, tmp_path, case):
    args, flag = _cli(tmp_path)[case]
    res = runner.invoke(_app(), args)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert flag in lines[0], res.output
    assert "LoaderReached" not in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


# ---- each command calls its SDK validate ---------------------------------------------------------
class Sentinel(PrefPaintError):
    exit_code = 2


def _sentinel(*args, **kwargs):
    raise Sentinel("sentinel: the SDK validate ran")


def _validates():
    """command -> (the object whose ``validate`` the command must call, arguments that pass the CLI's parsing)."""
    from prefpaint_apps import outpaint, rate, recon3d
    from prefpaint_apps.serve import checks as serve_checks

    from prefpaint_sdk import Aligner, Inpainter, evaluate, run_generate_dataset, train_reward
    from prefpaint_sdk.reward.convert import convert_official_checkpoint

    return {
        "train-align": (Aligner, lambda t: ["train", "align", "--data", str(t), "--out", str(t / "o"), "--reward",
                                            "brightness", "--offline"]),
        "train-reward": (train_reward, lambda t: ["train", "reward", "--data", str(t), "--out", str(t / "o")]),
        "convert-reward": (convert_official_checkpoint, lambda t: ["convert-reward", str(t / "x.pt"), "-o",
                                                                   str(t / "o")]),
        "eval": (evaluate, lambda t: ["eval", "--data", str(t), "-o", str(t / "o"), "--offline"]),
        "generate-dataset": (run_generate_dataset, lambda t: ["generate-dataset", str(t), "-o", str(t / "o"),
                                                              "--offline"]),
        "inpaint": (Inpainter, lambda t: ["inpaint", str(_image(t / "a.png")), str(_image(t / "m.png")), "--offline"]),
        "extend": (outpaint, lambda t: ["extend", str(_image(t / "a.png")), "-o", str(t / "w.png"), "--offline"]),
        "recon3d": (recon3d, lambda t: ["recon3d", str(_image(t / "a.png")), "-o", str(t / "o"), "--offline"]),
        "rate": (rate, lambda t: ["rate", str(t)]),
        "serve": (serve_checks, lambda t: ["serve", "--offline"]),
    }


@pytest.mark.parametrize("command", ["train-align", "train-reward", "convert-reward", "eval", "generate-dataset",
                                     "inpaint", "extend", "recon3d", "rate", "serve"])
def test_each_command_calls_its_sdk_validate(no_loaders, monkeypatch, tmp_path, command):
    owner, args = _validates()[command]
    replacement = staticmethod(_sentinel) if isinstance(owner, type) else _sentinel
    monkeypatch.setattr(owner, "validate", replacement)
    res = runner.invoke(_app(), args(tmp_path))
    assert res.exit_code == 2, res.output
    assert "sentinel: the SDK validate ran" in res.output, res.output


def test_validate_is_the_first_check_of_each_function_front_door(monkeypatch, tmp_path):
    """A function front door calls the very check it exposes as ``fn.validate`` (replaced: the sentinel)."""
    from prefpaint_sdk.evaluation import run as eval_run
    from prefpaint_sdk.jobs import generate, tasks
    from prefpaint_sdk.reward import convert
    from prefpaint_sdk.reward import train as reward_train

    calls = [
        (convert, "validate_conversion", lambda: convert.convert_official_checkpoint(tmp_path / "x.pt", tmp_path)),
        (reward_train, "validate_training", lambda: reward_train.train_reward(tmp_path, tmp_path / "o")),
        (eval_run, "validate_evaluation", lambda: eval_run.evaluate("m", "b", "r", tmp_path)),
        (generate, "validate_generation", lambda: generate.run_generate_dataset(tmp_path, tmp_path / "o")),
        (tasks, "validate_inpaint_job", lambda: tasks.run_inpaint_job(tmp_path / "j.jsonl", tmp_path / "o")),
    ]
    for module, name, call in calls:
        monkeypatch.setattr(module, name, _sentinel)
        with pytest.raises(Sentinel):
            call()
    # and fn.validate is that check (one definition, shared by the CLI and the function)
    assert convert.convert_official_checkpoint.validate.__name__ == "validate_conversion"
    assert json.dumps(sorted(f.validate.__name__ for f in (eval_run.evaluate, generate.run_generate_dataset,
                                                          tasks.run_inpaint_job, reward_train.train_reward))) == \
        json.dumps(sorted(["validate_evaluation", "validate_generation", "validate_inpaint_job", "validate_training"]))
