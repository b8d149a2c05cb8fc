"""AlignConfig: presets, TOML override, validation naming both values, batch arithmetic; the data convention."""

import dataclasses
import json

import numpy as np
import pytest
from _helpers_align import make_data
from PIL import Image

from prefpaint_sdk.align.algorithms import algorithm_names
from prefpaint_sdk.align.config import PRESETS, AlignConfig, batch_summary, family_presets, load_config, lr_lambda
from prefpaint_sdk.align.data import AlignDataset
from prefpaint_sdk.errors import ConfigError, DataError


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("algo", algorithm_names())
def test_presets_validate(name, algo):
    # raises ConfigError naming the clash if a preset is inconsistent, under any algorithm
    load_config(name, overrides={"algo": algo}).resolve().validate()


def test_paper_preset_matches_the_release():
    cfg = load_config("paper").resolve()
    a = cfg.algo_config
    assert cfg.algo == "ppo" and (cfg.finetune, cfg.num_steps, a.timesteps_per_traj, a.resync_every) == ("full", 50, 5, 15)
    assert (cfg.learning_rate, cfg.weight_decay, cfg.adam_eps, a.clip_range, a.adv_clip) == (2e-6, 0.01, 1e-8, 1e-4, 10.0)
    assert cfg.prompts_per_iter * cfg.samples_per_prompt == 16 and a.logprob_reduction == "mean"
    assert cfg.mixed_precision == "bf16" and cfg.use_trust
    # What the release runs, derived from the settings: 16 samples per GPU on 4 GPUs, 5 of 50 steps trained each,
    # at a constant learning rate.
    s = batch_summary(cfg, num_processes=4)
    assert (s["samples_per_iteration"], s["trained_timesteps_per_iteration"], s["unet_passes_per_sample_rollout"]) == (64, 320, 50)
    assert [lr_lambda(cfg, 1000)(k) for k in (0, 500, 999)] == [1.0, 1.0, 1.0]


def test_every_field_has_help():
    assert all(AlignConfig.help().values())


