"""Jobs that launch.py runs: `job=evaluate` (more to come: calibrate, analyze)."""


def run(settings):
    """Dispatch on `job.name` (already validated)."""
    name = settings.config["job"]["name"]
    if name == "evaluate":
        from .evaluate import evaluate

        return evaluate(settings)
    raise ValueError(f"unknown job {name!r}")
