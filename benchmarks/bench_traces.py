#!/usr/bin/env python3
"""Time the trace analyses of `job=analyze` over a synthetic sweep, against a JSONL reader.

1. Builds a synthetic sweep directory: `--runs` finished runs (min_p over values and seeds),
   each with samples.parquet, metrics.json, manifest.json, config.yaml, DONE and a
   tokens.parquet in the writer's schema (zstd, row groups of 131,072 rows), `--rows` token
   rows in all (default 10^8). Each run has 250 questions x 32 repeats (the paper's GSM8K
   analysis), generation lengths uniform in [50, 450] scaled to the row budget; p_max, ranks
   and probabilities are drawn so that about 12% of the steps are low-confidence.
2. Runs `sss.jobs.analyze.analyze` on it in a fresh process (the whole job: runs table,
   figures, the trace analyses, their tables and figures, report.md) and records its wall time
   and peak resident memory (the process's own ru_maxrss, DuckDB included).
3. The baseline: the same records as JSON lines, one token per line (the seed's format), read
   with `json.loads` line by line into the same per-sample reduction, in a fresh process, over
   the first `--jsonl-rows` rows (a subset: writing 10^8 JSON lines would take most of an hour
   and ~15 GB); its rate is extrapolated to the full row count, and said so in the output.
   The Parquet path is also timed on exactly that subset (one run holding those rows), so one
   ratio compares two measurements of the same records.

    python benchmarks/bench_traces.py                          # 10^8 rows (~2.2 GiB of disk, ~2 min)
    python benchmarks/bench_traces.py --rows 2000000 --runs 4  # a quick run

Writes JSON (`--out`, default benchmarks/results/traces.json) and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import yaml  # noqa: E402

from sss.tracing.writer import DEFAULT_ROW_GROUP_ROWS, trace_schema  # noqa: E402

from machine import cpu_name  # noqa: E402 -- benchmarks/machine.py (this script's folder is on sys.path)

DOCS, REPEATS = 250, 32
TASK = "gsm8k_cot"


# -- the synthetic sweep --------------------------------------------------------------------


def run_lengths(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Generation lengths of one run's DOCS x REPEATS samples, summing exactly to `rows`."""
    raw = rng.uniform(50, 450, DOCS * REPEATS)
    lengths = np.floor(raw / raw.sum() * rows).astype(np.int64)
    lengths[: rows - lengths.sum()] += 1
    return lengths


def token_columns(rng: np.random.Generator, lengths: np.ndarray) -> dict[str, np.ndarray]:
    n = int(lengths.sum())
    sample = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    step = (np.arange(n) - starts).astype(np.int32)
    p_max = (1.0 - rng.beta(0.5, 1.2, n)).astype(np.float32)  # ~12% of steps below 0.3
    low = p_max < 0.3
    rank = np.where(low, rng.geometric(0.55, n), rng.geometric(0.97, n)).astype(np.int32)
    p = np.where(rank == 1, p_max, p_max * rng.uniform(0.02, 0.9, n) / rank)
    chars = rng.integers(1, 7, n).astype(np.int32)  # characters per token
    csum = np.concatenate([[0], np.cumsum(chars, dtype=np.int64)])
    before = np.repeat(csum[np.cumsum(lengths) - lengths], lengths)  # characters before each sample
    text_end = (csum[1:] - before).astype(np.int32)
    return {
        "doc_id": (sample // REPEATS).astype(np.int64),
        "repeat": (sample % REPEATS).astype(np.int32),
        "step": step,
        "token_id": rng.integers(0, 151_936, n),
        "logprob": np.log(p).astype(np.float32),
        "rank": rank,
        "p_max": p_max,
        "entropy": rng.gamma(1.5, 0.8, n).astype(np.float32),
        "kept": rng.integers(1, 200, n).astype(np.int32),
        "text_end": text_end,
    }


def write_run(folder: Path, rng: np.random.Generator, rows: int, min_p: float, seed: int) -> None:
    from sss.evaluation.metrics import summarize
    from sss.runs.layout import RunDir, write_atomic, write_json
    from sss.runs.manifest import Manifest

    run = RunDir(folder)
    params = {"min_p": min_p}
    config = {
        "seed": seed,
        "task": {"name": TASK, "limit": DOCS, "repeats": REPEATS, "num_fewshot": 5, "max_gen_toks": 512},
        "model": {"name": "synthetic", "engine": "hf"},
        "sampler": params,
        "logging": {"tokens": True, "top_k": 0},
        "job": {"name": "evaluate"},
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(run.config, yaml.safe_dump(config))
    lengths = run_lengths(rng, rows)
    columns = token_columns(rng, lengths)
    n = len(columns["step"])
    table = pa.table(
        {"lm_eval_task": pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), pa.array(["gsm8k_cot"])), **columns},
        schema=trace_schema(0),
    )
    pq.write_table(table, run.path / "tokens.parquet", row_group_size=DEFAULT_ROW_GROUP_ROWS, compression="zstd")
    answers = rng.integers(0, 6, DOCS * REPEATS).astype(str)
    samples = pd.DataFrame(
        {
            "lm_eval_task": TASK,
            "doc_id": np.repeat(np.arange(DOCS), REPEATS),
            "repeat": np.tile(np.arange(REPEATS), DOCS),
            "prompt": "Q",
            "response": [f"... The answer is {a}." for a in answers],
            "answer": answers,
            "target": "1",
            "correct": answers == "1",
            "seed": seed,
            "new_tokens": lengths,
        }
    )
    samples.to_parquet(run.samples, index=False)
    write_json(
        run.metrics,
        {
            "task": TASK,
            "model": "synthetic",
            "sampler": "min_p",
            "n_docs": DOCS,
            "repeats": REPEATS,
            "metrics": summarize(samples),
        },
    )
    manifest = Manifest(
        {
            "task": TASK,
            "model": "synthetic",
            "sampler": "min_p",
            "sampler_params": params,
            "seed": seed,
            "job": "evaluate",
        }
    )
    write_json(run.manifest, manifest.finish("done"))
    run.mark_done()


