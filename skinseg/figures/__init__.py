"""Figures: dataset colour statistics and model comparison grids (`python -m skinseg.figures`)."""
