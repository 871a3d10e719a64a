"""Hydra configs (`pkg://skinseg.configs` when skinseg is installed): see README.md."""
