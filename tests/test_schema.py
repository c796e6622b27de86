"""The config schema (sss/schema): every YAML in conf/ composes against it with every key typed,
types are enforced at compose time with one-line errors, and the schema imports no torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from conftest import ROOT, launch
from sss.config import validate
from sss.schema import ConfigError, RootSchema, compose, register

CONF = ROOT / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")
OPTIONS = [(group, p.stem) for group in GROUPS for p in sorted((CONF / group).glob("*.yaml"))]


def yaml_keys(group: str, option: str) -> set[str]:
    """The keys a group option's YAML sets itself (its defaults list aside)."""
    data = yaml.safe_load((CONF / group / f"{option}.yaml").read_text())
    data.pop("defaults", None)
    return set(data)


def test_every_group_of_conf_has_a_typed_field_in_the_root():
    roots = {f.name for f in dataclasses.fields(RootSchema)}
    assert set(GROUPS) - {"job"} <= roots and "job" in roots and "analyze" in roots


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_against_the_schema_with_every_field_set(group, option):
    cfg = compose([f"{group}={option}"], CONF)
    # every section is a dataclass of the schema: a YAML key without a field fails compose above
    section = "analyze" if (group, option) == ("job", "analyze") else group
    node = cfg[section]
    owner = OmegaConf.get_type(node)
    assert dataclasses.is_dataclass(owner), (section, owner)
    # every field has a value (MISSING in the schema: the YAML must set it)
    typed = OmegaConf.to_object(node)
    assert isinstance(typed, owner)
    fields = {f.name for f in dataclasses.fields(owner)}
    if group not in ("sampler", "job"):  # sampler files set one rule; config.yaml sets the rest
        assert yaml_keys(group, option) <= fields


def test_the_sampler_schema_has_every_sampler_spec_field():
    """The sampler section is typed twice: in the torch-free schema and as `SamplerSpec` (the
    runtime rules). A field added to the spec must be settable from the config."""
    from sss.samplers import SamplerSpec
    from sss.schema.sampler import SamplerSchema

    spec = {f.name for f in dataclasses.fields(SamplerSpec)}
    schema = {f.name for f in dataclasses.fields(SamplerSchema)}
    assert spec <= schema, spec - schema
    assert schema - spec == {"calibration", "calibration_threshold"}  # resolved into ks / a threshold


def test_the_default_config_and_the_jobs_validate():
    assert validate(compose([], CONF)).spec is not None
    assert validate(compose(["job=calibrate", "calibration=arith"], CONF)).spec is None


@pytest.mark.parametrize(
    "override, words",
    [
        ("model.trust_remote_code=no", ["model.trust_remote_code = 'no'", "true or false"]),
        ("force=1", ["force = 1", "true or false"]),
        ("task.chat_template=yes", ["task.chat_template = 'yes'", "true or false"]),
        ("logging.tokens=on", ["logging.tokens = 'on'", "true or false"]),
        ("calibration.chat_template=off", ["calibration.chat_template = 'off'", "true or false"]),
        ("sampler.greedy=maybe", ["sampler.greedy = 'maybe'", "true or false"]),
        ("task.limit=abc", ["task.limit = 'abc'", "an integer or null"]),
        ("task.repeats=2.5", ["task.repeats = 2.5", "an integer"]),
        ("sampler.min_p=high", ["sampler.min_p = 'high'", "a number or null"]),
        ("task.repeats=null", ["task.repeats = null", "an integer"]),
        ("model.path=null", ["model.path = null", "a string"]),
        ("task.stop=abc", ["task.stop = 'abc'", "a list of strings"]),
        ("model.dtype=float8", ["model.dtype = 'float8'", "one of [float32, bfloat16, float16]"]),
        ("engine.loop=fast", ["engine.loop = 'fast'", "one of [sss, generate]"]),
        ("model.foo=1", ["model.foo = 1", "model has no key 'foo'", "trust_remote_code"]),
        ("+model.foo=1", ["model.foo = 1", "model has no key 'foo'"]),
        ("+foo=1", ["foo = 1", "the top level has no key 'foo'"]),
        ("engine.vocab_seed=1", ["engine.vocab_seed = 1", "engine has no key 'vocab_seed'"]),
        ("sampler.edt.n=0.5", ["sampler.edt.n = 0.5", "sampler.edt is null here", "add sampler=edt"]),
        ("analyze.input=runs", ["analyze.input = 'runs'", "analyze is null here", "add job=analyze"]),
        ("sampler=nucleus9", ["sampler = 'nucleus9'", "Available options in 'sampler'", "min_p"]),
        ("sampler=[min_p,nucleus]", ["sampler = 'nucleus'", "Available options in 'sampler'", "top_p"]),
        ("sampler.calibrated_topk=[1,a]", ["sampler.calibrated_topk[1] = 'a'", "expected an integer"]),
        ("calibration.thresholds=[0.1,x]", ["calibration.thresholds[1] = 'x'", "expected a number"]),
        ("~task.limit", ["~task.limit is not allowed", "task.limit=null"]),
        ("task.limit=[1", ["'task.limit=[1' is not an override Hydra can read"]),
    ],
)
def test_compose_refuses_wrong_types_in_one_line(override, words):
    with pytest.raises(ConfigError) as info:
        compose([override], CONF)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    "override, value",
    [
        ("force=true", True),
        ("force=False", False),
        ("force=TRUE", True),
        ("engine=vllm engine.enforce_eager=null", None),
    ],
)
def test_booleans_are_true_or_false_in_any_case_and_optional_ones_null(override, value):
    cfg = compose(override.split(), CONF)
    key = override.split()[-1].partition("=")[0]
    assert OmegaConf.select(cfg, key) is value


