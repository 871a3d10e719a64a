"""Augmentation (numpy and OpenCV; albumentations in `transforms` and `pipeline`).

- `ops`: the original's colour and occlusion ops (hue, saturation, contrast, sepia, lattices);
- `transforms`: those as the 26 albumentations variants, and `seed26` that samples them online;
- `materialise`: every variant of every training image written offline (`python -m skinseg.augment`);
- `tone`: skin recoloured toward a tone from very light to very dark (CIELAB), shading kept;
- `scenes`: zoom-out onto background photos, people cut out and pasted, scene crops;
- `pipeline`: every training step by name (`data.augment`), one class each, run in one fixed order;
- `context`: the deterministic validation views built from the scene operations.
"""
