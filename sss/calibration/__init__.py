"""Calibration (`job=calibrate`): teacher-forced traces of a frozen model on reference answers,
the confidence x rank grid, the log10 power-law fit, per-bin k lists, and the artifact that the
calibrated samplers read (`sampler.calibration=<dir>`). The method and the artifact format:
docs/calibration.md.

Modules: `options` (settings, the calibration directory), `data` (reference answers, token
sequences), `stats` (one step's numbers from logits), `tracing` with `trace_hf`, `trace_vllm`,
`trace_torchtune` (the engines) and `batching`, `traces` (traces.parquet), `grid`, `fit`,
`artifact` (calibration.json), `for_samplers` (sampler.calibration), `figures`, `compare`
(several calibrations, for job=analyze).
"""

import logging

# torchtune needs torchao 0.15, which warns at import that its C++ kernels do not match this
# torch; transformers imports torchao whenever it is installed (to probe for its quantizer), so
# every model load would print that warning. sss uses none of torchao's kernels.
logging.getLogger("torchao").setLevel(logging.ERROR)
