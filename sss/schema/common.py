"""The config error type and the small helpers every section's checks share (no torch here)."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A config value is missing, of the wrong kind or out of range: one line naming the key, the
    value and what is allowed (launch.py prints it as `error: ...` and exits with status 2)."""


class Choice(str, enum.Enum):
    """A closed set of strings: OmegaConf refuses any other value at compose time. Members are
    strings (`DType.float32 == "float32"`), so code reading them sees plain text."""

    def __str__(self) -> str:
        return self.value


def shown(value: Any) -> str:
    """A value as the YAML and the command line write it (null, not None)."""
    return "null" if value is None else repr(value)


def bad(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{key} = {shown(value)} is not allowed: expected {allowed}")


def at_least(key: str, value: int | None, low: int, allow_none: bool = False) -> None:
    """An integer field's range (its type is the schema's: OmegaConf has converted it)."""
    if value is None and allow_none:
        return
    if value is None or value < low:
        raise bad(key, value, f"an integer >= {low}" + (" or null" if allow_none else ""))


def describe(kind: Any) -> str:
    """What a schema field's type allows, in the words of an error message."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 1:
        return f"{describe(args[0])} or null"
    if typing.get_origin(kind) in (list, list):
        return f"a list of {_plural(args[0])}" if args else "a list"
    if typing.get_origin(kind) in (dict, dict):
        return "a mapping"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return f"one of [{', '.join(m.name for m in kind)}]"
    if dataclasses.is_dataclass(kind):
        return f"a mapping with the keys {[f.name for f in dataclasses.fields(kind)]}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        kind, getattr(kind, "__name__", str(kind))
    )


def _plural(kind: Any) -> str:
    return {int: "integers", float: "numbers", str: "strings"}.get(kind, describe(kind))


def field_type(owner: Any, name: str) -> Any:
    """The declared type of `owner.name` (owner a dataclass), or None."""
    if not dataclasses.is_dataclass(owner):
        return None
    return typing.get_type_hints(owner).get(name)


def field_names(owner: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(owner)] if dataclasses.is_dataclass(owner) else []
