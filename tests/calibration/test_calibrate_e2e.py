"""`python launch.py job=calibrate` end to end on the embedded model and local GSM8K train data,
then an evaluation whose Calibrated-TopK reads the artifact it wrote."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import launch, shared_data

pytestmark = pytest.mark.slow
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    data = shared_data("gsm8k", "train.jsonl")
    args = (
        "job=calibrate",
        "calibration.limit=3",
        f"calibration.data_files={data}",
        "calibration.batch_size=2",
        f"output_root={out}",
    )
    result = launch(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    folders = list((out / "calibration" / "smollm2-135m-instruct").iterdir())
    assert len(folders) == 1
    return folders[0], args, result, data


def test_directory_holds_every_file(calibrated):
    folder, _, result, _ = calibrated
    assert f"calibration directory: {folder}" in result.stdout
    for name in ("config.yaml", "manifest.json", "traces.parquet", "grid.parquet", "calibration.json", "DONE"):
        assert (folder / name).is_file(), name
    for name in ("grid_heatmap.png", "power_law.png"):
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["run"]["job"] == "calibrate"
    assert {"trace", "grid_fit", "load_model"} <= set(manifest["timings_s"])
    artifact = json.loads((folder / "calibration.json").read_text())
    assert artifact["bins"] == 10 and artifact["top_k"] == 20 and artifact["engine"] == "hf"
    assert artifact["data"]["documents"] == 3 and artifact["chat_template"] is True
    assert artifact["fit"]["log_base"] == 10 and artifact["fit"]["n_cells"] >= 2
    assert set(artifact["k_lists"]) == {"0.01", "0.03", "0.05", "0.07", "0.09", "0.1"}
    assert all(len(ks) == 10 for ks in artifact["k_lists"].values())
    assert yaml.safe_load((folder / "config.yaml").read_text())["calibration"]["limit"] == 3
    for threshold, ks in artifact["k_lists"].items():
        assert f"k list for c = {threshold}" in result.stdout and str(ks) in result.stdout


def test_traces_match_an_unbatched_forward_pass(calibrated, smollm2_path):
    """One document recomputed directly with transformers (no padding, full logits)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, _, _, data = calibrated
    traces = pd.read_parquet(folder / "traces.parquet")
    assert sorted(traces["doc_id"].unique()) == [0, 1, 2]
    record = json.loads(data.read_text().splitlines()[1])
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": record["question"]}], tokenize=False, add_generation_prompt=True
    )
    head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    tail = tokenizer(record["answer"], add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(smollm2_path, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(torch.tensor([head + tail])).logits[0, len(head) - 1 : -1]
    probs = torch.softmax(logits.double(), -1)
    gold = torch.tensor(tail)
    gold_p = probs[torch.arange(len(tail)), gold]
    ranks = (probs >= gold_p[:, None]).sum(-1).numpy()
    doc = traces[traces["doc_id"] == 1].sort_values("position")
    assert list(doc["token_id"]) == tail and list(doc["position"]) == list(range(len(tail)))
    assert (doc["rank"].to_numpy() == ranks).mean() >= 0.99
    np.testing.assert_allclose(doc["prob"], gold_p.numpy(), atol=1e-4)
    np.testing.assert_allclose(doc["p_max"], probs.max(-1).values.numpy(), atol=1e-4)


def test_grid_is_built_from_the_traces(calibrated):
    folder = calibrated[0]
    grid = pd.read_parquet(folder / "grid.parquet")
    traces = pd.read_parquet(folder / "traces.parquet")
    assert len(grid) == 10 * 20
    assert grid.groupby("bin")["steps"].first().sum() == len(traces)
    top1 = grid[grid["rank"] == 1].set_index("bin")
    share_rank1 = (traces["rank"] == 1).sum() / len(traces)
    assert (top1["c_hat"] * top1["steps"]).sum() / len(traces) == pytest.approx(share_rank1)


def test_relaunch_skips_a_done_calibration(calibrated):
    folder, args, _, _ = calibrated
    before = (folder / "traces.parquet").stat().st_mtime_ns
    result = launch(*args)
    assert result.returncode == 0 and f"skipped: {folder} is DONE" in result.stdout
    assert (folder / "traces.parquet").stat().st_mtime_ns == before


def test_calibrated_topk_runs_with_the_artifact(calibrated, tmp_path):
    folder = calibrated[0]
    artifact = json.loads((folder / "calibration.json").read_text())
    result = launch(
        "sampler=calibrated_topk",
        f"sampler.calibration={folder}",
        "sampler.calibration_threshold=0.03",
        "task.limit=1",
        "task.max_gen_toks=8",
        f"output_root={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest_path = next(tmp_path.rglob("manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    import hashlib

    assert manifest["status"] == "done"
    assert manifest["calibration"] == {
        "path": str(folder.resolve()),
        "threshold": 0.03,
        "sha256": hashlib.sha256((folder / "calibration.json").read_bytes()).hexdigest(),
    }
    assert manifest["run"]["sampler_params"]["calibrated_topk"] == artifact["k_lists"]["0.03"]
    config = yaml.safe_load((manifest_path.parent / "config.yaml").read_text())
    assert config["sampler"]["calibrated_topk"] == artifact["k_lists"]["0.03"]


def test_one_multirun_calibrates_then_evaluates_with_the_result(tmp_path):
    data = shared_data("gsm8k", "train.jsonl")
    result = launch(
        "-m",
        "job=calibrate,evaluate",
        "sampler=calibrated_topk",
        "sampler.calibration=auto",
        "calibration.limit=2",
        f"calibration.data_files={data}",
        "task.limit=1",
        "task.max_gen_toks=8",
        f"output_root={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = (tmp_path / "calibration" / "smollm2-135m-instruct").iterdir()
    ks = json.loads((folder / "calibration.json").read_text())["k_lists"]["0.05"]
    (manifest,) = [p for p in tmp_path.glob("arith/**/manifest.json")]
    data = json.loads(manifest.read_text())
    assert data["status"] == "done" and data["calibration"]["path"] == str(folder.resolve())
    assert data["run"]["sampler_params"]["calibrated_topk"] == ks
