"""Regenerate the comparison tables: `python evaluate.py [data=public] [checkpoints=[...]]`."""

import hydra
from omegaconf import DictConfig

from skinseg.errors import exit_on_user_error, hydra_debug
from skinseg.evaluation import run


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate.yaml")
def main(cfg: DictConfig) -> None:
    # a bad file, path or setting: one line and exit code 2 (HYDRA_FULL_ERROR=1 shows the traceback)
    exit_on_user_error(lambda: run(cfg), debug=hydra_debug())


if __name__ == "__main__":
    main()
