"""Train a skin segmentation model: `python train.py model=u2netp [key=value ...]`."""

import hydra
from omegaconf import DictConfig

from skinseg.errors import exit_on_user_error, hydra_debug
from skinseg.training import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    # a bad file, path or setting: one line and exit code 2 (HYDRA_FULL_ERROR=1 shows the traceback)
    summary = exit_on_user_error(lambda: train(cfg), debug=hydra_debug())
    return summary.get("val/iou")  # the objective of Hydra sweeps


if __name__ == "__main__":
    main()
