"""The README's two set-up commands are the ones CI and users run."""

from conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```", 2)[1]
    return [line.strip() for line in block.splitlines()[1:] if line.strip()]


def test_readme_opens_with_exactly_two_setup_commands():
    commands = readme_commands()
    assert len(commands) == 2
    run_default, run_tests = commands
    assert run_default.startswith("bash scripts/setup-venv.sh") and "launch.py" in run_default
    assert run_tests.startswith("bash scripts/setup-venv.sh dev") and "pytest" in run_tests


def test_ci_runs_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci_lines
