"""sss: the single entrypoint. `python launch.py [overrides]`; see README.md."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parent


def register_named_sweeps(folder: Path = ROOT / "sweeps") -> None:
    """Each sweeps/<name>.yaml becomes the choice `sweep=<name>` (a global config: it may
    set any key, override groups in its defaults list, and set hydra.sweeper.params)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    store = ConfigStore.instance()
    for path in sorted(folder.glob("*.yaml")):
        store.store(group="sweep", name=path.stem, node=OmegaConf.load(path), package="_global_")


register_named_sweeps()


def refuse_moved_keys(argv: list[str]) -> None:
    """`model.engine=vllm` and the other engine keys that left the model config: one line that
    names their new place, before Hydra answers with a struct error that does not."""
    from sss.config import ENGINES, MOVED_TO_ENGINE

    for arg in argv:
        key, _, value = arg.lstrip("+~").partition("=")
        if key.startswith("model.") and key[len("model.") :] in MOVED_TO_ENGINE:
            name = key[len("model.") :]
            hint = f"engine={value}" if name == "engine" else f"engine.{name}={value}"
            print(
                f"error: {key} is now set through the engine group: use {hint} "
                f"(engines: {', '.join(ENGINES)}; docs/engines.md)",
                file=sys.stderr,
            )
            sys.exit(2)


def refuse_bad_early_values(argv: list[str]) -> None:
    """What Hydra acts on before sss sees the config: `sweep=<name>` (an unknown one would be
    skipped silently: the group is optional) and `output_root` (Hydra writes its logs there
    first). One line, exit status 2, nothing written."""
    from hydra.core.config_store import ConfigStore

    from sss.schema import ConfigError, check_output_root

    sweeps = sorted(name[: -len(".yaml")] for name in ConfigStore.instance().list("sweep"))
    for arg in argv:
        key, eq, value = arg.partition("=")
        if not eq:
            continue
        key = key.lstrip("+~")
        try:
            if key == "sweep" and value not in sweeps:
                raise ConfigError(f"sweep = {value!r} is not allowed: expected one of {sweeps} (the files in sweeps/)")
            if key == "output_root":
                check_output_root(value)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)


def refuse_bad_config(argv: list[str]) -> None:
    """Compose the config as Hydra is about to, against the schema (sss.schema), before Hydra
    starts: a value of the wrong type, an unknown key or option, a boolean written as a word is
    one line and exit status 2, where Hydra would print several lines, and nothing is written.
    In a multirun, each value of each sweep is composed with the fixed overrides."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from sss.schema import ConfigError, compose, config_error

    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:
        return  # Hydra reports its own usage errors
    if (
        args.help
        or args.hydra_help
        or args.info
        or args.shell_completion
        or args.config_path
        or args.config_name
        or args.config_dir
        or args.experimental_rerun
    ):
        return
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
        fixed = [o.input_line for o in parsed if not (args.multirun and o.is_sweep_override())]
        variants = [fixed]
        for override in parsed if args.multirun else []:
            if override.is_sweep_override() and override.value_type.name != "GLOB_CHOICE_SWEEP":
                variants += [
                    [*fixed, f"{override.get_key_element()}={value}"] for value in override.sweep_string_iterator()
                ]
        for overrides in variants:
            compose(overrides, ROOT / "conf")
    except (ConfigError, HydraException) as exc:
        print(f"error: {config_error(exc)}", file=sys.stderr)
        sys.exit(2)


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    from sss.config import is_config_error, validate

    # Validation comes first: a bad value stops here, before any model loads.
    try:
        settings = validate(cfg)
    except Exception as exc:
        if not is_config_error(exc) or in_multirun():
            # In a sweep this is one job's failure: Hydra records it and the other jobs go on
            # (the sss launchers check every job's config before submitting any).
            raise
        # SystemExit passes through Hydra's error handler: one clear line, exit status 2.
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

    from sss.jobs import run
    from sss.runs.lock import RunBusyError

    # The job's result (a run directory) goes back to the launcher, which reports on the sweep.
    try:
        return run(settings)
    except RunBusyError as exc:
        if in_multirun():
            raise
        # another live process is computing this very run: refused, nothing touched
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    refuse_moved_keys(sys.argv[1:])
    refuse_bad_early_values(sys.argv[1:])
    refuse_bad_config(sys.argv[1:])
    main()
