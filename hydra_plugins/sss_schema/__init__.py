"""Registers sss's config schema (sss.schema) in Hydra's ConfigStore. Hydra imports every module
under hydra_plugins when it starts, before it composes a config, so launch.py, the compose API
in tests and benchmarks, and the sss launchers all compose against the schema."""

from sss.schema import register

register()
