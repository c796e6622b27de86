"""Jobs that launch.py runs: `job=evaluate`, `job=analyze`, `job=calibrate`."""


def run(settings):
    """Dispatch on `job.name` (already validated)."""
    name = settings.config["job"]["name"]
    if name == "evaluate":
        from .evaluate import evaluate

        return evaluate(settings)
    if name == "analyze":
        from .analyze import analyze

        return analyze(settings)
    if name == "calibrate":
        from .calibrate import calibrate

        return calibrate(settings)
    raise ValueError(f"unknown job {name!r}")
