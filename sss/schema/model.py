"""The `model` group (conf/model/*.yaml): which weights, in which dtype."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from .common import Choice, bad


class DType(Choice):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


@dataclass
class ModelSchema:
    name: str = MISSING
    # embedded:<name>, a local folder or a hub id org/name (sss.models.check reads what is there)
    path: str = MISSING
    dtype: DType = MISSING
    # true runs Python code shipped with the weights: only true or false, never a string
    trust_remote_code: bool = MISSING

    def check(self) -> None:
        for key in ("name", "path"):
            if not getattr(self, key):
                raise bad(f"model.{key}", getattr(self, key), "a non-empty string")
