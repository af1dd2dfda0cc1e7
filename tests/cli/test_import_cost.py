"""`m2dino score` and `m2dino data` start without importing torch or timm (seconds of start-up)."""

import subprocess
import sys

CHECK = """
import sys
from m2dino.cli.main import build_parser
build_parser()                      # every command's parser, as `m2dino --help` builds them
import m2dino, m2dino.data, m2dino.data.fmc, m2dino.evaluation, m2dino.evaluation.scoring.fmc_root
heavy = sorted(m for m in ("torch", "timm", "transformers") if m in sys.modules)
print(",".join(heavy))
"""


def test_cli_and_scoring_do_not_import_torch_or_timm():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_model_classes_still_import_on_first_use():
    result = subprocess.run([sys.executable, "-c", "import m2dino, sys; m2dino.M2DINO; print('torch' in sys.modules)"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
