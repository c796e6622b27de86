"""Bad inputs through the real entrypoint, as a hostile new user types them (issue 14).

Every row of the table runs `python launch.py <overrides>` in a fresh folder and must end with
exit status 2, one `error:` line naming the key, within 10 s, before any model loads, with
nothing written: no run directory, nothing in the working folder, and under `output_root` at
most Hydra's own log folder `.hydra/`. Then the fault cases: kill -9 in the middle of a run and
a re-launch, two concurrent launches of one config, and a crash during `force=true`.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

DUMMY = "engine=dummy"
LIMIT_S = 10


def bad_data(folder: Path) -> dict[str, Path]:
    """Data files each wrong in one way ({name: path})."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "empty.jsonl": b"",
        "blank.jsonl": b"\n  \n\n",
        "truncated.jsonl": b'{"question": "1 + 1?", "target": "2"}\n{"question": "2 + 2?", "tar',
        "latin1.jsonl": '{"question": "caf\u00e9 costs 3", "target": "3"}\n'.encode("latin-1"),
        "no_target.jsonl": b'{"question": "1 + 1?", "rationale": "1 + 1 = 2."}\n',
        "no_answer.jsonl": b'{"question": "1 + 1?", "target": "2"}\n',
        "array_line.jsonl": b"[1, 2, 3]\n",
        "null_field.jsonl": b'{"question": null, "target": "2"}\n',
        "problems.txt": b'{"question": "1 + 1?", "target": "2"}\n',
        "broken.parquet": b"PAR1 not really",
        "second_bad.jsonl": b'{"question": "1 + 1?", "target": "2"}\n{"question": "x"}\n',
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "empty_dir").mkdir(exist_ok=True)
    only_config = folder / "only_config"
    only_config.mkdir(exist_ok=True)
    (only_config / "config.json").write_text("{}")
    no_tokenizer = folder / "no_tokenizer"
    no_tokenizer.mkdir(exist_ok=True)
    (no_tokenizer / "config.json").write_text("{}")
    (no_tokenizer / "model.safetensors").write_bytes(b"\0" * 8)
    (folder / "a_file").write_text("not a folder")
    gsm_dir = folder / "gsm_dir"
    gsm_dir.mkdir(exist_ok=True)
    (gsm_dir / "test.jsonl").write_bytes(b'{"question": "1 + 1?"}\n')
    # keys usable in str.format: "empty.jsonl" -> "empty_jsonl"
    return {
        name.replace(".", "_"): folder / name
        for name in [*files, "empty_dir", "only_config", "no_tokenizer", "a_file", "gsm_dir"]
    }


