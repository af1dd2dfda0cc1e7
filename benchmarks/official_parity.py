"""Does `m2dino score` reproduce the FMC_UIA organisers' own evaluator? Every key they write, compared.

The organisers' script ("Evaluation Script for Foundation Model Challenge for Ultrasound Image
Analysis (FMC_UIA)", class ``Evaluator(data_root, pred_root)`` with ``evaluate_all()``) is NOT part of
this repository (its license is unknown). Pass its path with ``--official PATH``, and with
``--official-python`` a Python that can import it (numpy, pandas, opencv-python-headless,
scikit-learn, SimpleITK, tqdm), best a venv outside the repository so this one stays untouched:

    python3 -m venv /tmp/fmc_official/venv
    /tmp/fmc_official/venv/bin/pip install numpy pandas opencv-python-headless scikit-learn SimpleITK tqdm
    python benchmarks/official_parity.py --official /tmp/fmc_official/evaluate.py \\
        --official-python /tmp/fmc_official/venv/bin/python
    python benchmarks/official_parity.py --rerender   # rewrite results/official_parity.md from its .json

It writes a synthetic FMC_UIA root (the val split of `m2dino.data.synthetic`, one foreground class
erased from the last mask of every segmentation task, see `erase_a_class`), several seeded random
submissions with `write_submission` (see ``SUBMISSIONS``), scores each with ``m2dino score
--allow-missing`` from this environment and with the organisers' ``Evaluator`` in the other Python
(both in subprocesses), and compares every key the organisers write in their four sections
(segmentation, classification, detection, regression) to ``--tolerance``, our JSON null counting as
their NaN. Our additional keys (other sections, ``summary``) are not compared; keys of ours inside
the four sections that they do not write are listed as "ours only".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image

from harness.report import add_output_arguments, command_line, output_paths, read_result, write_result
from m2dino.data import FMCRecord, read_fmc_index, write_mask
from m2dino.data.synthetic import write_synthetic
from m2dino.evaluation import SubmissionEntry, write_submission
from m2dino.models import (
    ClassificationPrediction,
    DetectionPrediction,
    KeypointPrediction,
    Prediction,
    SegmentationPrediction,
)
from m2dino.tasks import get_task

SECTIONS = ("segmentation", "classification", "detection", "regression")
SHOWN_DIFFERENCES = 20   # per submission in the markdown; the JSON keeps them all

# name -> what the submission exercises
SUBMISSIONS: dict[str, str] = {
    "complete": ("every image predicted: random masks (noise, shifted truth, a class dropped, empty, blobs), "
                 "Dirichlet probabilities with the argmax or a random class, 1-3 jittered or random boxes, "
                 "keypoints with 1-20 px noise"),
    "missing": ("as complete, then about a quarter of the predictions deleted at random and every "
                "prediction of one task per kind (num_samples 0)"),
    "absent_classes": ("as complete, but the images of class 0 of every 2- and 3-class task are left out "
                       "and class 0 is never predicted: their AUC fails (as it does for the 6- and 8-class "
                       "tasks, whose 4 images miss classes) and the challenge's per-class F1 shifts down "
                       "one class"),
    "resized_masks": ("NOT well-formed (a probe): as complete, but every mask is written at another size "
                      "than its image, so both evaluators resize it (nearest neighbour)"),
}
# Well-formed: every file, value and size as the format asks. A probe is not.
PROBES = frozenset({"resized_masks"})

OFFICIAL_RUNNER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("fmc_official_evaluate", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
results = module.Evaluator(sys.argv[2], sys.argv[3]).evaluate_all()
with open(sys.argv[4], "w") as f:
    json.dump(results, f, indent=1)
"""

OFFICIAL_VERSIONS = """
import json, platform, cv2, numpy, pandas, sklearn, SimpleITK
print(json.dumps({"python": platform.python_version(), "numpy": numpy.__version__, "pandas": pandas.__version__,
                  "opencv": cv2.__version__, "scikit-learn": sklearn.__version__,
                  "SimpleITK": SimpleITK.Version_VersionString()}))
"""


# ----------------------------------------------------------------------------- comparison

