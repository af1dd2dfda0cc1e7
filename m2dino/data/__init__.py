"""Data: the sample type, the FMC_UIA layout, public-dataset adapters, the synthetic suite,
transforms, task sampling and the model-side batch format.

The torch side (`Collate`, `SampleKey`, `LoaderConfig`, `TrainDataset`, `build_train_loader`, the
device augmentation's `DrawParameters` and `augment_batch`) is imported on first use (PEP 562), so
reading an FMC root does not pay for importing torch.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from .cache import ResizeCache
from .collection import LazySample, SampleCollection, image_key
from .errors import DataError, MissingFileError
from .fmc import FMCRecord, read_fmc, read_fmc_index, write_fmc
from .mask_io import write_mask
from .sample import Sample
from .sampling import TaskSampler, task_probabilities
from .synthetic import make_synthetic_samples
from .transforms import AugmentConfig, build_transforms, resize_sample
from .unlabeled import UnlabeledImage, UnlabeledSource

if TYPE_CHECKING:
    from .device_augment import DrawParameters, augment_batch
    from .loading import LoaderConfig, TrainDataset, build_train_loader
    from .torch_dataset import Collate, SampleKey

_LAZY = {**dict.fromkeys(("Collate", "SampleKey"), ".torch_dataset"),
         **dict.fromkeys(("DrawParameters", "augment_batch"), ".device_augment"),
         **dict.fromkeys(("LoaderConfig", "TrainDataset", "build_train_loader"), ".loading")}
__all__ = ["AugmentConfig", "Collate", "DataError", "DrawParameters", "FMCRecord", "LazySample", "LoaderConfig",
           "MissingFileError", "ResizeCache", "Sample", "SampleCollection", "SampleKey", "TaskSampler",
           "TrainDataset", "UnlabeledImage", "UnlabeledSource", "augment_batch", "build_train_loader",
           "build_transforms", "image_key", "make_synthetic_samples", "read_fmc", "read_fmc_index", "resize_sample",
           "task_probabilities", "write_fmc", "write_mask"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
