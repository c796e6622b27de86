"""Hydra's and OmegaConf's composition errors as one line naming the key, the value and what is
allowed (their own messages span several lines and name schema classes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .common import ConfigError, describe, field_names, field_type, shown

# the element types OmegaConf names in its conversion errors
CONVERSIONS = {"converted to Integer": int, "converted to Float": float, "not a valid bool": bool}


def config_error(exc: BaseException, overrides: Sequence[str] = ()) -> ConfigError:
    """The ConfigError for an exception raised while Hydra composed the config (`overrides`, the
    command line's, give the value of a key the exception names without one)."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import (
        ConfigAttributeError,
        ConfigKeyError,
        ConfigTypeError,
        OmegaConfBaseException,
    )

    if isinstance(exc, ConfigError):
        return exc
    cause = exc if isinstance(exc, OmegaConfBaseException) else exc.__cause__
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        options = exc.options if exc.options is not None else group_options(group)
        return ConfigError(
            f"{group} = {name!r} is not allowed: Could not find '{exc.missing_cfg_file}'; "
            f"Available options in '{group}': {', '.join(options)}"
        )
    if isinstance(exc, OverrideParseException):
        return ConfigError(
            f"{exc.override!r} is not an override Hydra can read: {one_line(exc.message)} (expected key=value)"
        )
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        key, owner = cause.full_key, getattr(cause, "object_type", None)
        name = key.rpartition(".")[2]
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and name not in field_names(owner):
            section = key.rpartition(".")[0] or "the top level"
            value = override_values(overrides).get(key, cause.value)
            return ConfigError(
                f"{key} = {shown(value)} is not allowed: {section} has no key {name!r} "
                f"(its keys: {', '.join(field_names(owner))})"
            )
        if isinstance(cause, ConfigTypeError) and "deletion" in str(cause):  # ~key
            return ConfigError(
                f"~{key} is not allowed: every key of the schema has a value "
                f"(set it instead: {key}=<value>, or {key}=null where it may be null)"
            )
        # a field's declared type; for an element of a list (key[i]) the type OmegaConf names
        kind = field_type(owner, name) or next(
            (kind for word, kind in CONVERSIONS.items() if word in str(cause.msg)), None
        )
        allowed = describe(kind) if kind is not None else one_line(cause.msg).split(" full_key")[0]
        return ConfigError(f"{key} = {shown(cause.value)} is not allowed: expected {allowed}")
    return ConfigError(
        f"the config cannot be composed: {one_line(str(exc))}" + (f": {one_line(str(cause))}" if cause else "")
    )


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def override_values(overrides: Sequence[str]) -> dict[str, Any]:
    """{key: value} of the `key=value` overrides (Hydra's parser; sweeps and unreadable ones left out)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    values = {}
    for line in overrides:
        try:
            override = OverridesParser.create().parse_override(line)
        except Exception:  # noqa: BLE001, S112 - Hydra reports an unreadable override itself
            continue
        if not override.is_sweep_override() and not override.is_delete():
            values[override.key_or_group] = override.value()
    return values


# the sections that are null unless a config sets them, and the choice that does
SET_BY = {
    "sampler.edt": "sampler=edt",
    "sampler.calibrated_epsilon": "sampler=calibrated_epsilon",
    "analyze": "job=analyze",
}


def below_null(overrides: Sequence[str], compose: Any) -> ConfigError:
    """OmegaConf cannot set a key below a null node (`sampler.edt.n=0.5` while sampler.edt is
    null) and fails with an assertion; the first override that does it, named."""
    for count in range(1, len(overrides) + 1):
        try:
            compose(overrides[:count])
        except AssertionError:
            key = overrides[count - 1].partition("=")[0].lstrip("+~")
            parent = next((p for p in SET_BY if key.startswith(p + ".")), key.rpartition(".")[0])
            hint = f"add {SET_BY[parent]}, or set {parent} whole" if parent in SET_BY else f"set {parent} whole"
            return ConfigError(
                f"{key} = {shown(override_values(overrides).get(key))} is not allowed: {parent} is null here ({hint})"
            )
        except Exception:  # noqa: BLE001 - another problem comes first: the caller reports it
            break
    return ConfigError(f"the overrides {list(overrides)} could not be applied to the config")


def group_options(group: str) -> list[str]:
    """The options of a config group, as Hydra lists them (for a message that has none)."""
    from hydra.core.global_hydra import GlobalHydra

    hydra = GlobalHydra.instance().hydra
    if hydra is None:
        return []
    return sorted(hydra.config_loader.get_group_options(group))
