"""Where model weights come from: hub ids, local folders, and the embedded SmolLM2."""

from .resolve import resolve_model_path

__all__ = ["resolve_model_path"]
