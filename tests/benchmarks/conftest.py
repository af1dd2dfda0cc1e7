"""The benchmark scripts import their helpers as top-level packages (``harness``, ``speed_parts``,
``pretraining_parts``, ``aggregation_parts``), as `python benchmarks/<script>.py` puts benchmarks/ first on the
path; so do the tests."""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
