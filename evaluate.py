"""Regenerate the comparison tables: `python evaluate.py [data=public] [checkpoints=[...]]` (installed: `skinseg-evaluate`)."""

from skinseg.cli import evaluate

if __name__ == "__main__":
    evaluate()
