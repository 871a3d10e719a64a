"""Data: image/mask reading, folder datasets, the synthetic demo set and the datamodule.

Names are imported on first use, so that numpy-only code (classical methods, metrics,
evaluation of them) can read images without importing torch and Lightning.
"""

from importlib import import_module

_EXPORTS = {
    "DataError": "skinseg.data.io",
    "read_image": "skinseg.data.io",
    "read_mask": "skinseg.data.io",
    "FolderIndex": "skinseg.data.folder",
    "Sample": "skinseg.data.folder",
    "SkinDataset": "skinseg.data.datamodule",
    "SkinDataModule": "skinseg.data.datamodule",
    "dataset_folders": "skinseg.data.folder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'skinseg.data' has no attribute {name!r}")