def test_numbers_are_converted_to_the_field_type():
    cfg = compose(["sampler.temperature=1", "engine.kv_cache_gib=2"], CONF)
    assert isinstance(cfg.sampler.temperature, float) and isinstance(cfg.engine.kv_cache_gib, float)


def test_validated_config_holds_plain_strings_not_enums():
    config = validate(compose(["model.dtype=bfloat16"], CONF)).config
    assert type(config["model"]["dtype"]) is str and type(config["job"]["name"]) is str
    assert "analyze" not in config  # job=analyze's section: null, left out of a run's record


def test_registering_twice_is_harmless_and_the_store_holds_the_schemas():
    register()
    store = ConfigStore.instance()
    assert "root.yaml" in store.list("schema")
    assert sorted(store.list("schema/engine")) == ["dummy.yaml", "hf.yaml", "vllm.yaml"]


def test_omegaconf_does_not_run_post_init_at_compose_time():
    """Why the ranges are `check()` methods, called by sss.config.validate, and not
    __post_init__: OmegaConf builds a structured config from the class without instantiating it,
    so a __post_init__ would run only in OmegaConf.to_object, not when Hydra composes."""
    calls = []

    @dataclasses.dataclass
    class Probe:
        x: int = 0

        def __post_init__(self):
            calls.append(self.x)

    cfg = OmegaConf.structured(Probe)
    cfg.x = 5
    assert calls == []
    OmegaConf.to_object(cfg)
    assert calls == [5]


def test_the_schema_and_the_error_type_import_no_torch():
    code = (
        "import sys, sss.schema, sss.config; from sss.schema import compose; "
        f"compose([], {str(CONF)!r}); print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


def test_the_sss_launchers_refuse_each_bad_job_of_a_sweep_in_one_line(tmp_path):
    """A sweep's jobs are composed by the launcher (sss.runs.sweep.plan), from values launch.py
    never saw (a sweep file's params): each bad one is listed, nothing is submitted."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.types import RunMode

    from sss.runs import sweep

    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF)))
    base = loader.load_configuration(
        "config", overrides=["engine=dummy", f"output_root={tmp_path}"], run_mode=RunMode.MULTIRUN
    )
    jobs = [["sampler.min_p=0.1"], ["sampler.min_p=high"], ["force=no"], ["model.foo=1"]]
    with pytest.raises(sweep.SweepConfigError) as info:
        sweep.plan(loader, base, jobs, 0)
    assert str(info.value).splitlines() == [
        "job #1 (sampler.min_p=high): sampler.min_p = 'high' is not allowed: expected a number or null",
        (
            "job #2 (force=no): force = 'no' is not allowed: expected true or false "
            "(yes, no, 1 and 0 are not booleans here)"
        ),
        (
            "job #3 (model.foo=1): model.foo = 1 is not allowed: model has no key 'foo' "
            "(its keys: name, path, dtype, trust_remote_code)"
        ),
    ]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("overrides", [["force=no"], ["task.limit=abc"], ["+model.foo=1"], ["-m", "seed=0,x"]])
def test_launch_refuses_before_hydra_writes_anything(tmp_path, overrides):
    """launch.py composes against the schema before Hydra starts: a wrong type leaves no trace,
    not even Hydra's log folder under output_root."""
    out = tmp_path / "out"
    result = launch(*overrides, f"output_root={out}", cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert not out.exists() and list(tmp_path.iterdir()) == []