def test_toml_then_overrides(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text('[align]\nlearning_rate = 0.5\nnum_steps = 7\nmask_kinds = ["stroke"]\n')
    cfg = load_config("cpu-smoke", p, {"num_steps": 9, "use_trust": "false"})
    assert cfg.learning_rate == 0.5 and cfg.num_steps == 9 and cfg.mask_kinds == ["stroke"] and cfg.use_trust is False


@pytest.mark.parametrize("preset, family", [(p, f) for p, fams in sorted(family_presets().items()) for f in sorted(fams)])
def test_family_values_apply_over_the_preset_and_user_values_win(tmp_path, preset, family):
    values = family_presets()[preset][family]
    own = load_config(preset)
    cfg = load_config(preset, family=family)
    assert values and {k: getattr(cfg, k) for k in values} == values
    assert any(getattr(own, k) != v for k, v in values.items())  # it does change the preset
    sd = load_config(preset, family="sd")
    assert dataclasses.replace(sd, preset_family="") == own == load_config(preset, family=None)  # the preset's own
    sampler = "flow" if family == "flux-fill" else "ddim"
    for algo in algorithm_names():  # with the algorithm's own values for the family (resolve applies them)
        cfg.replace(algo=algo).resolve().validate(sampler=sampler)
    # an explicit value, from flags (overrides) or a TOML file, beats the family's
    key = sorted(values)[0]
    mine = values[key] + 1
    assert getattr(load_config(preset, overrides={key: mine}, family=family), key) == mine
    (tmp_path / "a.toml").write_text(f"{key} = {mine}\n")
    assert getattr(load_config(preset, tmp_path / "a.toml", family=family), key) == mine


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        load_config("huge")
    with pytest.raises(ConfigError, match=r"unknown align setting\(s\) \['lr'\]"):
        load_config(None, None, {"lr": 1})
    with pytest.raises(ConfigError, match="align setting num_steps=.many. should be a whole number"):
        AlignConfig().replace(num_steps="many")
    (tmp_path / "bad.toml").write_text("num_steps = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(None, tmp_path / "bad.toml")


@pytest.mark.parametrize("overrides, pattern", [
    (dict(timesteps_per_traj=8, num_steps=4), "timesteps_per_traj=8 exceeds num_steps=4"),
    (dict(prompts_per_iter=3, samples_per_prompt=2, train_batch_size=4), r"= 6 samples .* train_batch_size x grad_accum_steps = 4"),
    (dict(eta=0.0), "eta=0.0"),
    (dict(algo="grpo", samples_per_prompt=1, train_batch_size=1), "samples_per_prompt=1"),
    (dict(finetune="half"), "finetune must be"),
    (dict(trust_min=3.0, trust_max=2.0), "trust_min=3.0 exceeds trust_max=2.0"),
    (dict(mask_kinds=["blob"]), "blob"),
])
def test_validation_names_values(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        AlignConfig().replace(**overrides).resolve().validate()


def test_batch_arithmetic():
    cfg = AlignConfig().replace(prompts_per_iter=4, samples_per_prompt=4, train_batch_size=2, grad_accum_steps=4,
                                timesteps_per_traj=5, inner_epochs=1)
    s = batch_summary(cfg, num_processes=4)
    assert s["samples_per_iteration"] == 64
    assert s["trained_timesteps_per_iteration"] == 320
    assert s["optimizer_steps_per_iteration"] == 2
    assert s["effective_batch_per_optimizer_step"] == 32


def test_data_pairs_by_stem_and_generates_missing_masks(tmp_path):
    root = make_data(tmp_path / "d", n=3, with_masks=True)
    (root / "masks" / "01.png").unlink()
    ds = AlignDataset(root, 32, seed=5)
    a, b = ds.get(0), ds.get(1)
    assert a.image.size == (32, 32) and a.mask.shape == (32, 32)
    m0 = np.asarray(Image.open(root / "masks" / "00.png")) > 127
    assert not (m0[::2, ::2] & ~a.mask).any()  # the given mask, resized so every hole pixel stays a hole
    assert a.mask.mean() == pytest.approx(m0.mean(), abs=0.08)
    assert np.array_equal(b.mask, AlignDataset(root, 32, seed=5).get(1).mask)  # generated, seeded
    assert not np.array_equal(b.mask, AlignDataset(root, 32, seed=6).get(1).mask)


def test_data_manifest(tmp_path):
    root = make_data(tmp_path / "d", n=2, with_masks=True)
    with open(root / "manifest.jsonl", "w") as fh:
        fh.write(json.dumps({"image": "images/00.png", "mask": "masks/01.png"}) + "\n")
        fh.write(json.dumps({"image": "images/01.png"}) + "\n")
    ds = AlignDataset(root, 64)
    assert len(ds) == 2
    assert np.array_equal(ds.get(0).mask, np.asarray(Image.open(root / "masks" / "01.png")) > 127)


def test_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        AlignDataset(tmp_path / "nope", 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither images/ nor manifest.jsonl"):
        AlignDataset(tmp_path / "empty", 32)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.jsonl").write_text('{"mask": "x.png"}\n')
    with pytest.raises(DataError, match="no 'image' key"):
        AlignDataset(tmp_path / "m", 32)
    (tmp_path / "m" / "manifest.jsonl").write_text('{"image": "missing.png"}\n')
    with pytest.raises(DataError, match="does not exist"):
        AlignDataset(tmp_path / "m", 32)


def test_family_of_model_reads_model_index_and_says_none_when_it_cannot(tmp_path):
    from prefpaint_sdk.engines import family_of_model

    (tmp_path / "flux").mkdir()
    (tmp_path / "flux" / "model_index.json").write_text(json.dumps({"_class_name": "FluxFillPipeline"}))
    assert family_of_model(tmp_path / "flux") == "flux-fill"
    (tmp_path / "empty").mkdir()
    assert family_of_model(tmp_path / "empty") is None  # loading the model reports the missing model_index.json
    assert family_of_model("nobody/no-such-model", offline=True) is None  # not cached, offline


def test_preset_family_reads_the_family_only_for_a_preset_with_family_values(tmp_path):
    from prefpaint_sdk.align.config import preset_family

    (tmp_path / "flux").mkdir()
    (tmp_path / "flux" / "model_index.json").write_text(json.dumps({"_class_name": "FluxFillPipeline"}))
    assert preset_family("cpu-smoke", tmp_path / "flux") == "flux-fill"
    assert load_config("cpu-smoke", family=preset_family("cpu-smoke", tmp_path / "flux")).num_steps == 2
    assert preset_family("paper", tmp_path / "flux") is None  # no per-family values: nothing is read
    assert preset_family(None, tmp_path / "flux") is None
