"""Composing the config as launch.py does, with sss's errors, and what OmegaConf leaves to us:
keys added with `+` to a typed section, and booleans written as words."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .common import ConfigError, bad, field_names, shown


def compose(
    overrides: Iterable[str] = (),
    config_dir: str | Path = "conf",
    config_name: str = "config",
    return_hydra_config: bool = False,
) -> DictConfig:
    """Hydra's compose API; a bad override or config file raises ConfigError (one line)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import MissingConfigException

    from .errors import below_null, config_error

    overrides = list(overrides)

    def composed(lines: list[str]) -> DictConfig:
        with initialize_config_dir(config_dir=str(Path(config_dir).absolute()), version_base="1.3"):
            try:
                return hydra_compose(config_name, overrides=lines, return_hydra_config=True)
            except MissingConfigException as exc:  # translated here, where Hydra lists the options
                raise config_error(exc, lines) from exc

    try:
        cfg = composed(overrides)
    except AssertionError as exc:  # OmegaConf's, for a key set below a null node
        raise below_null(overrides, composed) from exc
    except Exception as exc:  # whatever stops the composition, said in one line
        raise config_error(exc, overrides) from exc
    check_composed(cfg)
    if not return_hydra_config:
        from omegaconf import open_dict

        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def check_composed(cfg: DictConfig) -> None:
    """What the schema's types do not refuse by themselves: keys that `+key=value` added to a
    typed section, and (when the config holds Hydra's node, so its overrides are known) a boolean
    override that is not true or false: OmegaConf would read `no`, `yes`, `1` as booleans."""
    check_no_extra_keys(cfg)
    if "hydra" in cfg:
        check_bool_overrides(cfg, list(cfg.hydra.overrides.task))


def check_no_extra_keys(node: DictConfig, path: str = "") -> None:
    owner = OmegaConf.get_type(node)
    typed = dataclasses.is_dataclass(owner)
    for key in node:
        if not path and key == "hydra":
            continue
        full = f"{path}.{key}" if path else str(key)
        if typed and key not in field_names(owner):
            section = path or "the top level"
            raise ConfigError(
                f"{full} = {shown(node._get_node(key)._value())} is not allowed: "
                f"{section} has no key {key!r} (its keys: {', '.join(field_names(owner))})"
            )
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            check_no_extra_keys(child, full)


def check_bool_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """Each `key=value` override of a boolean field must be true or false (Hydra reads those, in
    any case, as booleans); refused before OmegaConf's conversion can matter."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import BooleanNode

    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if override.is_delete() or key.startswith("hydra.") or override.is_sweep_override():
            continue
        parent_key, _, name = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        node = parent._get_node(name, validate_access=False) if isinstance(parent, DictConfig) else None
        if isinstance(node, BooleanNode):
            value = override.value()
            if not isinstance(value, bool) and not (value is None and node._is_optional()):
                raise bad(key, value, "true or false (yes, no, 1 and 0 are not booleans here)")
