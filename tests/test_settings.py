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
    with pytest.raises(ConfigError, match="demo setting flag='maybe' should be a bool"):
        Demo().replace(flag="maybe")
    with pytest.raises(ConfigError, match="demo setting count='x' should be a int"):
        Demo().replace(count="x")
