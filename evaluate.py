"""Regenerate the comparison tables: `python evaluate.py [data=public] [checkpoints=[...]]`."""

import hydra
from omegaconf import DictConfig

from skinseg.evaluation import run


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate.yaml")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
