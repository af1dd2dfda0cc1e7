"""Data: the sample type, the FMC_UIA layout, public-dataset adapters, the synthetic suite,
transforms, task sampling and the model-side batch format."""

from .collection import LazySample, SampleCollection
from .errors import DataError, MissingFileError
from .fmc import FMCRecord, read_fmc, read_fmc_index, write_fmc
from .sample import Sample
from .sampling import TaskSampler, task_probabilities
from .synthetic import make_synthetic_samples
from .transforms import build_transforms
from .unlabeled import UnlabeledImage, UnlabeledSource

# The torch side (MultiTaskDataset, Collate, build_dataloader) lives in `m2dino.data.torch_dataset`
# and is not imported here, so reading an FMC root does not pay for importing torch.
__all__ = ["DataError", "FMCRecord", "LazySample", "MissingFileError", "Sample", "SampleCollection", "TaskSampler",
           "build_transforms", "make_synthetic_samples", "read_fmc", "read_fmc_index",
           "task_probabilities", "UnlabeledImage", "UnlabeledSource", "write_fmc"]
