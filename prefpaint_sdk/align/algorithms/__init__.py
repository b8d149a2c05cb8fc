"""Alignment algorithms by name: one module each in this package (see :mod:`.base` for the seam).

The registry scans this package: every module ``<name>.py`` (not ``base`` nor a ``_private`` one) defines
``ALGORITHM``, an :class:`~.base.Algorithm` subclass whose ``name`` is ``<name>``. So adding an algorithm is
adding its module (and its tests); nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from ...errors import Arg, ConfigError
from .base import AlgoConfig, Algorithm

__all__ = ["AlgoConfig", "Algorithm", "algorithm_names", "get_algorithm", "setting_owners"]


@cache
def algorithm_names() -> tuple[str, ...]:
    """The registered algorithms' names, sorted."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                        if not m.ispkg and m.name != "base" and not m.name.startswith("_")))


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class registered as ``name``.

    Raises:
        ConfigError: an unknown name, listing the known ones.
    """
    if name not in algorithm_names():
        raise ConfigError(Arg("algo"), f" must be one of {', '.join(algorithm_names())} (or '' for the family's default), "
                          f"got '{name}'")
    cls = importlib.import_module(f".{name}", __name__).ALGORITHM
    if cls.name != name:  # a copied module that kept its template's name would shadow another algorithm
        raise ConfigError(f"algorithm module '{name}' registers an algorithm named '{cls.name}'; they must agree")
    return cls


@cache
def setting_owners() -> dict[str, tuple[str, ...]]:
    """Each algorithm setting's name -> the algorithms that have it (``kl_coef`` -> ("grpo", "ppo"), ...)."""
    from dataclasses import fields

    owners: dict[str, list[str]] = {}
    for name in algorithm_names():
        for f in fields(get_algorithm(name).config_cls):
            owners.setdefault(f.name, []).append(name)
    return {k: tuple(v) for k, v in owners.items()}