# (overrides, the key the message must name); {name} is a file from `bad_data`
CASES: list[tuple[tuple[str, ...], str]] = [
    # booleans: true/false only (Hydra's spellings of them are booleans already)
    (("force=no",), "force"),
    (("force=maybe",), "force"),
    (("force=1",), "force"),
    (("force=yes",), "force"),
    (("model.trust_remote_code=no",), "model.trust_remote_code"),
    (("model.trust_remote_code=yes",), "model.trust_remote_code"),
    (("model.trust_remote_code=1",), "model.trust_remote_code"),
    (("task.chat_template=no",), "task.chat_template"),
    (("sampler.greedy=yes",), "sampler.greedy"),
    (("sampler.greedy=1",), "sampler.greedy"),
    # output_root: a writable folder path
    (("output_root=",), "output_root"),
    (("output_root=  ",), "output_root"),
    (("output_root={a_file}",), "output_root"),
    (("output_root={a_file}/runs",), "output_root"),
    # sweeps by name
    (("-m", "sweep=nope"), "sweep"),
    (("sweep=min_p_gird",), "sweep"),
    (("-m", "sweep=paper_table"), "sweep"),
    # engine settings
    (("engine.device=cuda",), "engine.device"),
    (("engine.device=cuda:0",), "engine.device"),
    (("engine.device=tpu9",), "engine.device"),
    (("engine.device=cuda:x",), "engine.device"),
    (("engine.max_rows=0",), "engine.max_rows"),
    (("engine.kv_cache_gib=-1",), "engine.kv_cache_gib"),
    (("engine.loop=fast",), "engine.loop"),
    (("engine.batch_size=0",), "engine.batch_size"),
    ((DUMMY, "engine.vocab_seed=-1"), "engine.vocab_seed"),
    (("model.device=cuda",), "model.device"),
    (("model.engine=vllm",), "model.engine"),
    # model paths
    (("model.path=./nothere",), "model.path"),
    (("model.path=nothere",), "model.path"),
    (("model.path='~/nothere/either'",), "model.path"),
    (("model.path={empty_dir}",), "model.path"),
    (("model.path={only_config}",), "model.path"),
    (("model.path={no_tokenizer}",), "model.path"),
    (("model.path={a_file}",), "model.path"),
    (("model=qwen1.5b",), "model.path"),
    (("model=llama3.2-1b",), "model.path"),
    (("model.path=embedded:nope",), "model.path"),
    (("model.path=''",), "model.path"),
    (("model.dtype=float8",), "model.dtype"),
    # data files of arith and gsm8k_cot
    ((DUMMY, "task.data_files={empty_dir}/missing.jsonl"), "task.data_files"),
    ((DUMMY, "task.data_files={empty_jsonl}"), "task.data_files"),
    ((DUMMY, "task.data_files={blank_jsonl}"), "task.data_files"),
    ((DUMMY, "task.data_files={truncated_jsonl}"), "task.data_files"),
    ((DUMMY, "task.data_files={latin1_jsonl}"), "task.data_files"),
    ((DUMMY, "task.data_files={no_target_jsonl}"), "task.data_files"),
    ((DUMMY, "task.data_files={array_line_jsonl}"), "task.data_files"),
    ((DUMMY, "task.data_files={null_field_jsonl}"), "task.data_files"),
    ((DUMMY, "task.data_files={problems_txt}"), "task.data_files"),
    ((DUMMY, "task.data_files={broken_parquet}"), "task.data_files"),
    ((DUMMY, "task.data_files={second_bad_jsonl}"), "task.data_files"),
    ((DUMMY, "task.data_dir={empty_dir}"), "task.data_dir"),
    ((DUMMY, "task=gsm8k_cot", "task.data_files={no_answer_jsonl}"), "task.data_files"),
    ((DUMMY, "task=gsm8k_cot", "task.data_files={empty_jsonl}"), "task.data_files"),
    ((DUMMY, "task=gsm8k_cot", "task.data_files={latin1_jsonl}"), "task.data_files"),
    ((DUMMY, "task=gsm8k_cot", "task.data_files={truncated_jsonl}"), "task.data_files"),
    ((DUMMY, "task=gsm8k_cot", "task.data_dir={empty_dir}"), "task.data_dir"),
    ((DUMMY, "task=gsm8k_cot", "task.data_dir={gsm_dir}"), "task.data_dir"),
    # task sizes and the seed
    ((DUMMY, "task.limit=0"), "task.limit"),
    ((DUMMY, "task.limit=abc"), "task.limit"),
    ((DUMMY, "task.repeats=0"), "task.repeats"),
    ((DUMMY, "task.num_fewshot=-1"), "task.num_fewshot"),
    ((DUMMY, "task.num_fewshot=99"), "task.num_fewshot"),
    ((DUMMY, "task.max_gen_toks=0"), "task.max_gen_toks"),
    ((DUMMY, "seed=-1"), "seed"),
    ((DUMMY, "seed=abc"), "seed"),
    # rules that cannot act beside greedy decoding, and nulls that are not defaults
    ((DUMMY, "sampler=greedy", "sampler.temperature=0.7"), "sampler.temperature"),
    ((DUMMY, "sampler=[edt,greedy]"), "sampler.edt"),
    ((DUMMY, "sampler=[greedy,calibrated_topk]"), "sampler.calibrated_topk"),
    ((DUMMY, "sampler=[greedy,min_p]"), "sampler.min_p"),
    ((DUMMY, "sampler.temperature=0", "sampler.top_p=0.9"), "sampler.top_p"),
    ((DUMMY, "sampler=edt", "sampler.edt.n=null"), "sampler.edt.n"),
    ((DUMMY, "sampler=calibrated_epsilon", "sampler.calibrated_epsilon.a=null"), "sampler.calibrated_epsilon.a"),
    # sampler ranges and kinds
    ((DUMMY, "sampler=min_p", "sampler.min_p=1.5"), "sampler.min_p"),
    ((DUMMY, "sampler=min_p", "sampler.min_p=abc"), "sampler.min_p"),
    ((DUMMY, "sampler.top_p=0"), "sampler.top_p"),
    ((DUMMY, "sampler.top_k=-1"), "sampler.top_k"),
    ((DUMMY, "sampler.temperature=-1"), "sampler.temperature"),
    ((DUMMY, "sampler=edt", "sampler.temperature=0.5"), "sampler.temperature"),
    ((DUMMY, "sampler.bins=0"), "sampler.bins"),
    ((DUMMY, "sampler=confidence_bin", "sampler.confidence_bin=11"), "sampler.confidence_bin"),
    ((DUMMY, "sampler.calibrated_topk=[1,2]"), "sampler.calibrated_topk"),
    ((DUMMY, "sampler.eta=1"), "sampler.eta"),
    ((DUMMY, "sampler.epsilon=1"), "sampler.epsilon"),
    # types, from the schema (sss/schema), refused when launch.py composes the config
    (("logging.tokens=on",), "logging.tokens"),
    (("engine=vllm", "engine.enforce_eager=no"), "engine.enforce_eager"),
    (("job=analyze", "analyze.rescore=no"), "analyze.rescore"),
    (("job=calibrate", "calibration.chat_template=off"), "calibration.chat_template"),
    ((DUMMY, "task.repeats=2.5"), "task.repeats"),
    ((DUMMY, "sampler.min_p=high"), "sampler.min_p"),
    ((DUMMY, "engine.max_rows=many"), "engine.max_rows"),
    ((DUMMY, "task.repeats=null"), "task.repeats"),
    (("model.path=null",), "model.path"),
    (("job=analyze", "analyze.vote_rank_stat=median"), "analyze.vote_rank_stat"),
    (("model.foo=1",), "model.foo"),
    (("+model.foo=1",), "model.foo"),
    (("+foo=1",), "foo"),
    ((DUMMY, "engine.device=cpu"), "engine.device"),
    ((DUMMY, "sampler.edt.n=0.5"), "sampler.edt.n"),
    (("sampler=nucleus9",), "sampler"),
    (("-m", "force=true,no"), "force"),
    (("-m", DUMMY, "sampler.min_p=0.1,high"), "sampler.min_p"),
    # job=analyze
    (("job=analyze",), "analyze.input"),
    (("job=analyze", "analyze.input={empty_dir}/none"), "analyze.input"),
    (("job=analyze", "analyze.input={empty_dir}"), "analyze.input"),
]