def build_sweep(root: Path, rows: int, runs: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    per_run = np.full(runs, rows // runs)
    per_run[: rows - per_run.sum()] += 1
    folders = []
    for i, count in enumerate(per_run):
        folder = root / f"run{i:03d}"
        write_run(folder, rng, int(count), min_p=round(0.01 * (1 + i // 2), 3), seed=i % 2)
        folders.append(folder)
        print(f"\rbuilding sweep: run {i + 1}/{runs}", end="", flush=True)
    print()
    return folders


def write_jsonl(run: Path, path: Path, rows: int) -> int:
    """The first `rows` token rows of one run as JSON lines (one token per line)."""
    written = 0
    with path.open("w") as out:
        for batch in pq.ParquetFile(run / "tokens.parquet").iter_batches(batch_size=65_536):
            frame = batch.to_pandas()
            frame["lm_eval_task"] = frame["lm_eval_task"].astype(str)
            frame = frame.iloc[: rows - written]
            out.write(frame.to_json(orient="records", lines=True))
            written += len(frame)
            if written >= rows:
                break
    return written


# -- the timed children ---------------------------------------------------------------------

ANALYZE_CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from sss.config import validate
from sss.jobs.analyze import analyze
from sss.schema import compose
import sss.analysis.traces as traces
# time the trace reduction + analyses (what the JSONL reader is compared with) inside the job
phases = {}
original = traces.run_traces
def timed(*args, **kwargs):
    t = time.perf_counter()
    out = original(*args, **kwargs)
    phases["run_traces"] = time.perf_counter() - t
    return out
traces.run_traces = timed
cfg = compose(["job=analyze", f"analyze.input={sys.argv[2]}", f"analyze.output={sys.argv[3]}",
               f"output_root={sys.argv[3]}"], sys.argv[1] + "/conf")
t = time.perf_counter()
analyze(validate(cfg))
seconds = time.perf_counter() - t
print("RESULT=" + json.dumps({"seconds": seconds, "trace_seconds": phases["run_traces"],
                              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

JSONL_CHILD = """
import json, math, resource, sys, time
from collections import defaultdict
low, log_sp = 0.3, math.log(0.1)
t = time.perf_counter()
stats = defaultdict(lambda: [0, 0, 0, 0.0, [0] * 10, 0, 0, 0.0, [0] * 10])
rows = 0
with open(sys.argv[1]) as fh:
    for line in fh:
        r = json.loads(line)
        s = stats[(r["lm_eval_task"], r["doc_id"], r["repeat"])]
        s[0] += 1
        rank = r["rank"]
        if r["p_max"] < low:
            s[1] += 1; s[2] = max(s[2], rank); s[3] += rank; s[4][min(rank, 10) - 1] += 1
        if r["logprob"] < log_sp:
            s[5] += 1; s[6] = max(s[6], rank); s[7] += rank; s[8][min(rank, 10) - 1] += 1
        rows += 1
seconds = time.perf_counter() - t
# checksums, compared with sss's trace_samples.parquet of the same rows
check = {"low_conf_events": sum(s[1] for s in stats.values()),
         "low_conf_max_rank": sum(s[2] for s in stats.values()),
         "low_prob_events": sum(s[5] for s in stats.values()),
         "low_conf_rank_10": sum(s[4][9] for s in stats.values())}
print("RESULT=" + json.dumps({"seconds": seconds, "rows": rows, "samples": len(stats), "check": check,
                              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT="))
    return json.loads(line[len("RESULT=") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--jsonl-rows", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the sweep goes (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic sweep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "traces.json")
    args = parser.parse_args()

    base = args.dir or Path(tempfile.mkdtemp(prefix="sss-bench-traces-"))
    sweep = base / "sweep"
    try:
        t = time.perf_counter()
        build_sweep(sweep, args.rows, args.runs, args.seed)
        build_s = time.perf_counter() - t
        disk = sum(p.stat().st_size for p in sweep.rglob("tokens.parquet"))
        print(
            f"built {args.runs} runs, {args.rows:,} token rows, {disk / 2**30:.2f} GiB of tokens.parquet "
            f"in {build_s:.0f} s"
        )

        full = child(ANALYZE_CHILD, str(REPO_ROOT), str(sweep), str(base / "analysis"))
        print(
            f"job=analyze over the sweep: {full['seconds']:.1f} s (trace reduction and analyses "
            f"{full['trace_seconds']:.1f} s), peak {full['peak_rss_mib']:.0f} MiB"
        )

        # the same records on a subset: one run holding exactly --jsonl-rows rows
        subset_rows = min(args.jsonl_rows, args.rows)
        subset = base / "subset"
        write_run(subset / "run", np.random.default_rng(args.seed + 1), subset_rows, 0.1, 0)
        jsonl = base / "subset.jsonl"
        write_jsonl(subset / "run", jsonl, subset_rows)
        sub_parquet = child(ANALYZE_CHILD, str(REPO_ROOT), str(subset), str(base / "subset_analysis"))
        sub_jsonl = child(JSONL_CHILD, str(jsonl))
        per_sample = pd.read_parquet(base / "subset_analysis" / "trace_samples.parquet")
        ours = {name: int(per_sample[name].fillna(0).sum()) for name in sub_jsonl["check"]}
        if ours != sub_jsonl["check"]:
            raise SystemExit(f"sss and the JSONL reader disagree: {ours} != {sub_jsonl['check']}")
        print(f"sss and the JSONL reader agree on the subset: {ours}")
        rate = sub_jsonl["rows"] / sub_jsonl["seconds"]
        extrapolated = args.rows / rate
        result = {
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": __import__("duckdb").__version__,
            "pyarrow": pa.__version__,
            "rows": args.rows,
            "runs": args.runs,
            "samples": args.runs * DOCS * REPEATS,
            "tokens_parquet_gib": disk / 2**30,
            "build_seconds": build_s,
            "analyze_seconds": full["seconds"],
            "analyze_trace_seconds": full["trace_seconds"],
            "analyze_peak_rss_mib": full["peak_rss_mib"],
            "subset_rows": subset_rows,
            "subset_analyze_seconds": sub_parquet["seconds"],
            "subset_trace_seconds": sub_parquet["trace_seconds"],
            "subset_jsonl_seconds": sub_jsonl["seconds"],
            "jsonl_peak_rss_mib": sub_jsonl["peak_rss_mib"],
            "jsonl_rows_per_second": rate,
            "jsonl_seconds_extrapolated": extrapolated,
            "ratio_subset": sub_jsonl["seconds"] / sub_parquet["trace_seconds"],
            "ratio_full_extrapolated": extrapolated / full["trace_seconds"],
        }
        print(json.dumps(result, indent=2))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(result))
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


def markdown(r: dict) -> str:
    gib = r["analyze_peak_rss_mib"] / 1024
    return "\n".join(
        [
            f"Trace analyses (`benchmarks/bench_traces.py`), {r['date']}, {r['cpu']} ({r['cores']} cores), "
            f"DuckDB {r['duckdb']}, pyarrow {r['pyarrow']}; {r['runs']} runs, {r['samples']:,} samples, "
            f"{r['tokens_parquet_gib']:.2f} GiB of tokens.parquet.",
            "",
            "| what | token rows | trace reduction + analyses (s) | whole job (s) | peak memory |",
            "|---|---:|---:|---:|---:|",
            f"| job=analyze over the sweep | {r['rows']:,} | {r['analyze_trace_seconds']:.1f} | "
            f"{r['analyze_seconds']:.1f} | {gib:.2f} GiB |",
            f"| job=analyze, one run | {r['subset_rows']:,} | {r['subset_trace_seconds']:.2f} | "
            f"{r['subset_analyze_seconds']:.1f} | |",
            f"| JSONL, one token per line, `json.loads` into the same per-sample counts | {r['subset_rows']:,} | "
            f"{r['subset_jsonl_seconds']:.2f} | | {r['jsonl_peak_rss_mib'] / 1024:.2f} GiB |",
            f"| JSONL at {r['jsonl_rows_per_second']:,.0f} rows/s, **extrapolated** | {r['rows']:,} | "
            f"{r['jsonl_seconds_extrapolated']:.0f} | | |",
            "",
            f"JSONL / Parquet+DuckDB, reduction and analyses: {r['ratio_subset']:.1f}x on the same "
            f"{r['subset_rows']:,} rows (the JSONL side only counts; it builds no table), and "
            f"{r['ratio_full_extrapolated']:.1f}x at {r['rows']:,} rows with the JSONL time extrapolated "
            "from the subset. The whole job adds the runs table, every figure (seaborn) and report.md.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
