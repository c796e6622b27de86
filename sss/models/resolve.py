"""Turn a model config's `path` into something `from_pretrained` (or vLLM) can open."""

from __future__ import annotations

from pathlib import Path

EMBEDDED_PREFIX = "embedded:"
EMBEDDED = {"smollm2-135m-instruct"}


def resolve_model_path(path: str) -> str:
    """`embedded:<name>` -> converted local folder; an existing local path -> absolute path;
    anything else is passed through as a hub id (the hub is reached only then)."""
    if path.startswith(EMBEDDED_PREFIX):
        name = path[len(EMBEDDED_PREFIX) :]
        if name not in EMBEDDED:
            raise ValueError(
                f"model.path = {path!r}: unknown embedded model, expected one of "
                f"{sorted(EMBEDDED_PREFIX + n for n in EMBEDDED)}"
            )
        from .embedded import smollm2_folder

        return str(smollm2_folder())
    local = Path(path).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ValueError(
                f"model.path = {path!r} is a local path without config.json (expected a Hugging Face model folder)"
            )
        return str(local.resolve())
    if path.startswith((".", "/", "~")):
        raise ValueError(f"model.path = {path!r} does not exist")
    return path