def test_the_table_is_large_enough():
    assert len(CASES) >= 60


def run_launch(args: list[str], cwd: Path, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result, time.monotonic() - start


def written(folder: Path) -> list[str]:
    """Every file under `folder` except Hydra's own logs in `.hydra/`."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and ".hydra" not in p.relative_to(folder).parts
    )


@pytest.mark.parametrize("overrides, key", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_refused_before_anything_is_written(overrides, key, tmp_path):
    files = bad_data(tmp_path / "inputs")
    out, cwd = tmp_path / "out", tmp_path / "cwd"
    cwd.mkdir()
    args = [a.format(**files) for a in overrides]
    if not any(a.startswith("output_root=") for a in args):
        args.append(f"output_root={out}")
    result, seconds = run_launch(args, cwd)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and key in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert seconds < LIMIT_S, seconds
    assert written(cwd) == [] and not (cwd / "outputs").exists()
    assert not out.exists() or written(out) == []


# ---------------------------------------------------------------- fault cases (engine=dummy)

RUN = [DUMMY, "task.limit=null", "task.repeats=4", "task.max_gen_toks=48"]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "launch.py"), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path_glob: tuple[Path, str], proc: subprocess.Popen, timeout: float = 120) -> Path:
    """The first path matching the glob, polled while `proc` runs; then `proc` is frozen
    (SIGSTOP), so the test acts on a process that is surely in the middle of its run."""
    root, pattern = path_glob
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(root.glob(pattern)) if root.exists() else []
        if found:
            proc.send_signal(signal.SIGSTOP)
            return found[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"no {pattern} under {root}")


def kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def analyze_status(out: Path) -> dict[str, str]:
    result, _ = run_launch(["job=analyze", f"analyze.input={out}", f"output_root={out}"], out)
    assert result.returncode == 0, result.stderr[-2000:]
    import pandas as pd

    table = pd.read_parquet(out / "analysis" / "runs.parquet")
    return dict(zip(table["run_dir"], table["status"]))


def test_kill9_mid_run_reads_stale_and_a_relaunch_takes_over(tmp_path):
    out = tmp_path / "out"
    args = [*RUN, f"output_root={out}"]
    proc = start(args, tmp_path)
    manifest = wait_for((out, "arith/*/*/*/manifest.json"), proc)
    run = manifest.parent
    kill9(proc)
    assert json.loads(manifest.read_text())["status"] == "running" and not (run / "DONE").exists()
    lock = run.parent / f".{run.name}.lock"
    assert json.loads(lock.read_text())["pid"] == proc.pid  # the dead process's lock stays

    assert analyze_status(out) == {str(run.resolve()): "stale"}
    result, _ = run_launch(args, tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"taking over the stale lock of {run}: pid {proc.pid}" in result.stderr
    assert (run / "DONE").is_file() and json.loads(manifest.read_text())["status"] == "done"
    assert not lock.exists()
    assert analyze_status(out) == {str(run.resolve()): "done"}


def test_two_concurrent_launches_one_computes_the_other_is_refused(tmp_path):
    out = tmp_path / "out"
    args = [*RUN, f"output_root={out}"]
    first = start(args, tmp_path)
    manifest = wait_for((out, "arith/*/*/*/manifest.json"), first)
    run = manifest.parent
    before = manifest.read_bytes()
    second, _ = run_launch(args, tmp_path, timeout=120)
    first.send_signal(signal.SIGCONT)
    assert second.returncode == 3, second.stderr[-2000:]
    assert f"error: {run} is being computed by pid {first.pid}" in second.stderr
    assert manifest.read_bytes() == before  # the refused launch touched nothing
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert (run / "DONE").is_file()
    again, _ = run_launch(args, tmp_path, timeout=120)
    assert again.returncode == 0 and "skipped" in again.stdout


def test_a_crash_during_force_keeps_the_finished_result(tmp_path):
    out = tmp_path / "out"
    args = [*RUN, f"output_root={out}"]
    done, _ = run_launch(args, tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (manifest,) = out.glob("arith/*/*/*/manifest.json")
    run = manifest.parent
    kept = {name: (run / name).read_bytes() for name in ("metrics.json", "samples.parquet", "manifest.json")}

    proc = start([*args, "force=true"], tmp_path)
    staging = wait_for((run.parent, f".{run.name}.new/manifest.json"), proc).parent
    kill9(proc)
    # the finished run is untouched, and job=analyze sees it alone (the redo is not a run)
    assert (run / "DONE").is_file()
    assert {name: (run / name).read_bytes() for name in kept} == kept
    assert analyze_status(out) == {str(run.resolve()): "done"}
    assert staging.exists()

    again, _ = run_launch([*args, "force=true"], tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "taking over the stale lock" in again.stderr
    assert (run / "DONE").is_file() and not staging.exists()
    redone = json.loads((run / "manifest.json").read_text())
    assert redone["status"] == "done" and redone["started"] >= json.loads(kept["manifest.json"])["started"]
    assert (run / "metrics.json").read_bytes() == kept["metrics.json"]  # same config, same seeds
    assert sorted(p.name for p in run.parent.iterdir()) == [run.name]


def test_a_crash_between_the_two_renames_of_a_swap_is_recovered(tmp_path):
    from sss.runs.layout import RunDir, write_atomic
    from sss.runs.redo import recover, retired, staging

    for new_is_complete in (True, False):
        run = RunDir(tmp_path / str(new_is_complete) / "run")
        old, new = retired(run), staging(run)
        write_atomic(old.metrics, "old")
        old.mark_done()
        write_atomic(new.metrics, "new")
        if new_is_complete:
            new.mark_done()
        recover(run)  # the run directory itself is gone: renamed away, the new one not yet in
        assert run.is_done() and not old.path.exists() and not new.path.exists()
        assert run.metrics.read_text() == ("new" if new_is_complete else "old")


def test_run_files_are_written_with_a_plain_files_mode(tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        result, _ = run_launch([DUMMY, "task.limit=2", "task.max_gen_toks=8", f"output_root={out}"], tmp_path)
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = [p.parent for p in out.glob("arith/*/*/*/DONE")]
    files = [p for p in run.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {
        "config.yaml",
        "manifest.json",
        "metrics.json",
        "samples.parquet",
        "DONE",
        "sss_arith.yaml",
    }
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o644)}
    assert not list(run.parent.glob(".*"))  # no lock, no temporary file left behind


def test_a_requeued_slurm_job_takes_over_its_own_lock_from_another_node(tmp_path, monkeypatch):
    from sss.runs.lock import RunBusyError, RunLock, lock_path

    run = tmp_path / "run"
    foreign = {"host": "node-that-died", "pid": 12345, "started": "x", "slurm_job": "77_3"}
    lock_path(run).write_text(json.dumps(foreign))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(RunBusyError, match="another host"):
        RunLock(run).acquire()
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "4")  # another task of the array: not ours
    with pytest.raises(RunBusyError):
        RunLock(run).acquire()
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    with RunLock(run) as lock:
        assert lock.took_over == foreign
        assert json.loads(lock_path(run).read_text())["pid"] == os.getpid()
    assert not lock_path(run).exists()
