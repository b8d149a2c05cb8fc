"""A family registers by ``module:class`` in ``prefpaint_sdk.engines.FAMILIES``: a module of the engines package by
its name, any other by its dotted path or, for a user's own ``my_family.py`` or a script (``__main__``), by its
top-level name (docs/contributing/add-family.md runs such a script)."""

from __future__ import annotations

import sys
import types

import pytest

from prefpaint_sdk import engines
from prefpaint_sdk.engines import engine_class


def test_a_package_module_a_dotted_path_and_a_top_level_module(monkeypatch):
    from prefpaint_sdk.engines.sd import SDInpaintEngine

    assert engine_class("sd") is SDInpaintEngine
    top = types.ModuleType("my_family_for_test")
    top.MyEngine = type("MyEngine", (), {})
    monkeypatch.setitem(sys.modules, "my_family_for_test", top)
    monkeypatch.setitem(engines.FAMILIES, "mine", "my_family_for_test:MyEngine")
    monkeypatch.setitem(engines.FAMILIES, "dotted", "prefpaint_sdk.engines.sd:SDInpaintEngine")
    assert engine_class("mine") is top.MyEngine
    assert engine_class("dotted") is SDInpaintEngine


def test_a_module_that_is_nowhere_is_named(monkeypatch):
    monkeypatch.setitem(engines.FAMILIES, "ghost", "no_such_family_module:Engine")
    with pytest.raises(ModuleNotFoundError, match="no_such_family_module"):
        engine_class("ghost")
