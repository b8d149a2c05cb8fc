"""The shared settings mixin: checked replacement and coercion from TOML / --set strings."""

from dataclasses import dataclass

import pytest

from prefpaint_sdk import ConfigError
from prefpaint_sdk.settings import Settings, setting


@dataclass
class Demo(Settings):
    _what = "demo"
    flag: bool = setting(False, "a switch")
    count: int = setting(3, "a count")
    rate: float = setting(0.5, "a rate")
    names: list = setting(["a"], "strings")
    fractions: list = setting([0.7, 0.3], "floats")
    extra: dict = setting({}, "a table")


def test_coercion_from_strings_follows_the_field_types():
    d = Demo().replace(flag="on", count="7", rate="1e-3", names="x, y", fractions="0.25,0.75", extra={"k": 1})
    assert d == Demo(flag=True, count=7, rate=1e-3, names=["x", "y"], fractions=[0.25, 0.75], extra={"k": 1})
    assert Demo().names is not Demo().names  # list defaults are per instance
    assert Demo.help()["rate"] == "a rate" and Demo().to_dict()["count"] == 3


def test_bad_names_and_values_name_the_setting():
    with pytest.raises(ConfigError, match=r"unknown demo setting\(s\) \['nope'\]; known: count, extra"):
        Demo().replace(nope=1)
    with pytest.raises(ConfigError, match="demo setting flag='maybe' should be a boolean"):
        Demo().replace(flag="maybe")
    with pytest.raises(ConfigError, match="demo setting count='x' should be a whole number"):
        Demo().replace(count="x")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan"), float("inf"), "NaN"])
def test_non_finite_floats_are_refused_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"demo setting rate=.* must be a finite number") as info:
        Demo().replace(rate=value)
    assert info.value.param == "rate"
    with pytest.raises(ConfigError, match="demo setting fractions=.* must be a finite number"):
        Demo().replace(fractions=[0.5, value] if not isinstance(value, str) else f"0.5, {value}")


@pytest.mark.parametrize("value", ["inf", float("inf"), float("nan"), 2.5, "2.5", True])
def test_ints_never_truncate_or_overflow(value):
    with pytest.raises(ConfigError, match="demo setting count=.* should be a whole number"):
        Demo().replace(count=value)


def test_whole_floats_and_exponents_are_ints():
    assert Demo().replace(count=4.0).count == 4 and Demo().replace(count="1e3").count == 1000


def test_directly_built_configs_are_checked_too():
    from prefpaint_sdk.align.config import AlignConfig
    from prefpaint_sdk.reward.config import RewardTrainConfig

    with pytest.raises(ConfigError, match="learning_rate=nan must be a finite number"):
        AlignConfig(learning_rate=float("nan")).validate()
    with pytest.raises(ConfigError, match="lr=inf must be a finite number"):
        RewardTrainConfig(lr=float("inf")).validate()


def test_toml_nan_is_a_config_error_naming_the_key(tmp_path):
    from prefpaint_sdk.align.config import load_config
    from prefpaint_sdk.reward.config import load_reward_config

    (tmp_path / "a.toml").write_text("[align]\nclip_range = nan\n")
    with pytest.raises(ConfigError, match="align setting clip_range=nan must be a finite number"):
        load_config(None, tmp_path / "a.toml")
    (tmp_path / "r.toml").write_text("trust_lam = inf\n")
    with pytest.raises(ConfigError, match="reward training setting trust_lam=inf must be a finite number"):
        load_reward_config("paper", tmp_path / "r.toml")


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_config_seeds_follow_the_one_seed_rule(seed):
    from prefpaint_sdk.align.config import AlignConfig
    from prefpaint_sdk.reward.config import RewardTrainConfig

    with pytest.raises(ConfigError, match=f"align setting seed must be between 0 and 4294967295, got {seed}"):
        AlignConfig().replace(seed=seed).validate()
    with pytest.raises(ConfigError, match=f"reward training setting seed must be between 0 and 4294967295, got {seed}"):
        RewardTrainConfig().replace(seed=seed).validate()
