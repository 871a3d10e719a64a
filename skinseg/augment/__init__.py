"""Augmentation beyond resizing and flips: skin-tone shifts, scale and context (scenes), validation views.

- `tone`: skin recoloured toward a tone from very light to very dark (CIELAB), shading kept;
- `scenes`: zoom-out onto background photos, people cut out and pasted, scene crops;
- `context`: those steps as one per-example training augmentation with probabilities, and
  the deterministic validation views built from them.

numpy and OpenCV only (no torch).
"""
