"""Data: image/mask reading, folder datasets, the synthetic demo set and the datamodule.

Names are imported on first use, so that numpy-only code (classical methods, metrics,
evaluation of them) can read images without importing torch and Lightning.
"""

from skinseg.lazy import lazy_getattr

_EXPORTS = {
    "DataError": "skinseg.io",
    "read_image": "skinseg.io",
    "read_mask": "skinseg.io",
    "FolderIndex": "skinseg.data.folder",
    "Sample": "skinseg.data.folder",
    "SkinDataset": "skinseg.data.datamodule",
    "SkinDataModule": "skinseg.data.datamodule",
    "dataset_folders": "skinseg.data.folder",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("skinseg.data", _EXPORTS)
