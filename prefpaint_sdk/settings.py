"""Configuration dataclasses shared by the trainers: fields with help text, checked replacement, and
values coerced from strings (TOML files and ``--set name=value`` flags give strings or loose types)."""

from __future__ import annotations

import dataclasses
from dataclasses import field, fields
from typing import Any, ClassVar

from .errors import ConfigError

__all__ = ["setting", "Settings"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


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
                return bool(value)
            if isinstance(current, int):
                return int(value)
            if isinstance(current, float):
                return float(value)
            if isinstance(current, list):
                if not isinstance(value, str):
                    return list(value)
                # "a, b" from a flag: convert items like the default's items (strings when it is empty).
                item = type(current[0]) if current else str
                return [item(s.strip()) for s in value.split(",")]
            if isinstance(current, dict):
                return dict(value)
            return str(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self._what} setting {name}={value!r} should be a {type(current).__name__}") from exc
