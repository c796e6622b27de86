"""calibration.json into the calibrated samplers: the round trip, and every bad artifact and bad
data refused before any model loads (no model here except where launch.py is run)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import ROOT, assert_refused, launch
from sss.calibration.artifact import FILE, read_artifact, summarize, write_artifact
from sss.calibration.grid import build_grid
from sss.calibration.traces import to_table
from sss.config import ConfigError, validate
from sss.runs.layout import run_dir_for
from sss.schema import compose as compose_config

from synthetic import random_steps

THRESHOLDS = [0.01, 0.03, 0.05, 0.07, 0.09, 0.10]


def compose_cfg(*overrides: str):
    """The config as launch.py composes it: a value of the wrong type is a ConfigError."""
    return compose_config(overrides, ROOT / "conf")


def make_artifact(folder: Path, seed: int = 0, bins: int = 10, done: bool = True) -> dict:
    grid = build_grid(to_table(random_steps(20000, k=8, seed=seed)), bins)
    data = {"model": {"name": "synthetic"}, "engine": "none", **summarize(grid, THRESHOLDS, 10)}
    folder.mkdir(parents=True, exist_ok=True)
    write_artifact(folder, data)
    if done:
        (folder / "DONE").write_text("")
    return json.loads((folder / FILE).read_text())


def test_topk_takes_the_k_list_of_the_threshold(tmp_path):
    data = make_artifact(tmp_path / "cal")
    assert len(set(map(tuple, data["k_lists"].values()))) > 1  # the thresholds give different lists
    for threshold in ("0.03", "0.1"):
        settings = validate(
            compose_cfg(
                "sampler=calibrated_topk",
                f"sampler.calibration={tmp_path / 'cal'}",
                f"sampler.calibration_threshold={threshold}",
            )
        )
        assert list(settings.spec.calibrated_topk) == data["k_lists"][threshold]
    # the default threshold of calibrated_topk.yaml is the paper's 0.05
    settings = validate(compose_cfg("sampler=calibrated_topk", f"sampler.calibration={tmp_path / 'cal'}"))
    assert list(settings.spec.calibrated_topk) == data["k_lists"]["0.05"]
    sha = hashlib.sha256((tmp_path / "cal" / FILE).read_bytes()).hexdigest()
    assert settings.config["sampler"]["calibration_sha256"] == sha
    assert settings.config["sampler"]["calibration"] == str((tmp_path / "cal").resolve())


def test_epsilon_takes_a_and_b_and_keeps_c(tmp_path):
    data = make_artifact(tmp_path / "cal")
    spec = validate(
        compose_cfg(
            "sampler=calibrated_epsilon", f"sampler.calibration={tmp_path / 'cal'}", "sampler.calibrated_epsilon.c=0.07"
        )
    ).spec
    assert spec.calibrated_epsilon.a == data["fit"]["a"] != -0.506
    assert spec.calibrated_epsilon.b == data["fit"]["b"] != 0.795
    assert spec.calibrated_epsilon.c == 0.07
    assert spec.calibrated_epsilon.epsilon == pytest.approx(
        10 ** ((__import__("math").log10(0.07) - data["fit"]["a"]) / data["fit"]["b"])
    )


def test_run_dir_follows_the_artifact_content(tmp_path):
    make_artifact(tmp_path / "cal", seed=0)
    overrides = ("sampler=calibrated_topk", f"sampler.calibration={tmp_path / 'cal'}")
    first = validate(compose_cfg(*overrides))
    again = validate(compose_cfg(*overrides))
    assert run_dir_for(first.config, first.spec) == run_dir_for(again.config, again.spec)
    make_artifact(tmp_path / "cal", seed=1)  # recalibrated in place: other content, same path
    changed = validate(compose_cfg(*overrides))
    assert run_dir_for(changed.config, changed.spec) != run_dir_for(first.config, first.spec)


def test_manifest_record(tmp_path):
    from sss.calibration.for_samplers import manifest_record

    make_artifact(tmp_path / "cal")
    config = validate(compose_cfg("sampler=calibrated_topk", f"sampler.calibration={tmp_path / 'cal'}")).config
    record = manifest_record(config["sampler"])
    assert record == {
        "path": str((tmp_path / "cal").resolve()),
        "threshold": 0.05,
        "sha256": hashlib.sha256((tmp_path / "cal" / FILE).read_bytes()).hexdigest(),
    }
    assert manifest_record(validate(compose_cfg("sampler=min_p")).config["sampler"]) is None


def corrupt(folder: Path, how: str) -> None:
    file = folder / FILE
    data = json.loads(file.read_text())
    if how == "not_json":
        file.write_text("{ not json")
    elif how == "other_format":
        data["format"] = "something-else"
        file.write_text(json.dumps(data))
    elif how == "short_list":
        data["k_lists"]["0.05"] = data["k_lists"]["0.05"][:-1]
        file.write_text(json.dumps(data))
    elif how == "zero_k":
        data["k_lists"]["0.05"][0] = 0
        file.write_text(json.dumps(data))
    elif how == "no_file":
        file.unlink()
    elif how == "no_done":
        (folder / "DONE").unlink()
    elif how == "bad_fit":
        data["fit"]["a"] = "x"
        file.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "how, words",
    [
        ("not_json", ["valid JSON"]),
        ("other_format", ["format"]),
        ("short_list", ["10 integers"]),
        ("zero_k", ["integers >= 1"]),
        ("no_file", [FILE]),
        ("no_done", ["DONE"]),
        ("bad_fit", ["fit"]),
    ],
)
def test_bad_artifacts_are_config_errors(tmp_path, how, words):
    make_artifact(tmp_path / "cal")
    corrupt(tmp_path / "cal", how)
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg("sampler=calibrated_topk", f"sampler.calibration={tmp_path / 'cal'}"))
    message = str(err.value)
    assert "sampler.calibration" in message and str(tmp_path / "cal") in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["sampler=calibrated_topk", "sampler.calibration_threshold=0.04"], ["calibration_threshold", "0.04", "0.05"]),
        (["sampler=calibrated_topk", "sampler.bins=5", "sampler.calibrated_topk=[1,1,1,1,1]"], ["bins", "5", "10"]),
        (["sampler=min_p"], ["calibrated sampler"]),
    ],
)
def test_artifact_that_does_not_fit_the_request(tmp_path, overrides, words):
    make_artifact(tmp_path / "cal")
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg(*overrides, f"sampler.calibration={tmp_path / 'cal'}"))
    for word in words:
        assert word in str(err.value)


def test_epsilon_without_a_fit_is_refused(tmp_path):
    make_artifact(tmp_path / "cal")
    data = json.loads((tmp_path / "cal" / FILE).read_text())
    data["fit"] = None
    (tmp_path / "cal" / FILE).write_text(json.dumps(data))
    assert read_artifact(tmp_path / "cal").fit is None
    with pytest.raises(ConfigError, match="power-law fit"):
        validate(compose_cfg("sampler=calibrated_epsilon", f"sampler.calibration={tmp_path / 'cal'}"))


def test_launch_refuses_a_missing_artifact(tmp_path):
    result = launch(
        "sampler=calibrated_topk", f"sampler.calibration={tmp_path / 'nothing'}", f"output_root={tmp_path / 'out'}"
    )
    assert_refused(result, "sampler.calibration", "does not exist")


# ---------------------------------------------------------------- job=calibrate's settings


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["calibration.engine=onnx"], ["calibration.engine", "onnx", "torchtune"]),
        (["calibration.top_k=0"], ["calibration.top_k", "0"]),
        (["calibration.bins=0"], ["calibration.bins"]),
        (["calibration.limit=0"], ["calibration.limit"]),
        (["calibration.thresholds=[0.05,1.5]"], ["calibration.thresholds"]),
        (["calibration.thresholds=[]"], ["calibration.thresholds"]),
        (["calibration.chat_template=maybe"], ["calibration.chat_template"]),
        (["calibration.data=alpaca"], ["calibration.data", "alpaca", "gsm8k", "jsonl"]),
        (["calibration=jsonl"], ["calibration.data_files", "null"]),
        (["calibration.data_files=/no/such/file.jsonl"], ["calibration.data_files", "existing"]),
        (["model.dtype=int8"], ["model.dtype"]),
    ],
)
def test_bad_calibration_settings(overrides, words):
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg("job=calibrate", *overrides))
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    "lines, words",
    [
        (['{"prompt": "2+2?", "answer": "4"}', '{"prompt": "3+3?"}'], ["line 2", "'answer'"]),
        (['{"prompt": "2+2?", "answer": ""}'], ["line 1", "'answer'"]),
        (['{"question": "2+2?", "answer": "4"}'], ["line 1", "'prompt'"]),
        (["not json at all"], ["not readable as JSONL"]),
    ],
)
def test_bad_jsonl_data(tmp_path, lines, words):
    path = write_lines(tmp_path / "data.jsonl", lines)
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg("job=calibrate", "calibration=jsonl", f"calibration.data_files={path}"))
    for word in words:
        assert word in str(err.value)


def test_empty_data_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(ConfigError, match="calibration.data_files"):
        validate(compose_cfg("job=calibrate", "calibration=jsonl", f"calibration.data_files={path}"))


def test_good_jsonl_and_gsm8k_files_pass(tmp_path):
    from conftest import shared_data

    path = write_lines(tmp_path / "data.jsonl", ['{"prompt": "2+2?", "answer": "4", "extra": 1}'])
    settings = validate(compose_cfg("job=calibrate", "calibration=jsonl", f"calibration.data_files={path}"))
    assert settings.config["calibration"]["data"] == "jsonl" and settings.spec is None
    gsm8k = shared_data("gsm8k", "train.jsonl")
    validate(compose_cfg("job=calibrate", f"calibration.data_files={gsm8k}", "calibration.limit=5"))


def test_arith_needs_no_file():
    from sss.calibration.data import load_examples
    from sss.calibration.options import calibration_dir

    settings = validate(compose_cfg("job=calibrate", "calibration=arith", "calibration.limit=40"))
    examples = load_examples(settings.config["calibration"])
    assert len(examples) == 40 and [e.doc_id for e in examples] == list(range(40))
    assert all(e.answer.rstrip(".").split()[-1].isdigit() and "The answer is" in e.answer for e in examples)
    assert all(e.prompt.endswith("now?") for e in examples)
    assert calibration_dir(settings.config).name.startswith("arith-v1__hf__n40__")
    with pytest.raises(ConfigError, match="calibration.data_files"):
        validate(compose_cfg("job=calibrate", "calibration=arith", "calibration.data_files=x.jsonl"))


def test_calibration_dir_is_deterministic_and_names_what_changes_numbers(tmp_path):
    from sss.calibration.options import calibration_dir

    path = write_lines(tmp_path / "data.jsonl", ['{"prompt": "2+2?", "answer": "4"}'])
    base = ("job=calibrate", "calibration=jsonl", f"calibration.data_files={path}", f"output_root={tmp_path}")
    first = calibration_dir(validate(compose_cfg(*base)).config)
    assert first == calibration_dir(validate(compose_cfg(*base)).config)
    assert first.parent == tmp_path / "calibration" / "smollm2-135m-instruct"
    assert first.name.startswith("jsonl-data__hf__n1000__")
    # batch size does not change the numbers; the engine, K, and the data's content do
    assert calibration_dir(validate(compose_cfg(*base, "calibration.batch_size=2")).config) == first
    assert calibration_dir(validate(compose_cfg(*base, "calibration.top_k=10")).config) != first
    assert calibration_dir(validate(compose_cfg(*base, "calibration.engine=torchtune")).config) != first
    write_lines(path, ['{"prompt": "2+2?", "answer": "four"}'])
    assert calibration_dir(validate(compose_cfg(*base)).config) != first


def test_auto_names_the_calibration_of_this_model_and_settings(tmp_path):
    from sss.calibration.options import calibration_dir

    data = write_lines(tmp_path / "data.jsonl", ['{"prompt": "2+2?", "answer": "4"}'])
    common = (f"output_root={tmp_path / 'out'}", "calibration=jsonl", f"calibration.data_files={data}")
    folder = calibration_dir(validate(compose_cfg("job=calibrate", *common)).config)
    with pytest.raises(ConfigError, match="job=calibrate"):
        validate(compose_cfg("sampler=calibrated_topk", "sampler.calibration=auto", *common))
    artifact = make_artifact(folder)
    settings = validate(compose_cfg("sampler=calibrated_topk", "sampler.calibration=auto", *common))
    assert list(settings.spec.calibrated_topk) == artifact["k_lists"]["0.05"]
    assert settings.config["sampler"]["calibration"] == str(folder.resolve())
    # other calibration settings name another directory, which does not exist
    with pytest.raises(ConfigError, match="auto"):
        validate(compose_cfg("sampler=calibrated_topk", "sampler.calibration=auto", *common, "calibration.top_k=10"))
    # a sampler without a calibrated rule ignores auto (one sweep sets it for every sampler)
    assert (
        validate(compose_cfg("sampler=min_p", "sampler.calibration=auto", *common)).config["sampler"]["calibration"]
        is None
    )
