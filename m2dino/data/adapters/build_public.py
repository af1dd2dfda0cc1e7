"""`build_public`: the public multi-task benchmark, one FMC root (``OUT/train``, ``OUT/val``,
``OUT/test``) from eight real datasets in their published layouts, and its datasheet.

Each dataset is read by its adapter and split by patient or video where the dataset identifies
them, by its official split where it has one, and with the seed otherwise. Datasets published
with train and test only (African planes, USGRA) get a val split carved from train, by patient
where there is one. An image whose file is byte-identical to one in an earlier split is left out
of the later split (published splits leak so). ``OUT/DATASHEET.md`` and ``OUT/datasheet.json``
record the sources, licenses, split rules, exact counts per dataset, split and task, class
counts, the known traps and every file left out, with the reason.

The rows' ``meta`` name their source files (an annotation, a mask) relative to the folder they came
from, ``--src`` or ``--shared`` (``meta['source_root']`` says which), never by this machine's path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ...tasks import TaskType, get_task
from ..collection import LazySample, SampleCollection
from ..errors import DataError, MissingFileError
from ..fmc import write_fmc
from ..sample import Sample
from . import get_adapter
from .common import split_groups

SPLITS = ("train", "val", "test")
DATASHEET = "DATASHEET.md"
MetaUpdate = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Source:
    """One dataset of the benchmark: where it lives (``shared``: the folder of hc18, african_planes
    and usgra; ``src``: get_public.sh's output) and what the datasheet says about it."""

    name: str
    under: str
    title: str
    license: str
    split: str
    traps: tuple[str, ...]


SOURCES = (
    Source("hc18", "shared", "HC18 grand challenge, training set (van den Heuvel et al., PLoS ONE 2018; "
           "Zenodo 1327317)", "CC BY 4.0", "by patient (010_HC and 010_2HC together), seeded 80/10/10",
           (("annotations are 1-px ellipse contours: filled; where the head leaves the image the contour is open "
             "and the fitted ellipse is used"),
            "the test set's labels are not public: the training set is split")),
    Source("african_planes", "shared", "African fetal standard planes (Sendra-Balcells et al. 2023; Zenodo 7540448)",
           "CC BY 4.0", "published train/test (by patient); val carved from train by patient, seeded",
           ("4 of fetal_plane_cls's 6 classes", "patient numbers restart per country: patient = country:number",
            "5 countries: a domain shift",
            ("the published test part repeats train images (byte-identical, other patient numbers): left out of "
             "test (listed below)"))),
    Source("usgra", "shared", "USGRA-seg, ultrasound-guided regional anaesthesia (2025)", "CC BY 4.0",
           "published train/test; val carved from train by image, seeded (no patient ids)",
           ("not a benchmark task (nerve_vessel_seg is an extra task)", "no patient ids")),
    Source("busi", "src", "BUSI (Al-Dhabyani et al., Data in Brief 2020)", "as published (Data in Brief 2020)",
           "by image, stratified by class, seeded 80/10/10 (no patient ids)",
           ("multi-lesion images: masks _mask, _mask_1, ... are united",
            "duplicate and near-duplicate images exist and no patient ids: the split cannot separate them",
            "normal images have empty masks and are left out of breast_lesion")),
    Source("psfhs", "src", "PSFHS, MICCAI 2023 (Chen et al. 2024; Zenodo 10969427), a subset", "CC BY 4.0",
           "by image, seeded 80/10/10 (no patient ids)",
           ("images are stored as three identical slices (checked, one kept)", "MetaImage (.mha) files",
            "no patient ids: images of one patient may fall in different splits")),
    Source("pocus", "src", "POCUS lung ultrasound (Born et al. 2021), frames", "mixed per video (see meta['license']; "
           "several CC BY-NC)", "published cross-validation folds (by video): fold 0 test, fold 1 val, 2-4 train",
           ("frames of one video are near-duplicates: split by video, never by frame",
            "lung_disease_3cls classes 0/1/2 = covid/pneumonia/regular (the benchmark's names are unpublished)",
            "licenses differ per video, some non-commercial")),
    Source("mmotu", "src", "MMOTU OTU_2d (Zhao et al. 2022)", "as published (see the source)",
           "official train/validation: validation is test; val carved from train per category, seeded",
           ("annotations are RGB, one colour per category: mapped to class indices",
            "the normal ovary's region counts as foreground in ovary_tumor, as in MMOTU's binary masks",
            "no patient ids inside the official train part: val may share patients with train",
            "an annotation of another size than its image is left out (listed below)")),
    Source("ddti", "src", "DDTI thyroid (Pedraza et al. 2015), nodule crops by xuao575/DDTI_preprocessing",
           "as published (see the source)", "by case (patient), seeded 80/10/10",
           ("one crop per nodule, resized to 300x300 (not the original scans)",
            "TI-RADS belongs to the case; cases without one are left out of thyroid_tirads_cls",
            "two CSV rows have no crop (skipped)",
            "some cases repeat another case's crop byte for byte: a copy in a later split is left out (listed below)",
            "crops whose mask is empty are left out (listed below)")),
)


def build_public(src: str | Path, shared: str | Path, out: str | Path, datasets: list[str] | None = None,
                 seed: int = 0, val_fraction: float = 0.1, overwrite: bool = False,
                 progress: bool = True) -> dict[str, Any]:
    """Write the benchmark under ``out`` and return the datasheet's data (also in ``out/datasheet.json``)."""
    sources = _select(datasets)
    roots = {"src": Path(src), "shared": Path(shared)}
    folders = {s.name: roots[s.under] / s.name for s in sources}
    for source in sources:  # all checked before anything is written
        if not folders[source.name].is_dir():
            hint = ("get_public.sh's output folder (--src)" if source.under == "src"
                    else "the folder holding hc18, african_planes and usgra (--shared)")
            raise MissingFileError(f"{source.name}: folder not found: {folders[source.name]}; expected it in {hint}")
    out = Path(out)
    report: dict[str, Any] = {"seed": seed, "val_fraction": val_fraction, "splits": list(SPLITS), "datasets": {}}
    for source in sources:
        with warnings.catch_warnings(record=True) as caught:  # files an adapter leaves out, and why
            warnings.simplefilter("always")
            splits = load_splits(source.name, folders[source.name], seed, val_fraction)
        splits, leaks = drop_leaks(splits)
        left_out = [str(w.message) for w in caught] + leaks
        for message in left_out:
            warnings.warn(message, stacklevel=2)
        left_out = [m.replace(f"{folders[source.name]}/", "") for m in left_out]  # the datasheet is portable
        for split, samples in splits.items():
            if len(samples):
                write_fmc(relative_files(samples, roots[source.under], source.under), out / split, split_name=split,
                          overwrite=overwrite, progress=progress)
        report["datasets"][source.name] = {**_describe(source), **count(splits), "left_out": left_out}
    out.mkdir(parents=True, exist_ok=True)
    (out / "datasheet.json").write_text(json.dumps(report, indent=1))
    (out / DATASHEET).write_text(datasheet_markdown(report))
    return report


def _select(datasets: list[str] | None) -> list[Source]:
    known = {s.name: s for s in SOURCES}
    unknown = sorted(set(datasets or ()) - known.keys())
    if unknown:
        raise DataError(f"unknown dataset(s) {', '.join(unknown)}; expected some of {', '.join(known)}")
    return [s for s in SOURCES if datasets is None or s.name in datasets]


def load_splits(name: str, folder: Path, seed: int, val_fraction: float) -> dict[str, SampleCollection]:
    """Dataset ``name``'s samples as train / val / test (val carved from train when the dataset has none)."""
    adapter = get_adapter(name)
    options = {"seed": seed} if "seed" in inspect.signature(adapter.load).parameters else {}
    splits = adapter.load(folder, **options)
    if "val" not in splits:
        splits = {**splits, **carve_val(splits["train"], val_fraction, seed)}
    unexpected = set(splits) - set(SPLITS)
    if unexpected:
        raise DataError(f"{name}: splits {sorted(unexpected)}; expected {', '.join(SPLITS)}")
    return {split: splits.get(split, SampleCollection()) for split in SPLITS}


def drop_leaks(splits: dict[str, SampleCollection]) -> tuple[dict[str, SampleCollection], list[str]]:
    """``splits`` without the images whose file is byte-identical to one of an earlier split (train,
    then val, then test), and a message for each image left out. Published splits have such leaks:
    African planes repeats 22 images under other patient numbers in its test part."""
    first: dict[str, tuple[str, str]] = {}  # digest -> (split, source) where it first occurs
    digests: dict[str, str] = {}
    kept, messages = {}, []
    for split in SPLITS:
        items = []
        for item in splits[split].items:
            digest = digests.get(item.source) or digests.setdefault(item.source, _digest(item.source))
            where, other = first.setdefault(digest, (split, item.source))
            if where == split:
                items.append(item)
            elif not messages or not messages[-1].startswith(f"{item.source}: "):  # once per image, not per task
                messages.append(f"{item.source}: the same file as {other} ({where}); left out of {split}")
        kept[split] = SampleCollection(items)
    return kept, messages


def carve_val(train: SampleCollection, fraction: float, seed: int) -> dict[str, SampleCollection]:
    """``{"train", "val"}``: ``fraction`` of the patients (``meta['patient']``), or of the images
    when there is none, moved to val; all tasks of an image and all images of a patient stay together."""
    items = train.items
    groups = [str(item.meta.get("patient") or item.meta.get("video") or item.source) for item in items]
    split_of = split_groups(groups, {"train": 1 - fraction, "val": fraction}, seed)
    moved = [item if split_of[group] == "train" else _moved(item, "val") for item, group in zip(items, groups)]
    return {split: SampleCollection(item for item, group in zip(moved, groups) if split_of[group] == split)
            for split in ("train", "val")}


def _moved(item: LazySample | Sample, split: str) -> LazySample | Sample:
    """``item`` with ``meta['split']`` set to ``split`` (the adapter wrote the split it came from)."""
    return _with_meta(item, partial(_set_split, split=split))


def _set_split(meta: Mapping[str, Any], split: str) -> dict[str, Any]:
    return {**meta, "split": split}


def relative_files(samples: SampleCollection, root: Path, under: str) -> SampleCollection:
    """``samples`` whose meta names files under ``root`` (the ``under`` folder: ``src`` or ``shared``)
    relative to it, and says which root in ``meta['source_root']``: the FMC root's CSVs then hold no
    path of the machine that built it."""
    update = partial(_relative_to_root, root=root, under=under)
    return SampleCollection(_with_meta(item, update) for item in samples.items)


def _relative_to_root(meta: Mapping[str, Any], root: Path, under: str) -> dict[str, Any]:
    # The adapters join their files onto the folder they were given, ``root / dataset``, so a file under
    # the root starts with the root as given (absolute or relative to the working directory).
    prefix = f"{root}/"

    def relative(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(prefix):
            return value.removeprefix(prefix)
        if isinstance(value, list):
            return [relative(v) for v in value]
        return value

    return {**{key: relative(value) for key, value in meta.items()}, "source_root": under}


def _with_meta(item: LazySample | Sample, update: MetaUpdate) -> LazySample | Sample:
    """``item`` whose meta, and the meta of the sample it loads, pass through ``update`` (picklable, as
    a `LazySample`'s ``load`` must be)."""
    if isinstance(item, Sample):
        return item.replace(meta=update(item.meta))
    return dataclasses.replace(item, load=partial(_load_with, item.load, update), meta=update(item.meta))


def _load_with(load: Callable[[], Sample], update: MetaUpdate) -> Sample:
    sample = load()
    return sample.replace(meta=update(sample.meta))


def count(splits: dict[str, SampleCollection]) -> dict[str, Any]:
    """Samples per split and task, distinct images and patients/videos per split, class counts, and
    image files whose bytes occur in more than one split (0 after `drop_leaks`: a check)."""
    samples, images, groups, classes = {}, {}, {}, {}
    digests: dict[str, set[str]] = {}
    for split, collection in splits.items():
        items = collection.items
        samples[split] = dict(sorted(Counter(item.task for item in items).items()))
        sources = sorted({item.source for item in items})
        images[split] = len(sources)
        ids = {item.meta.get("patient") or item.meta.get("video") for item in items} - {None}
        groups[split] = len(ids) if ids or not items else None  # None: the dataset identifies no patients
        for i, item in enumerate(items):
            spec = get_task(item.task)
            if spec.type == TaskType.CLASSIFICATION:
                label = getattr(item, "label", None)  # known without decoding for the adapters' class tasks
                label = collection[i].label if label is None else label
                per_task = classes.setdefault(item.task, {}).setdefault(split, Counter())
                per_task[spec.class_names[label]] += 1
        for source in sources:
            digests.setdefault(_digest(source), set()).add(split)
    return {"samples": samples, "images": images, "patients_or_videos": groups,
            "classes": {task: {split: dict(sorted(c.items())) for split, c in per.items()}
                        for task, per in classes.items()},
            "duplicate_images_across_splits": sum(len(s) > 1 for s in digests.values())}


def _digest(path: str) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _describe(source: Source) -> dict[str, Any]:
    return {"title": source.title, "license": source.license, "split_rule": source.split, "traps": list(source.traps)}


def datasheet_markdown(report: dict[str, Any]) -> str:
    """The datasheet as Markdown (what ``DATASHEET.md`` holds)."""
    datasets = report["datasets"]
    tasks = sorted({task for d in datasets.values() for split in d["samples"].values() for task in split})
    lines = ["# Public multi-task ultrasound benchmark: datasheet", "",
             (f"Built by `m2dino data build-public` (seed {report['seed']}, val fraction {report['val_fraction']} "
              "where a dataset has no val split). One FMC_UIA root per split: `train/`, `val/`, `test/`. "
              "Cite the original papers; the licenses are those of the sources."), "",
             "## Sources", "", "| dataset | source | license | split |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {d['title']} | {d['license']} | {d['split_rule']} |" for name, d in datasets.items()]
    lines += ["", "## Samples per dataset, task and split", "",
              "| dataset | task | train | val | test | total |", "|---|---|---:|---:|---:|---:|"]
    totals = Counter()
    for name, d in datasets.items():
        for task in sorted({t for split in d["samples"].values() for t in split}):
            row = [d["samples"][split].get(task, 0) for split in SPLITS]
            totals.update({(task, split): n for split, n in zip(SPLITS, row)})
            lines.append(f"| `{name}` | `{task}` | {' | '.join(map(str, row))} | {sum(row)} |")
    lines += ["", "## Images and patients (or videos) per split", "",
              ("| dataset | images train / val / test | patients or videos train / val / test | "
               "identical image files in two splits |"), "|---|---|---|---:|"]
    for name, d in datasets.items():
        ids = d["patients_or_videos"]
        id_text = " / ".join(str(ids[s]) for s in SPLITS) if None not in ids.values() else "no ids"
        lines.append(f"| `{name}` | {' / '.join(str(d['images'][s]) for s in SPLITS)} | {id_text} | "
                     f"{d['duplicate_images_across_splits']} |")
    lines += ["", "## Tasks", "", "| task | type | group | train | val | test |", "|---|---|---|---:|---:|---:|"]
    for task in tasks:
        spec = get_task(task)
        kind = spec.type.value + ("" if spec.benchmark else ", extra")
        lines.append(f"| `{task}` | {kind} | {spec.group} | "
                     f"{' | '.join(str(totals[task, split]) for split in SPLITS)} |")
    lines += ["", "## Classes (classification tasks)", ""]
    for name, d in datasets.items():
        for task, per_split in d["classes"].items():
            names = sorted({c for counts in per_split.values() for c in counts}, key=get_task(task).class_names.index)
            lines.append(f"- `{task}` ({name}): " + "; ".join(
                f"{c} {' / '.join(str(per_split.get(s, {}).get(c, 0)) for s in SPLITS)}" for c in names)
                + " (train / val / test)")
    lines += ["", "## Known traps", ""]
    for name, d in datasets.items():
        lines += [f"- `{name}`: " + "; ".join(d["traps"]) + "."]
    lines += ["", "## Files left out", ""]
    left_out = [(name, message) for name, d in datasets.items() for message in d["left_out"]]
    lines += [f"- `{name}`: {message}" for name, message in left_out] or ["None."]
    return "\n".join(lines) + "\n"
