"""Data: the sample type, the FMC_UIA layout, public-dataset adapters, the synthetic suite,
transforms, task sampling and the model-side batch format."""

from .collection import LazySample, SampleCollection
from .errors import DataError, MissingFileError
from .fmc import FMCRecord, read_fmc, read_fmc_index, write_fmc
from .sample import Sample

__all__ = ["DataError", "FMCRecord", "LazySample", "MissingFileError", "Sample", "SampleCollection", "read_fmc",
           "read_fmc_index", "write_fmc"]
