"""Train a skin segmentation model: `python train.py model=u2netp [key=value ...]` (installed: `skinseg-train`)."""

from skinseg.cli import train

if __name__ == "__main__":
    train()
