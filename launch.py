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


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from sss.config import ConfigError, validate
    from sss.samplers import SamplerConfigError

    # Validation comes first: a bad value stops here, before any model loads.
    try:
        settings = validate(cfg)
    except (ConfigError, SamplerConfigError) as exc:
        # SystemExit passes through Hydra's error handler: one clear line, exit status 2.
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

    from sss.jobs import run

    run(settings)


if __name__ == "__main__":
    main()
