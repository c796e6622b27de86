"""Token sampler rules of SAMPLERS.md, batched over logits [B, V] with per-row parameters."""

from .batch import SamplerBatch
from .bins import confidence_bin
from .process import apply_rules, process_logits
from .spec import EDT, CalibratedEpsilon, SamplerConfigError, SamplerSpec

__all__ = [
    "EDT",
    "CalibratedEpsilon",
    "SamplerBatch",
    "SamplerConfigError",
    "SamplerSpec",
    "apply_rules",
    "confidence_bin",
    "process_logits",
]
