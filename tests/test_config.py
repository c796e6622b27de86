"""Config composition (Hydra compose API) and validation before any model loads."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from conftest import ROOT, launch
from sss.config import ConfigError, validate
from sss.samplers import SamplerConfigError, SamplerSpec
from sss.schema import compose as compose_config

CONF = ROOT / "conf"
SAMPLERS = sorted(p.stem for p in (CONF / "sampler").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))


def compose_cfg(*overrides: str):
    """The config as launch.py composes it: a value of the wrong type is a ConfigError."""
    return compose_config(overrides, CONF)


def test_every_rule_of_samplers_md_has_a_config():
    rules = {
        "temperature",
        "greedy",
        "top_k",
        "top_p",
        "min_p",
        "epsilon",
        "eta",
        "edt",
        "greedy_threshold",
        "calibrated_topk",
        "calibrated_epsilon",
        "confidence_bin",
    }
    assert rules <= set(SAMPLERS)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_each_sampler_config_composes_and_enables_its_rule(sampler):
    settings = validate(compose_cfg(f"sampler={sampler}"))
    enabled = settings.spec.enabled()
    if sampler == "temperature":
        assert enabled == {}  # T = 1: the unrestricted baseline
    else:
        assert list(enabled) == [sampler]


@pytest.mark.parametrize("model", MODELS)
def test_each_model_config_composes(model, monkeypatch):
    # hub models are checked against the local cache, with the hub off limits here
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = compose_cfg(f"model={model}")
    try:
        settings = validate(config)
    except ConfigError as exc:
        assert "/" in config.model.path and "not in the local Hugging Face cache" in str(exc)
        assert "model.path=<local model folder>" in str(exc)
        return
    assert settings.config["model"]["path"]


@pytest.mark.parametrize("task", TASKS)
def test_each_task_config_composes(task):
    assert validate(compose_cfg(f"task={task}")).config["task"]["name"] == task


def test_stacking_by_list_and_by_key_give_the_same_spec():
    by_list = validate(compose_cfg("sampler=[min_p,greedy_threshold]")).spec
    by_key = validate(compose_cfg("sampler=min_p", "sampler.greedy_threshold=0.3")).spec
    assert by_list == by_key == SamplerSpec(min_p=0.1, greedy_threshold=0.3)


def test_cli_values_reach_the_spec():
    spec = validate(compose_cfg("sampler=edt", "sampler.edt.n=0.5", "sampler.edt.t0=0.7")).spec
    assert (spec.edt.n, spec.edt.theta, spec.edt.t0) == (0.5, 1.0, 0.7)
    spec = validate(
        compose_cfg(
            "sampler=calibrated_topk",
            "sampler.calibrated_topk=[1,2,3,4,5,6,7,8,9,10]",
            "sampler.calibrated_topk_order=high_first",
        )
    ).spec
    assert spec.calibrated_topk == (10, 9, 8, 7, 6, 5, 4, 3, 2, 1)


@pytest.mark.parametrize(
    "override, words",
    [
        ("sampler.min_p=1.5", ["min_p", "1.5", "0 <= min_p <= 1"]),
        ("sampler.top_k=-1", ["top_k", "-1", "k >= 1"]),
        ("sampler.calibrated_topk=[1,1,1,1,1,1,1,1,1]", ["calibrated_topk", "10 integers", "got 9"]),
        ("sampler.confidence_bin=11", ["confidence_bin", "11", "1 <= m <= 10"]),
    ],
)
def test_bad_sampler_values_name_key_value_and_range(override, words):
    with pytest.raises(SamplerConfigError) as err:
        validate(compose_cfg(override))
    for word in words:
        assert word in str(err.value)


def test_edt_with_nonpositive_n_is_rejected():
    # the schema types edt.n as a float: the 0 typed is 0.0
    with pytest.raises(SamplerConfigError, match=r"edt\.n = 0\.0 .*N > 0"):
        validate(compose_cfg("sampler=edt", "sampler.edt.n=0"))


@pytest.mark.parametrize(
    "override, key",
    [
        ("task.limit=0", "task.limit"),
        ("task.repeats=0", "task.repeats"),
        ("engine.max_rows=0", "engine.max_rows"),
        ("model.dtype=int8", "model.dtype"),
        ("model.trust_remote_code=no", "model.trust_remote_code"),
        ("task.data_files=/nonexistent/file.jsonl", "task.data_files"),
        ("seed=-3", "seed"),
    ],
)
def test_bad_run_values_are_config_errors(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_cfg(override))


# ---------------------------------------------------------------- as a user types it
@pytest.mark.parametrize(
    "override, words",
    [
        ("sampler.min_p=1.5", ["sampler.min_p = 1.5", "0 <= min_p <= 1"]),
        ("sampler.top_k=-1", ["sampler.top_k = -1"]),
        ("sampler.calibrated_topk=[2,2,2,2,2,2,2,2,2]", ["sampler.calibrated_topk", "got 9 values"]),
        ("sampler.confidence_bin=11", ["sampler.confidence_bin = 11", "1 <= m <= 10"]),
        ("sampler=edt sampler.edt.n=0", ["sampler.edt.n = 0", "N > 0"]),
    ],
)
def test_launch_rejects_bad_values_before_loading_anything(tmp_path, override, words):
    result = launch(*override.split(), f"output_root={tmp_path}")
    assert result.returncode == 2, result.stderr
    for word in words:
        assert word in result.stderr
    assert "run directory" not in result.stdout
    assert not any(p.name != ".hydra" for p in tmp_path.iterdir())  # no run directory started


@pytest.mark.parametrize("group, name", [("sampler", "nucleus9"), ("model", "gpt5"), ("task", "nope")])
def test_launch_rejects_unknown_names_with_the_options(tmp_path, group, name):
    result = launch(f"{group}={name}", f"output_root={tmp_path}")
    assert result.returncode != 0
    assert f"Could not find '{group}/{name}'" in result.stderr
    assert "Available options" in result.stderr


def test_unknown_sampler_parameter_is_rejected(tmp_path):
    result = launch("sampler.min_pp=0.1", f"output_root={tmp_path}")
    assert result.returncode != 0
    assert "min_pp" in result.stderr


def test_named_sweeps_compose_with_their_grid():
    from launch import register_named_sweeps

    register_named_sweeps()
    names = sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml"))
    assert "min_p_grid" in names
    for name in names:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            # a sweep's hub model is not in this offline machine's cache: the embedded one stands in
            cfg = compose(
                config_name="config",
                return_hydra_config=True,
                overrides=[f"sweep={name}", "model.path=embedded:smollm2-135m-instruct"],
            )
        assert cfg.hydra.sweeper.params, name
        validate(cfg)
        if name == "min_p_grid":
            assert cfg.sampler.min_p == 0.1 and "0.02" in cfg.hydra.sweeper.params["sampler.min_p"]
