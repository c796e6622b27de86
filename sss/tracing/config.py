"""Checks on the `logging` config group (conf/logging/*.yaml), before any model loads."""

from __future__ import annotations

from typing import Any


def validate_logging(plain: dict[str, Any]) -> dict[str, Any]:
    """Check `logging.tokens` and `logging.top_k` of a resolved config (plain data) and return
    the logging section; raise sss.config.ConfigError naming the key, the value and what is allowed."""
    from sss.config import ConfigError

    def bad(key: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"logging.{key} = {value!r} is not allowed: expected {allowed}")

    logging = plain.get("logging")
    if logging is None:
        logging = {}
    if not isinstance(logging, dict):
        raise ConfigError(f"logging = {logging!r} is not allowed: expected a config group "
                          "(logging=none or logging=tokens)")
    tokens = logging.get("tokens", False)
    if not isinstance(tokens, bool):
        raise bad("tokens", tokens, "true or false")
    top_k = logging.get("top_k", 0)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise bad("top_k", top_k, "an integer >= 0 (the most probable tokens kept per step)")
    if top_k > 0 and not tokens:
        raise bad("top_k", top_k, "0 unless logging.tokens=true (logging=tokens): "
                  "the top tokens are columns of tokens.parquet")
    return logging
