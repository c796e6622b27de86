"""Every named sweep in sweeps/ composes, and every job it expands to is a valid config.

Parametrised over the files found, so a new sweep is checked the day it is added. The
expansion is Hydra's own (its override parser and BasicSweeper's cartesian product), and each
job's config goes through sss.config.validate exactly as launch.py would check it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from conftest import ROOT
from sss.config import validate

import launch  # noqa: F401  (registers sweeps/*.yaml as the `sweep` group)

SWEEPS = sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml"))


@pytest.fixture(autouse=True)
def hub_models_count_as_cached(monkeypatch):
    """The sweeps name hub models that this offline machine has never downloaded; whether a
    hub id is in the cache is checked in test_bad_inputs.py, not here."""
    monkeypatch.setattr("sss.models.check.check_hub_id", lambda value: None)


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def expand(sweep: str) -> list[list[str]]:
    """The jobs `python launch.py -m sweep=<sweep>` runs, as lists of overrides."""
    params = compose_cfg(f"sweep={sweep}").hydra.sweeper.params or {}
    parser = OverridesParser.create()
    overrides = parser.parse_overrides([f"{key}={value}" for key, value in params.items()])
    (batch,) = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return batch


def test_the_named_sweeps_of_the_issue_exist():
    assert {"min_p_grid", "top_p_grid", "eta_grid"} <= set(SWEEPS)


def provide_calibration(sweep: str, output_root: Path) -> None:
    """A finished (synthetic) calibration where `sampler.calibration=auto` looks for the one of
    the sweep's model: sweeps whose calibrated samplers read sss's own calibration need it."""
    from sss.calibration.options import calibration_dir
    from sss.runs.layout import write_json

    config = validate(compose_cfg(f"sweep={sweep}", "job=calibrate", f"output_root={output_root}")).config
    folder = calibration_dir(config)
    write_json(
        folder / "calibration.json",
        {
            "format": "sss-calibration",
            "format_version": 1,
            "bins": 10,
            "k_lists": {"0.05": [1, 2, 3, 3, 3, 3, 2, 2, 2, 1]},
            "fit": {"log_base": 10, "a": -0.5, "b": 0.8},
        },
    )
    (folder / "DONE").write_text("")


@pytest.mark.parametrize("sweep", SWEEPS)
def test_sweep_expands_to_valid_distinct_configs(sweep, tmp_path):
    jobs = expand(sweep)
    assert len(jobs) >= 2, f"sweeps/{sweep}.yaml sweeps nothing"
    provide_calibration(sweep, tmp_path)
    configs = []
    for overrides in jobs:
        cfg = compose_cfg(f"sweep={sweep}", *overrides, f"output_root={tmp_path}")
        settings = validate(cfg)
        configs.append(
            repr((settings.spec, settings.config["task"], settings.config["model"], settings.config["seed"]))
        )
        for override in overrides:
            assert_reaches_config(override, cfg, settings.config)
    assert len(set(configs)) == len(jobs), "two jobs of the sweep are the same run"


def assert_reaches_config(override: str, cfg, config: dict) -> None:
    """A swept value is in the validated config: a group choice (task=gsm8k_cot) among
    Hydra's runtime choices, any other key at its place in the config."""
    key, value = override.lstrip("+").split("=", 1)
    choices = cfg.hydra.runtime.choices
    if key in choices:
        assert str(choices[key]) == value.strip("[]") or value.startswith("["), override
        return
    node = config
    for part in key.split("."):
        node = node[part]
    if value == "null":  # a swept "off" (e.g. sampler.greedy_threshold: null,0.3)
        assert node is None, override
        return
    try:
        assert float(node) == pytest.approx(float(value)), override
    except (TypeError, ValueError):
        assert str(node).lower() == value.lower(), override


def test_min_p_grid_is_min_p_over_its_values():
    jobs = expand("min_p_grid")
    values = sorted(float(o.split("=")[1]) for (o,) in jobs)
    assert values == [0.02, 0.05, 0.1, 0.2, 0.3]
    assert list(validate(compose_cfg("sweep=min_p_grid", *jobs[0])).spec.enabled()) == ["min_p"]