def _leaves(tree: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(slash-joined key path, value) of every leaf; an empty dict is a leaf (``per_class: {}``)."""
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}/{key}" if prefix else str(key))
    else:
        yield prefix, tree


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def values_match(ours: object, theirs: object, tolerance: float) -> bool:
    """Their NaN matches our null (or NaN); numbers match within ``tolerance``; anything else by ``==``."""
    if _is_nan(theirs):
        return ours is None or _is_nan(ours)
    if _is_number(theirs) and _is_number(ours):
        return not _is_nan(ours) and abs(float(ours) - float(theirs)) <= tolerance
    return ours == theirs and type(ours) is type(theirs)


def compare_sections(ours: dict, theirs: dict, tolerance: float = 1e-6) -> dict:
    """Every leaf the organisers write in the four sections against ours at the same key path.

    Returns ``compared``, ``equal``, ``max_abs_difference`` (over pairs of finite numbers; 0.0 when
    none), ``differences`` (``{"key", "ours", "theirs"}``; ``"ours"`` is ``"<absent>"`` when we lack
    the key, or a dict where they wrote ``{}``) and ``ours_only`` (our key paths inside these
    sections that they do not write)."""
    ours_leaves = {k: v for s in SECTIONS if s in ours for k, v in _leaves(ours[s], s)}
    theirs_leaves = {k: v for s in SECTIONS if s in theirs for k, v in _leaves(theirs[s], s)}
    differences, max_difference = [], 0.0
    for key, their_value in theirs_leaves.items():
        if key not in ours_leaves:   # absent, or a non-empty dict where they wrote {}
            differences.append({"key": key, "ours": _lookup(ours, key), "theirs": _jsonable(their_value)})
            continue
        our_value = ours_leaves[key]
        if _is_number(our_value) and _is_number(their_value) and math.isfinite(our_value) \
                and math.isfinite(their_value):
            max_difference = max(max_difference, abs(float(our_value) - float(their_value)))
        if not values_match(our_value, their_value, tolerance):
            differences.append({"key": key, "ours": _jsonable(our_value), "theirs": _jsonable(their_value)})
    return {"compared": len(theirs_leaves), "equal": len(theirs_leaves) - len(differences),
            "max_abs_difference": max_difference, "differences": differences,
            "ours_only": sorted(set(ours_leaves) - set(theirs_leaves))}


def exercised(ours: dict, theirs: dict) -> dict:
    """How many tasks met each edge case, so that "all equal" is seen to cover them: the organisers'
    AUC fallback (0.0) and NaN AUC, tasks without one usable prediction, and tasks whose challenge
    per-class F1 differs from the true per-class F1 (scikit-learn's present-labels array indexed by
    class, read from our ``summary``)."""
    aucs = [r["AUC"] for r in theirs.get("classification", {}).values() if r["num_samples"]]
    extra = ours["summary"]["additional_metrics"]
    empty = sum(r["num_samples"] == 0 for s in SECTIONS for r in theirs.get(s, {}).values())
    return {"auc_0.0": sum(a == 0.0 for a in aucs), "auc_nan": sum(_is_nan(a) for a in aucs),
            "tasks_without_predictions": empty,
            "per_class_f1_shifted": sum(r["num_samples"] > 0 and r["per_class"] != extra[t]["per_class"]
                                        for t, r in ours.get("classification", {}).items())}


def _lookup(tree: dict, key: str) -> object:
    for part in key.split("/"):
        if not isinstance(tree, dict) or part not in tree:
            return "<absent>"
        tree = tree[part]
    return tree


def _jsonable(value: object) -> object:
    return "NaN" if _is_nan(value) else value   # strict JSON has no NaN


# ----------------------------------------------------------------------------- random predictions

def random_mask(truth: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A class-index mask of ``truth``'s shape, of a randomly chosen kind, so both evaluators meet
    empty and non-empty classes on either side and far-off false positives."""
    h, w = truth.shape
    kind = rng.integers(5)
    if kind == 0:                                            # noise: every class everywhere
        return rng.integers(0, num_classes, truth.shape).astype(np.uint8)
    if kind == 1:                                            # shifted truth with flipped pixels
        mask = np.roll(truth, tuple(int(v) for v in rng.integers(-6, 7, 2)), axis=(0, 1)).copy()
        flip = rng.random(truth.shape) < 0.05
        mask[flip] = rng.integers(0, num_classes, int(flip.sum()))
        return mask
    if kind == 2:                                            # a foreground class missed entirely
        mask = truth.copy()
        mask[mask == rng.integers(1, num_classes)] = 0
        return mask
    if kind == 3:                                            # nothing found
        return np.zeros_like(truth)
    mask = np.zeros_like(truth)                              # rectangles of random classes
    for _ in range(rng.integers(1, 4)):
        y, x = rng.integers(0, h - 1), rng.integers(0, w - 1)
        mask[y:y + rng.integers(1, h // 2), x:x + rng.integers(1, w // 2)] = rng.integers(1, num_classes)
    return mask


def random_boxes(truth: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> DetectionPrediction:
    """1-3 boxes (best first), each the truth jittered by a few pixels or a random box; never inverted."""
    h, w = size
    boxes = []
    for _ in range(rng.integers(1, 4)):
        if rng.random() < 0.7:
            box = np.asarray(truth, dtype=np.float64) + rng.normal(0, 4, 4)
        else:
            box = rng.uniform(0, [w, h, w, h])
        x0, x1 = sorted(box[[0, 2]])
        y0, y1 = sorted(box[[1, 3]])
        boxes.append([x0, y0, max(x1, x0 + 0.5), max(y1, y0 + 0.5)])
    n = len(boxes)
    return DetectionPrediction(np.array(boxes), np.sort(rng.random(n))[::-1], np.zeros(n, dtype=np.int64))


def random_class(num_classes: int, rng: np.random.Generator, lowest: int = 0) -> ClassificationPrediction:
    """Probabilities summing to 1 and their argmax (60%) or a random class, among classes >= ``lowest``."""
    probs = rng.dirichlet(np.ones(num_classes))
    if rng.random() < 0.6:
        index = lowest + int(np.argmax(probs[lowest:]))
    else:
        index = int(rng.integers(lowest, num_classes))
    return ClassificationPrediction(index, probs)


def random_prediction(record: FMCRecord, kind: str, rng: np.random.Generator, lowest_class: int = 0) -> Prediction:
    if kind == "mask":
        return SegmentationPrediction(random_mask(record.load_mask(), record.num_classes, rng))
    if kind == "class":
        return random_class(record.num_classes, rng, lowest_class)
    if kind == "boxes":
        return random_boxes(record.label, record.image_size, rng)
    if kind == "keypoints":
        truth = np.asarray(record.label, dtype=np.float64)
        return KeypointPrediction(truth + rng.normal(0, rng.choice([1.0, 5.0, 20.0]), truth.shape))
    raise ValueError(f"{record.task_id}: no random prediction for {kind} labels (the challenge has none)")


def _resized(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = mask.shape
    scale = rng.choice([0.5, 0.77, 1.3, 2.0], 2)
    size = (max(2, round(w * scale[1])), max(2, round(h * scale[0])))
    return np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))


def make_entries(name: str, records: list[FMCRecord], seed: int) -> list[SubmissionEntry]:
    """The seeded entries of submission ``name`` (a key of ``SUBMISSIONS``)."""
    rng = np.random.default_rng([seed, list(SUBMISSIONS).index(name)])
    kinds = {r.task_id: get_task(r.task_id).label_kind.name for r in records}
    entries = []
    for record in records:
        kind = kinds[record.task_id]
        lowest = 0
        if name == "absent_classes" and kind == "class" and record.num_classes <= 3:
            if record.label == 0:
                continue
            lowest = 1
        prediction = random_prediction(record, kind, rng, lowest)
        if name == "resized_masks" and kind == "mask":
            entries.append(SubmissionEntry(record.task_id, record.image_path,
                                           SegmentationPrediction(_resized(prediction.mask, rng)), record.mask_path))
        else:
            entries.append(SubmissionEntry.for_record(record, prediction))
    if name == "missing":
        by_kind: dict[str, list[str]] = {}
        for task, kind in kinds.items():
            by_kind.setdefault(kind, []).append(task)
        emptied = {str(rng.choice(sorted(set(tasks)))) for tasks in by_kind.values()}
        entries = [e for e in entries if e.task_id not in emptied and rng.random() >= 0.25]
    return entries


def erase_a_class(records: list[FMCRecord], seed: int) -> int:
    """In the last image of every segmentation task, erase one random foreground class from the
    ground-truth mask (an image without that structure, as real data has: a normal breast, no
    nodule). The synthetic masks otherwise hold every class, and a class empty in both the truth and
    the prediction (Dice 1, HD 0 in the challenge) would never be met. Returns the masks changed."""
    rng = np.random.default_rng([seed, 99])
    last = {r.task_id: r for r in records if r.mask_file is not None}
    for record in last.values():
        mask = record.load_mask().copy()
        mask[mask == rng.integers(1, record.num_classes)] = 0
        write_mask(mask, record.mask_file)
    return len(last)


def both_empty_classes(entries: list[SubmissionEntry], records: list[FMCRecord]) -> int:
    """(image, foreground class) pairs absent from both the predicted and the true mask (for
    masks at the image's size: a resized one can lose a class in the evaluators' resize)."""
    truth = {r.image_path: r for r in records}
    count = 0
    for entry in entries:
        if isinstance(entry.prediction, SegmentationPrediction):
            record = truth[entry.image_path]
            gt, pred = record.load_mask(), entry.prediction.mask
            count += sum(not (gt == c).any() and not (pred == c).any() for c in range(1, record.num_classes))
    return count


# ----------------------------------------------------------------------------- running both

def _m2dino_executable() -> str:
    beside = Path(sys.executable).with_name("m2dino")
    found = str(beside) if beside.exists() else shutil.which("m2dino")
    if found is None:
        raise SystemExit("m2dino: no `m2dino` command beside this Python or on PATH; install the package "
                         "(pip install -e .)")
    return found


def _run(command: list[str], log: Path, what: str) -> None:
    # One thread each: the scorers are small and the machine is shared.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed (exit {done.returncode}); its output is in {log}:\n"
                         + "\n".join((done.stdout + done.stderr).splitlines()[-15:]))


def official_versions(python: str) -> dict:
    done = subprocess.run([python, "-c", OFFICIAL_VERSIONS], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"--official-python {python} cannot import the organisers' dependencies "
                         f"(numpy, pandas, opencv-python-headless, scikit-learn, SimpleITK):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def run(official: Path, official_python: str, work: Path, per_task: int, size: int, seed: int,
        tolerance: float) -> dict:
    root = write_synthetic(work / "data", per_task, size, seed=seed, splits=("val",))["val"]
    records = read_fmc_index(root)
    erased = erase_a_class(records, seed)
    m2dino = _m2dino_executable()
    submissions = []
    for name, description in SUBMISSIONS.items():
        well_formed = name not in PROBES
        pred = work / name
        entries = make_entries(name, records, seed)
        written = write_submission(entries, pred)
        ours_path, theirs_path = work / f"{name}.ours.json", work / f"{name}.theirs.json"
        _run([m2dino, "score", "--data", str(root), "--pred", str(pred), "--out", str(ours_path),
              "--allow-missing", "--quiet"], work / f"{name}.ours.log", f"m2dino score on {name}")
        _run([official_python, "-c", OFFICIAL_RUNNER, str(official), str(root), str(pred), str(theirs_path)],
             work / f"{name}.theirs.log", f"the organisers' Evaluator on {name}")
        ours, theirs = json.loads(ours_path.read_text()), json.loads(theirs_path.read_text())
        comparison = compare_sections(ours, theirs, tolerance)
        print(f"{name}: {comparison['equal']}/{comparison['compared']} keys equal, max |difference| "
              f"{comparison['max_abs_difference']:.3g}", flush=True)
        both_empty = both_empty_classes(entries, records) if well_formed else None
        submissions.append({"name": name, "description": description, "well_formed": well_formed,
                            "predictions": sum(written.counts.values()),
                            "exercised": exercised(ours, theirs) | {"both_empty_classes": both_empty},
                            **comparison})
    return {
        "command": command_line(),
        "official": {"file": official.name, "sha256": hashlib.sha256(official.read_bytes()).hexdigest(),
                     "environment": official_versions(official_python)},
        "ours": {"m2dino": version("m2dino"), "python": platform.python_version(), "numpy": np.__version__,
                 "scikit-learn": version("scikit-learn"), "scipy": version("scipy")},
        "data": {"synthetic_seed": seed, "per_task": per_task, "size": size, "split": "val",
                 "tasks": len({r.task_id for r in records}), "images": len(records),
                 "masks_with_an_erased_class": erased},
        "tolerance": tolerance,
        "submissions": submissions,
    }


# ----------------------------------------------------------------------------- report

def _value(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)


def markdown(result: dict) -> str:
    data, official, ours = result["data"], result["official"], result["ours"]
    env = official["environment"]
    setup = (f"`m2dino score --allow-missing` (m2dino {ours['m2dino']}, scikit-learn {ours['scikit-learn']}, "
             f"NumPy {ours['numpy']}, SciPy {ours['scipy']}) against the organisers' `Evaluator.evaluate_all()` "
             f"(`{official['file']}`, sha256 `{official['sha256'][:16]}…`, not in this repository; run with "
             f"Python {env['python']}, scikit-learn {env['scikit-learn']}, NumPy {env['numpy']}, "
             f"OpenCV {env['opencv']}, SimpleITK {env['SimpleITK']}, pandas {env['pandas']}) on the same "
             f"submissions, on a synthetic FMC_UIA root ({data['tasks']} tasks, {data['images']} images of "
             f"{data['size']}×{data['size']} px, {data['per_task']} per task, {data['split']} split, "
             f"seed {data['synthetic_seed']}; in {data['masks_with_an_erased_class']} ground-truth masks, the "
             "last of each segmentation task, one foreground class is erased, so that a class absent from both "
             "truth and prediction occurs).")
    compared = ("Compared: every key the organisers write in their four sections (segmentation: DSC, HD, "
                "num_samples, per_class DSC/HD; classification: AUC, Accuracy, F1_macro, F1_weighted, MCC, "
                "num_samples, per_class F1; detection: IoU, num_samples; regression: MRE, num_samples), "
                f"to {result['tolerance']:g}, our JSON null counting as their NaN. Not compared: our additional "
                "keys (the measurement section and `summary`: strict values, HD95, NSD, AP50, problems).")
    exercised = ("What they exercised (number of tasks): an AUC of 0.0 (the organisers' fallback when "
                 "scikit-learn raises, e.g. for a class absent from y_true; rarely a true 0), a NaN AUC "
                 "(scikit-learn's value when y_true holds one class; our null), tasks with no usable prediction "
                 "(num_samples 0), tasks whose challenge per-class F1 is shifted from the true per-class F1; "
                 "and (image, foreground class) pairs empty in both truth and prediction (Dice 1, HD 0).")
    lines = ["# Parity with the FMC_UIA organisers' evaluator", "", setup, "", compared, "",
             f"Command: `{result['command']}`.", "",
             ("| submission | well-formed | predictions | keys compared | keys equal | max abs difference "
              "| differing keys | ours-only keys |"),
             "|---|---|---|---|---|---|---|---|"]
    for s in result["submissions"]:
        differing = ", ".join(d["key"] for d in s["differences"][:5]) or "none"
        if len(s["differences"]) > 5:
            differing += f", … ({len(s['differences'])} in all)"
        lines.append(f"| {s['name']} | {'yes' if s['well_formed'] else 'no (probe)'} | {s['predictions']} | "
                     f"{s['compared']} | {s['equal']} | {s['max_abs_difference']:.3g} | {differing} | "
                     f"{len(s['ours_only'])} |")
    lines += ["", "## Submissions", "", *(f"- **{s['name']}**: {s['description']}." for s in result["submissions"]),
              "", exercised, "",
              "| submission | AUC 0.0 | AUC NaN | num_samples 0 | per-class F1 shifted | class empty in both |",
              "|---|---|---|---|---|---|"]
    for s in result["submissions"]:
        e = s["exercised"]
        lines.append(f"| {s['name']} | {e['auc_0.0']} | {e['auc_nan']} | {e['tasks_without_predictions']} | "
                     f"{e['per_class_f1_shifted']} | {_count(e['both_empty_classes'])} |")
    lines.append("")
    for s in result["submissions"]:
        if s["differences"] or s["ours_only"]:
            lines += [f"## Differences: {s['name']}", ""]
            if s["differences"]:
                lines += ["| key | ours | theirs |", "|---|---|---|",
                          *(f"| {d['key']} | {_value(d['ours'])} | {_value(d['theirs'])} |"
                            for d in s["differences"][:SHOWN_DIFFERENCES])]
                if len(s["differences"]) > SHOWN_DIFFERENCES:
                    lines.append(f"\n… and {len(s['differences']) - SHOWN_DIFFERENCES} more in the JSON.")
                lines.append("")
            if s["ours_only"]:
                lines += [f"Ours only: {', '.join(s['ours_only'])}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, help="the organisers' evaluate.py (not in this repository)")
    parser.add_argument("--official-python", help="a Python that can import it (numpy, pandas, "
                                                  "opencv-python-headless, scikit-learn, SimpleITK, tqdm)")
    parser.add_argument("--per-task", type=int, default=4, help="synthetic images per task (default 4)")
    parser.add_argument("--size", type=int, default=64, help="synthetic image side in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of the submissions")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the data, submissions, both metrics files and logs here (default: a "
                             "temporary folder, removed)")
    add_output_arguments(parser, "official_parity")
    args = parser.parse_args(argv)
    md_path, json_path = output_paths(args)
    if args.rerender:
        result = read_result(json_path)
    else:
        if args.official is None or args.official_python is None:
            parser.error("--official PATH and --official-python PYTHON are required (except with --rerender)")
        if not args.official.is_file():
            parser.error(f"--official {args.official}: no such file")
        if args.per_task < 1 or args.size < 16:
            parser.error(f"--per-task must be >= 1 and --size >= 16; got {args.per_task}, {args.size}")
        with tempfile.TemporaryDirectory() as tmp:
            work = args.work_dir or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            result = run(args.official.resolve(), args.official_python, work, args.per_task, args.size, args.seed,
                         args.tolerance)
    report = markdown(result)
    print(report)
    write_result(md_path, json_path, report, result, indent=1)


if __name__ == "__main__":
    main()
