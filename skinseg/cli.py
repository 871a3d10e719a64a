"""The Hydra commands, installed as `skinseg-train` and `skinseg-evaluate` (see [project.scripts]).

`python train.py ...` and `python evaluate.py ...` at the repository root run the same
functions. Their configs are `skinseg/configs`: in a checkout a link to the repository's
`configs/`, in an installed wheel a copy, so an installed skinseg trains and evaluates
from any folder (outputs go under the current folder, or $PROJECT_ROOT).
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from skinseg.errors import EXIT_USER_ERROR, exit_on_user_error, hydra_debug


class RunFolderGuard(Callback):
    """Refuses a training run folder that holds an earlier run's checkpoints before Hydra writes to it.

    Hydra writes `.hydra/` and opens the run's log inside the job; this check runs first, so
    a refused run leaves the earlier run's record (config, overrides, log) byte-identical.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from skinseg.training import check_output_dir

        exit_on_user_error(lambda: check_output_dir(config.hydra.run.dir, config.get("ckpt_path")),
                           debug=hydra_debug())


def check_composition(config_name: str, overrides: list[str]) -> None:
    """Composes the command's config once before Hydra runs it: an unknown group option, a
    misspelt key or a malformed override is one `error:` line and exit code 2 (Hydra's own
    report is several lines and exit code 1). Flags (--help, --cfg, --multirun ...) and
    HYDRA_FULL_ERROR=1 leave the report to Hydra.
    """
    if hydra_debug() or any(argument.startswith("-") for argument in overrides):
        return
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_module("skinseg.configs", version_base="1.3"):
            compose(config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith(("Config search path", "provider=", "full_key:",
                                                                  "object_type=", "reference_type="))]
        options = [line for line in lines[1:] if " " not in line]  # Hydra lists a group's options one per line
        text = " ".join(line for line in lines if line not in options) + (f" {', '.join(options)}" if options else "")
        print(f"error: {text}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None


@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
def _train(cfg: DictConfig) -> float | None:
    """Trains the configured model; returns val/miou50, the objective of Hydra sweeps."""
    from skinseg.training import train as run_training

    # a bad file, path or setting: one line and exit code 2 (HYDRA_FULL_ERROR=1 shows the traceback)
    summary = exit_on_user_error(lambda: run_training(cfg), debug=hydra_debug())
    return summary.get("val/miou50")


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate.yaml")
def _evaluate(cfg: DictConfig) -> None:
    """Regenerates the comparison tables of the configured methods and checkpoints."""
    from skinseg.evaluation import run

    exit_on_user_error(lambda: run(cfg), debug=hydra_debug())


def train() -> None:
    """`python train.py [overrides]` / `skinseg-train`."""
    check_composition("train", sys.argv[1:])
    _train()


def evaluate() -> None:
    """`python evaluate.py [overrides]` / `skinseg-evaluate`."""
    check_composition("evaluate", sys.argv[1:])
    _evaluate()
