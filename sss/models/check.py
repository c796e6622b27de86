"""`model.path` checked before any model loads: a local folder must hold what an engine opens
(config, weights, tokenizer); a hub id is only tried when it looks like one (`org/name`), and
when the hub cannot be reached it must already be in the local cache.

Raises sss.config.ConfigError with one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from .resolve import EMBEDDED, EMBEDDED_PREFIX

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf", "*.msgpack")
TOKENIZERS = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tiktoken.model", "*.tiktoken")
HUB_HOST = ("huggingface.co", 443)


def _error(value: str, allowed: str):
    from sss.config import ConfigError

    return ConfigError(f"model.path = {value!r} is not allowed: expected {allowed}")


def check_model_path(value: str) -> None:
    if value.startswith(EMBEDDED_PREFIX):
        if value[len(EMBEDDED_PREFIX) :] not in EMBEDDED:
            raise _error(
                value,
                f"one of {sorted(EMBEDDED_PREFIX + n for n in EMBEDDED)}, a local model folder or a hub id org/name",
            )
        return
    local = Path(value).expanduser()
    if local.exists():
        check_model_folder(value, local)
        return
    if value.startswith((".", "/", "~")) or not HUB_ID.match(value):
        raise _error(value, "an existing local model folder (it does not exist), embedded:<name>, or a hub id org/name")
    check_hub_id(value)


def check_model_folder(value: str, folder: Path) -> None:
    """A Hugging Face model folder: config.json, weight files and tokenizer files."""
    if not folder.is_dir():
        raise _error(value, "a model folder (this is a file)")
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any(next(folder.glob(pattern), None) for pattern in WEIGHTS):
        missing.append("weights (*.safetensors or *.bin)")
    if not any(next(folder.glob(pattern), None) for pattern in TOKENIZERS):
        missing.append("a tokenizer (tokenizer.json, tokenizer.model or vocab.json)")
    if missing:
        raise _error(value, f"a Hugging Face model folder; it lacks {', '.join(missing)}")


def hub_offline() -> bool:
    """Whether the hub is off limits: HF_HUB_OFFLINE set, or huggingface.co not reachable within
    a few seconds (one TCP connect, instead of transformers' minute of retries)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    try:
        with socket.create_connection(HUB_HOST, timeout=3):
            return False
    except OSError:
        return True


def in_local_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = try_to_load_from_cache(repo_id, "config.json")
    return isinstance(found, str)


def check_hub_id(value: str) -> None:
    if in_local_cache(value):
        return
    if hub_offline():
        raise _error(
            value,
            "a model that can be loaded: it is not in the local Hugging Face cache "
            "and the hub is unreachable (offline); pass model.path=<local model folder>",
        )
