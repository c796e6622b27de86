"""`job=analyze`: a table, figures and a report over the runs found under `analyze.input`.

Re-runnable: each call rewrites `<output>/runs.parquet`, `runs.csv`, `report.md` and
`figures/`. Runs are found by their manifests (sss.runs.discovery), never by directory names.
Finished runs with token traces (tokens.parquet) also get the paper's sequence analyses
(sss.analysis.traces), and confidence-bin runs the bin ablation (sss.analysis.confidence_bins).
"""

from __future__ import annotations

from pathlib import Path

from sss.config import RunSettings


def analyze(settings: RunSettings) -> Path:
    from sss.analysis.confidence_bins import confidence_bin_figures, confidence_bin_table
    from sss.analysis.figures import curve_points, hyperparameter_figures, k_curve_figures
    from sss.analysis.report import trace_section, write_report
    from sss.analysis.table import metric_columns, runs_table, write_table
    from sss.analysis.trace_figures import trace_figures
    from sss.analysis.traces import TraceOptions, run_traces, write_tables
    from sss.runs.discovery import find_runs

    options = settings.config["analyze"]
    source = Path(options["input"]).expanduser()
    output = Path(options["output"]).expanduser() if options.get("output") else source / "analysis"
    metric = options.get("metric") or "accuracy"

    runs = find_runs(source)
    # --- calibration directories (job=calibrate): compared across models (Figure 2), not rows
    from sss.calibration.compare import compare_calibrations, split_calibrations

    calibrations, runs = split_calibrations(runs)
    compared = compare_calibrations(calibrations, output) if calibrations else []
    if calibrations:
        print(f"compared {len(calibrations)} calibrations under {source}:")
        for path in compared:
            print(f"  {path}")
    if not runs:
        return output
    # ---------------------------------------------------------------------------------------
    scoring, rescore = options.get("scoring", "sss"), bool(options.get("rescore", False))
    frame = runs_table(runs, progress=True, scoring=scoring, rescore=rescore)
    parquet, csv = write_table(frame, output)

    figures_dir = output / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    for old in figures_dir.glob("*.png"):  # a re-run replaces the figures, leaving no stale ones
        old.unlink()
    done = frame[frame["status"] == "done"]
    notes = []
    if scoring != "sss" or rescore:
        notes.append(
            f"metrics: the {scoring} scoring"
            + (", recomputed from each run's samples.parquet" if rescore else " recorded in metrics.json")
        )
    scored = metric_columns(done)
    unscored = len(done) if not scored else int(done[scored].isna().all(axis=1).sum())
    if unscored:
        notes.append(
            f"{unscored} finished runs have no {scoring} metrics"
            + (
                ""
                if rescore
                else " in metrics.json (analyze.rescore=true computes them "
                "from samples.parquet where the task has that scoring)"
            )
        )
    figures = hyperparameter_figures(done, metric, figures_dir)
    if not figures:
        notes.append(
            f"{metric} against hyperparameters: no sampler had a swept numeric parameter among its finished runs"
        )
    for kind in ("maj", "pass"):
        figures += k_curve_figures(done, kind, figures_dir)
        without = int((curve_points(done, kind) < 2).sum())
        if without:
            notes.append(
                f"{kind}@k curves: {without} of {len(done)} finished runs have no curve "
                f"(fewer than two {kind}@k values: task.repeats=1 draws one sample "
                "per question)"
            )

    trace_options = TraceOptions.from_config(options)
    traces = run_traces(done, trace_options, progress=True)
    tables = write_tables(traces, output)
    figures += trace_figures(traces.tables, trace_options, figures_dir)

    bins = confidence_bin_table(done)
    if not bins.empty:
        tables += [output / "confidence_bins.parquet", output / "confidence_bins.csv"]
        bins.to_parquet(tables[-2], index=False)
        bins.to_csv(tables[-1], index=False)
        figures += confidence_bin_figures(bins, figures_dir)

    sections = trace_section(traces, trace_options, source)
    report = write_report(frame, source, output, metric, figures, notes, sections)

    counts = frame["status"].value_counts()
    print(f"analysed {len(frame)} runs under {source}: " + ", ".join(f"{int(n)} {s}" for s, n in counts.items()))
    if traces.errors:
        print(f"token traces of {len(traces.errors)} runs could not be analysed (see report.md):")
        for error in traces.errors.values():
            print(f"  {error}")
    for path in (parquet, csv, *tables, report, *figures):
        print(f"  {path}")
    return output
