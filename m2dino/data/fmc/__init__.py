"""The FMC_UIA layout: ``csv_files/*.csv`` with image and mask paths relative to ``csv_files/``."""

from .index import FMCRecord, Problem, read_fmc, read_fmc_index, scan_fmc
from .layout import CSV_DIR, TASK_NAMES
from .writer import write_fmc

__all__ = ["CSV_DIR", "FMCRecord", "Problem", "TASK_NAMES", "read_fmc", "read_fmc_index", "scan_fmc", "write_fmc"]
