"""Data: image/mask reading, folder datasets, the synthetic demo set and the datamodule."""

from skinseg.data.datamodule import SkinDataModule
from skinseg.data.folder import FolderIndex, Sample, SkinDataset
from skinseg.data.io import DataError, read_image, read_mask

__all__ = ["DataError", "FolderIndex", "Sample", "SkinDataModule", "SkinDataset", "read_image", "read_mask"]
