"""Engine adapters: they move logits and per-request sampler specs in and out of an engine.

The rules themselves live in `sss.samplers` and know nothing of any engine.
"""
