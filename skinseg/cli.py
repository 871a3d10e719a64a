"""The Hydra commands, installed as `skinseg-train` and `skinseg-evaluate` (see [project.scripts]).

`python train.py ...` and `python evaluate.py ...` at the repository root run the same
functions. Their configs are `skinseg/configs`: in a checkout a link to the repository's
`configs/`, in an installed wheel a copy, so an installed skinseg trains and evaluates
from any folder (outputs go under the current folder, or $PROJECT_ROOT).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from skinseg.errors import exit_on_user_error, hydra_debug


@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
def train(cfg: DictConfig) -> float | None:
    """Trains the configured model; returns val/iou, the objective of Hydra sweeps."""
    from skinseg.training import train as run_training

    # a bad file, path or setting: one line and exit code 2 (HYDRA_FULL_ERROR=1 shows the traceback)
    summary = exit_on_user_error(lambda: run_training(cfg), debug=hydra_debug())
    return summary.get("val/iou")


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate.yaml")
def evaluate(cfg: DictConfig) -> None:
    """Regenerates the comparison tables of the configured methods and checkpoints."""
    from skinseg.evaluation import run

    exit_on_user_error(lambda: run(cfg), debug=hydra_debug())
