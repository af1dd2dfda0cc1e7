"""What the repository ships names no folder of the machine it was made on (issue 26, item 7): the
results and docs hold paths relative to the repository, or elided (``.../m2dino-public/train``)."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = [REPO / "benchmarks" / "results", REPO / "docs", REPO / "README.md"]
TEXT = {".md", ".json", ".txt", ".csv", ".yaml", ".yml"}
# A machine's folder at the start of an absolute path; ``runs/tmp/x`` (relative) does not count.
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|tmp|home|root|Users)/")


def text_files() -> list[Path]:
    files = [p for root in SCANNED if root.is_dir() for p in sorted(root.rglob("*")) if p.suffix in TEXT]
    return files + [p for p in SCANNED if p.is_file()]


def machine_paths(text: str) -> list[tuple[int, str]]:
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if MACHINE_PATH.search(line)]


def test_the_pattern_finds_absolute_paths_only():
    assert machine_paths('"out_dir": "/work/main/benchmarks/results"\n--fmc fmc:/tmp/x\n`/root/out`\n/home/a/b')
    assert len(machine_paths("fmc:/tmp/x\n")) == 1
    assert not machine_paths("runs/tmp/x .../m2dino-public/train ../shared/data /data/FMC_UIA benchmarks/results")


def test_results_and_docs_hold_no_machine_path():
    assert any(p.parent.name == "results" for p in text_files())  # the scan sees the results
    found = [f"{p.relative_to(REPO)}:{n}: {line[:160]}"
             for p in text_files() for n, line in machine_paths(p.read_text())]
    assert not found, "absolute machine paths (record them relative to the repository):\n" + "\n".join(found)
