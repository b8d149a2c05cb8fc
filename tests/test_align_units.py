"""Alignment as units (issue 20): the algorithm registry and its contract, the split config, one SDK entry point
that resolves the same config as the CLI (validated once), the run record naming the algorithm, and a resume
under another algorithm refused."""

import json
import logging
from dataclasses import fields

import pytest
from _helpers_align import make_data
from typer.testing import CliRunner

from prefpaint_sdk.align.algorithms import algorithm_names, get_algorithm, setting_owners
from prefpaint_sdk.align.algorithms.base import DATA_KINDS, Algorithm
from prefpaint_sdk.align.checkpoint import check_resume_algo, recorded_algo
from prefpaint_sdk.align.config import AlignConfig, load_config
from prefpaint_sdk.errors import ConfigError
from prefpaint_sdk.testing import save_tiny_inpaint_pipeline

runner = CliRunner()


def _app():
    from prefpaint_cli.main import app

    return app


# --- the registry and every algorithm's contract ------------------------------------------------
def test_the_registry_finds_every_algorithm_module():
    assert {"ppo", "grpo"} <= set(algorithm_names())
    assert setting_owners()["clip_range"] == ("grpo", "ppo") and setting_owners()["adv_std"] == ("grpo",)
    with pytest.raises(ConfigError, match="algo must be one of .*grpo.*ppo"):
        get_algorithm("nope")


@pytest.mark.parametrize("name", algorithm_names())
def test_every_algorithm_keeps_the_contract(name):
    algo = get_algorithm(name)
    assert issubclass(algo, Algorithm) and algo.name == name and algo.summary and algo.data_kind in DATA_KINDS
    assert all(f.metadata.get("help") for f in fields(algo.config_cls))  # every setting says what it does
    shared = {f.name for f in fields(AlignConfig)}
    assert not shared & {f.name for f in fields(algo.config_cls)}  # an algorithm's names never shadow shared ones
    for values in algo.presets.values():  # preset values name real settings of its own config
        algo.config_cls().replace(**values)
    cfg = AlignConfig().replace(algo=name).resolve()
    assert cfg.resolve() == cfg  # idempotent
    assert cfg.algo_settings == algo.config_cls().to_dict() and "optimizer_steps_per_iteration" in \
        algo(cfg.algo_config).batch_summary(cfg, 2)


def test_algorithm_settings_go_by_flat_names_and_stay_with_their_algorithm():
    cfg = AlignConfig().replace(clip_range="1e-3", kl_coef=0.5)
    assert cfg.algo_settings == {"clip_range": 1e-3, "kl_coef": 0.5}  # coerced at once
    with pytest.raises(ConfigError, match="clip_range.*should be a number"):
        AlignConfig().replace(clip_range="wide")
    ppo = cfg.resolve("ppo")
    assert ppo.algo == "ppo" and ppo.algo_config.clip_range == 1e-3 and ppo.algo_config.timesteps_per_traj == 5
    grpo = load_config("flux-fill-lora-80gb").resolve("ppo")  # the preset names GRPO and sets its own values
    assert grpo.algo == "grpo" and grpo.algo_config.kl_coef == 0.04 and grpo.algo_config.adv_std == "group"
    with pytest.raises(ConfigError, match="adv_std is a setting of grpo, not of algo='ppo'"):
        AlignConfig().replace(algo="ppo", adv_std="global").resolve()
    with pytest.raises(ConfigError, match="preset is not a setting"):
        AlignConfig().replace(preset="paper")
    # the user's value beats the algorithm's preset value, from a flag or a TOML file alike
    assert load_config("cpu-smoke", overrides={"clip_range": 0.3}).resolve().algo_config.clip_range == 0.3


def test_adv_mode_group_of_old_configs_maps_to_grpo_saying_so(caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="prefpaint_sdk.align.config"):
        cfg = AlignConfig().replace(adv_mode="group")
    assert cfg.algo == "grpo" and "adv_mode='group' is algo='grpo' now" in caplog.text
    (tmp_path / "old.toml").write_text('adv_mode = "group"\nclip_range = 0.01\n')
    assert load_config(None, tmp_path / "old.toml").resolve().algo == "grpo"
    assert AlignConfig().replace(adv_mode="batch").algo == ""  # the old default: nothing to map
    with pytest.raises(ConfigError, match="conflicts|was asked for too"):
        AlignConfig().replace(adv_mode="group", algo="ppo")
    with pytest.raises(ConfigError, match="adv_mode is gone"):
        AlignConfig().replace(adv_mode="median")


