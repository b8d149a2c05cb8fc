"""Configuration dataclasses shared by the trainers: fields with help text, checked replacement, and
values coerced from strings (TOML files and ``--set name=value`` flags give strings or loose types)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field, fields
from typing import Any, ClassVar

from .errors import ConfigError, InvalidInputError

__all__ = ["setting", "Settings"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_KIND = {"bool": "boolean (true or false)", "int": "whole number", "float": "number", "list": "list", "dict": "table",
         "str": "string"}


def setting(default: Any, help: str, **kw: Any):
    """A dataclass field with help text; list and dict defaults are copied per instance."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


class Settings:
    """Mixin for a settings dataclass. ``_what`` names it in error messages ("align setting ...")."""

    _what: ClassVar[str] = "setting"
    _names_hint: ClassVar[str] = ""

    def replace(self, **changes: Any):
        """A copy with ``changes`` applied, each coerced to its field's type.

        Raises:
            ConfigError: an unknown name, or a value that does not convert to the field's type.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            hint = self._names_hint or f"known: {', '.join(sorted(known))}"
            raise ConfigError(f"unknown {self._what} setting(s) {unknown}; {hint}")
        return dataclasses.replace(self, **{k: self._coerce(k, v) for k, v in changes.items()})

    def check_finite(self) -> None:
        """Refuse a NaN or infinite float setting (a directly built config never went through coercion).

        Raises:
            ConfigError: names the first non-finite setting.
        """
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise self._not_finite(f.name, value)
            if isinstance(value, list) and any(isinstance(v, float) and not math.isfinite(v) for v in value):
                raise self._not_finite(f.name, value)

    def _check_seed(self) -> None:
        """The one seed rule (:func:`prefpaint_sdk.validation.check_seed`) for a ``seed`` setting."""
        from .validation import check_seed

        try:
            check_seed(getattr(self, "seed", None))
        except InvalidInputError as exc:
            raise ConfigError(f"{self._what} setting ", *exc.args, param="seed") from None

    def _not_finite(self, name: str, value: Any) -> ConfigError:
        err = ConfigError(f"{self._what} setting {name}={value!r} must be a finite number")
        err.param = name  # type: ignore[attr-defined]
        return err

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def _coerce(self, name: str, value: Any) -> Any:
        current = getattr(self, name)
        try:
            if isinstance(current, bool):
                if isinstance(value, str):
                    if value.lower() in _TRUE | _FALSE:
                        return value.lower() in _TRUE
                    raise ValueError(value)
                if isinstance(value, (int, float)) and value in (0, 1):
                    return bool(value)
                if isinstance(value, bool):
                    return value
                raise ValueError(value)
            if isinstance(current, int):
                return _to_int(value)
            if isinstance(current, float):
                return self._finite(name, value)
            if isinstance(current, list):
                if not isinstance(value, str):
                    items = list(value)
                else:
                    # "a, b" from a flag: convert items like the default's items (strings when it is empty).
                    item = type(current[0]) if current else str
                    items = [_to_int(s.strip()) if item is int else item(s.strip()) for s in value.split(",")]
                for v in items:
                    if isinstance(v, float) and not math.isfinite(v):
                        raise self._not_finite(name, value)
                return items
            if isinstance(current, dict):
                return dict(value)
            return str(value)
        except ConfigError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            err = ConfigError(f"{self._what} setting {name}={value!r} should be a {_KIND.get(type(current).__name__, type(current).__name__)}")
            err.param = name  # type: ignore[attr-defined]
            raise err from exc

    def _finite(self, name: str, value: Any) -> float:
        if isinstance(value, bool):
            raise TypeError(value)
        v = float(value)
        if not math.isfinite(v):
            raise self._not_finite(name, value)
        return v


def _to_int(value: Any) -> int:
    """An int from an int, a whole float (``1e3``) or a string of either; never truncates ``2.5``."""
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            value = float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(value)
