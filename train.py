"""Train a skin segmentation model: `python train.py model=u2netp [key=value ...]`."""

import hydra
from omegaconf import DictConfig

from skinseg.training import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    summary = train(cfg)
    return summary.get("val/iou")  # the objective of Hydra sweeps


if __name__ == "__main__":
    main()