def test_old_run_records_name_their_algorithm(tmp_path):
    assert recorded_algo(tmp_path, "ppo") is None
    (tmp_path / "align_config.json").write_text(json.dumps({"algo": "", "adv_mode": "group"}))
    assert recorded_algo(tmp_path, "ppo") == "grpo"
    (tmp_path / "align_config.json").write_text(json.dumps({"algo": "", "adv_mode": "batch"}))
    assert recorded_algo(tmp_path, "grpo") == "grpo"  # "" was the family's default
    check_resume_algo(tmp_path, "grpo", "grpo")
    with pytest.raises(ConfigError, match="trained with algo='grpo' but algo='ppo' was asked for; resume with algo='grpo'"):
        check_resume_algo(tmp_path, "ppo", "grpo")


# --- one entry point: Python and the CLI resolve the same config, validated once ----------------
@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    return save_tiny_inpaint_pipeline(root / "flux", seed=2, family="flux-fill"), make_data(root / "data", n=4)


SETTINGS = dict(iterations=1, prompts_per_iter=2, rollout_batch_size=8, train_batch_size=8, eval_every=0,
                log_with="none", clip_range=0.05)


def _cli(model, data, out, *extra):
    sets = [a for k, v in SETTINGS.items() if k != "iterations" for a in ("--set", f"{k}={v}")]
    return runner.invoke(_app(), ["train", "align", "--data", str(data), "--out", str(out), "--model", str(model),
                                  "--reward", "brightness", "--preset", "cpu-smoke", "--iterations", "1", *sets,
                                  "--no-export", "--offline", *extra])


def test_python_and_the_cli_resolve_the_same_config_once(flux, tmp_path, monkeypatch):
    from prefpaint_sdk.align.trainer import Aligner

    model, data = flux
    calls = []
    validate = AlignConfig.validate

    def counted(self, *a, **k):
        calls.append(self.algo)
        return validate(self, *a, **k)

    monkeypatch.setattr(AlignConfig, "validate", counted)
    res = _cli(model, data, tmp_path / "cli")
    assert res.exit_code == 0, res.output
    assert calls == ["grpo"]  # validated once per run, with the algorithm named
    assert "algorithm: grpo" in res.output and "preset cpu-smoke for flux-fill: num_steps 2" in res.output

    calls.clear()
    al = Aligner.from_pretrained(model, reward="brightness", data=data, output_dir=tmp_path / "py", preset="cpu-smoke",
                                 offline=True, device="cpu", **SETTINGS)
    al.train()
    assert calls == ["grpo"]
    cli_rec = json.loads((tmp_path / "cli" / "align_config.json").read_text())
    py_rec = json.loads((tmp_path / "py" / "align_config.json").read_text())
    assert py_rec == cli_rec
    # the record holds every resolved value: the family's preset values and the algorithm by name with its own
    assert cli_rec["algo"] == "grpo" and cli_rec["preset"] == "cpu-smoke" and cli_rec["preset_family"] == "flux-fill"
    assert cli_rec["num_steps"] == 2 and cli_rec["algo_settings"]["timesteps_per_traj"] == 2  # FLUX's cpu-smoke
    assert cli_rec["algo_settings"]["clip_range"] == 0.05 and set(cli_rec["algo_settings"]) == set(
        get_algorithm("grpo").config_cls().to_dict())


def test_a_resume_keeps_the_recorded_algorithm_and_refuses_another(flux, tmp_path):
    model, data = flux
    out = tmp_path / "run"
    assert _cli(model, data, out, "--algo", "ppo").exit_code == 0
    assert json.loads((out / "align_config.json").read_text())["algo"] == "ppo"
    other = _cli(model, data, out, "--resume", "--algo", "grpo")
    assert other.exit_code == 2 and "Traceback" not in other.output
    assert "trained with algo='ppo' but algo='grpo' was asked for" in other.output
    assert len([ln for ln in other.output.splitlines() if ln.strip()]) == 1  # one line
    # without --algo, the record's algorithm (not the family's default, GRPO) continues the run
    more = _cli(model, data, out, "--resume", "--iterations", "2")
    assert more.exit_code == 0, more.output
    assert "algorithm: ppo" in more.output and json.loads((out / "align_config.json").read_text())["algo"] == "ppo"
    # the same from Python: from_pretrained(resume=True) checks the folder before loading, and train() resumes
    from prefpaint_sdk.align.trainer import Aligner

    al = Aligner.from_pretrained(model, reward="brightness", data=data, output_dir=out, preset="cpu-smoke", resume=True,
                                 offline=True, device="cpu", **{**SETTINGS, "iterations": 3})
    assert al.algo == "ppo"
    assert al.train().iterations_done == 3
    with pytest.raises(ConfigError, match="trained with algo='ppo' but algo='grpo'"):
        Aligner.from_pretrained(model, reward="brightness", data=data, output_dir=out, preset="cpu-smoke", resume=True,
                                algo="grpo", offline=True, device="cpu", **SETTINGS)
