"""`m2dino data build-public` on tiny copies of all eight published layouts."""

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from m2dino.cli.main import main
from m2dino.data import DataError, MissingFileError, read_fmc
from m2dino.data.adapters import load_dataset
from m2dino.data.adapters.build_public import SOURCES, build_public, carve_val, drop_leaks, load_splits

from .helpers import gray, write_png
from .layouts import write_african_planes, write_busi, write_hc18, write_usgra
from .layouts_public import write_ddti, write_mmotu, write_pocus, write_psfhs

SHARED = {"hc18": write_hc18, "african_planes": write_african_planes, "usgra": write_usgra}
EXTRACTED = {"busi": write_busi, "psfhs": write_psfhs, "pocus": write_pocus, "mmotu": write_mmotu, "ddti": write_ddti}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("public")
    for name, write in {**SHARED, **EXTRACTED}.items():
        write(root / ("shared" if name in SHARED else "src") / name)
    ddti = root / "src" / "ddti"  # a crop whose mask lost its nodule, as 7 published ones
    write_png(ddti / "cropped" / "205_1.png", gray(24, 24))
    write_png(ddti / "mask" / "205_1.gif", np.zeros((24, 24), np.uint8))
    with (ddti / "diagnosis.csv").open("a") as handle:
        handle.write("205_1,3,0\r\n")
    # The layouts' test images repeat their train images byte for byte; keep that for one African test
    # image (a leak, as 22 published ones) and make the others distinct.
    write_png(root / "shared" / "african_planes" / "african_test" / "patient054_MWI_plane0.png", gray(32, 36, 60))
    for i, name in enumerate(["0009", "0017"]):
        write_png(root / "shared" / "usgra" / "test" / "images" / f"{name}.png", gray(32, 40, 70 + i))
    return root / "src", root / "shared"


@pytest.fixture(scope="module")
def built(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "out"
    with pytest.warns(UserWarning, match="205_1.gif: empty nodule mask|patient053_GHA_plane3.png: the same file"):
        return out, build_public(*folders, out, progress=False)


@pytest.mark.filterwarnings("ignore:.*empty nodule mask")
def test_every_dataset_and_task_lands_in_one_fmc_root_per_split(folders, built):
    out, report = built
    assert [s.name for s in SOURCES] == list(report["datasets"]) and len(SOURCES) == 8
    written = {split: read_fmc(out / split) for split in ("train", "val", "test")}
    tasks = {s.task for samples in written.values() for s in samples}
    assert tasks == {"fetal_head", "fetal_head_det", "fetal_head_axis", "fetal_head_circumference",
                     "fetal_plane_cls", "head_symphysis_multi", "breast_lesion", "breast_3cls", "breast_lesion_det",
                     "thyroid_nodule", "thyroid_nodule_det", "thyroid_tirads_cls", "lung_disease_3cls",
                     "ovary_tumor", "ovary_tumor_cls", "nerve_vessel_seg"}
    for split, samples in written.items():
        assert {s.meta["split"] for s in samples} == {split}
        found = Counter((s.meta["dataset"], s.task) for s in samples)
        expected = Counter({(name, task): n for name, d in report["datasets"].items()
                            for task, n in d["samples"][split].items()})
        assert found == expected  # the datasheet's counts are what was written
    # what each adapter gives is written whole, but for leaks: the same number of samples per dataset
    src, shared = folders
    for name in {**SHARED, **EXTRACTED}:
        loaded, _ = drop_leaks(load_splits(name, (shared if name in SHARED else src) / name, seed=0,
                                           val_fraction=0.1))
        assert sum(len(c) for c in loaded.values()) == sum(sum(d.values()) for d in report["datasets"][name]
                                                           ["samples"].values())


def test_published_splits_are_kept_and_val_is_carved_by_patient(folders, built):
    out, report = built
    pocus = report["datasets"]["pocus"]
    assert pocus["samples"] == {"train": {"lung_disease_3cls": 4}, "val": {"lung_disease_3cls": 2},
                                "test": {"lung_disease_3cls": 3}}
    assert pocus["patients_or_videos"] == {"train": 4, "val": 1, "test": 1}
    assert pocus["classes"]["lung_disease_3cls"]["test"] == {"covid": 3}
    african = report["datasets"]["african_planes"]
    # 10 % of the 2 train patients (Algeria:7 with 2 images, Egypt:7) rounds to none: val stays empty
    assert african["images"] == {"train": 3, "val": 0, "test": 1}  # one test image leaked from train
    assert african["patients_or_videos"] == {"train": 2, "val": 0, "test": 1}
    assert african["left_out"] == [("african_test/patient053_GHA_plane3.png: the same file as "
                                    "african_train/patient007_DZA_plane2.png (train); left out of test")]
    assert report["datasets"]["usgra"]["patients_or_videos"] == {"train": None, "val": 0, "test": None}
    assert all(d["duplicate_images_across_splits"] == 0 for d in report["datasets"].values())
    hc18 = report["datasets"]["hc18"]  # 9 images of 8 patients (010 has two), 80/10/10 by patient
    assert hc18["patients_or_videos"] == {"train": 6, "val": 1, "test": 1}
    assert sum(hc18["images"].values()) == 9 and hc18["samples"]["train"]["fetal_head_circumference"] >= 6
    mmotu_test = {s.meta["name"] for s in read_fmc(out / "test") if s.meta["dataset"] == "mmotu"}
    assert mmotu_test == {"12", "1426", "659"}


def test_datasheet_lists_sources_counts_and_traps(built):
    out, report = built
    assert json.loads((out / "datasheet.json").read_text()) == report
    text = (out / "DATASHEET.md").read_text()
    for source in SOURCES:
        assert source.title in text and source.traps[0] in text
    ddti = report["datasets"]["ddti"]["samples"]
    row = [ddti[split].get("thyroid_tirads_cls", 0) for split in ("train", "val", "test")]
    assert f"| `ddti` | `thyroid_tirads_cls` | {' | '.join(map(str, row))} | 4 |" in text
    assert "| `thyroid_tirads_cls` | classification, extra | thyroid_neck |" in text
    left_out = report["datasets"]["ddti"]["left_out"]
    assert left_out == ["mask/205_1.gif: empty nodule mask; crop 205_1.png left out"]  # relative to the dataset
    assert text.endswith(f"left out of test\n- `ddti`: {left_out[0]}\n") and "\n## Files left out\n\n- `african" in text


def written_meta(out: Path) -> list[dict]:
    """Every row's meta as the CSVs hold it (`read_fmc` would add its own keys, the CSV's path among them)."""
    rows = []
    for csv_file in sorted(out.glob("*/csv_files/*.csv")):
        with csv_file.open(newline="") as handle:
            rows += [json.loads(row["meta"]) for row in csv.DictReader(handle)]
    return rows


def source_files(row: dict) -> list[str]:
    return [f for key in ("annotation_file", "mask_file", "mask_files") for f in
            ([row[key]] if isinstance(row.get(key), str) else row.get(key, []))]


def test_meta_names_source_files_relative_to_src_or_shared(folders, built):
    out, _ = built
    rows, roots = written_meta(out), dict(zip(("src", "shared"), folders))
    assert str(folders[0].parent) not in json.dumps(rows)  # no path of this machine
    under = {s.name: s.under for s in SOURCES}
    assert all(row["source_root"] == under[row["dataset"]] for row in rows)
    files = [(row["source_root"], f) for row in rows for f in source_files(row)]
    assert {row["dataset"] for row in rows if source_files(row)} == {"hc18", "usgra", "busi", "psfhs", "mmotu",
                                                                       "ddti"}
    assert all(not Path(f).is_absolute() and (roots[root] / f).is_file() for root, f in files)
    assert ("shared", "hc18/training_set/001_HC_Annotation.png") in files


def test_meta_is_relative_to_src_and_shared_given_relative(folders, tmp_path, monkeypatch):
    monkeypatch.chdir(folders[0].parent)
    build_public("src", "shared", tmp_path / "out", datasets=["hc18", "busi"], progress=False)
    files = {(row["source_root"], f) for row in written_meta(tmp_path / "out") for f in source_files(row)}
    assert ("shared", "hc18/training_set/001_HC_Annotation.png") in files
    assert all(Path(root, f).is_file() for root, f in files) and {root for root, _ in files} == {"src", "shared"}


def test_carve_val_moves_whole_patients_and_relabels_their_split(tmp_path):
    train = load_dataset("african_planes", write_african_planes(tmp_path))["train"]
    for seed in range(4):
        parts = carve_val(train, 0.5, seed)
        patients = {split: {i.meta["patient"] for i in c.items} for split, c in parts.items()}
        assert len(parts["train"]) + len(parts["val"]) == 3 and not patients["train"] & patients["val"]
        assert all(s.meta["split"] == "val" for s in parts["val"]) and len(parts["val"]) >= 1
        assert all(s.meta["split"] == "train" for s in parts["train"])


@pytest.mark.filterwarnings("ignore:.*empty nodule mask")
def test_build_public_errors_and_cli(folders, tmp_path, capsys):
    src, shared = folders
    with pytest.raises(MissingFileError, match=r"hc18: folder not found: .*nowhere/hc18; expected it in the folder "
                                               r"holding hc18"):
        build_public(src, tmp_path / "nowhere", tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="unknown dataset.s. camus; expected some of hc18"):
        build_public(src, shared, tmp_path / "out", datasets=["camus"], progress=False)
    args = ["data", "build-public", "--src", str(src), "--shared", str(shared), str(tmp_path / "out"),
            "--datasets", "usgra", "ddti"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "usgra: train " in out and "ddti: train " in out and "DATASHEET.md" in out
    assert {s.meta["dataset"] for s in read_fmc(tmp_path / "out" / "train")} == {"usgra", "ddti"}
    assert main(args) == 2  # no silent overwrite
    assert "exists; pass overwrite=True" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    image = read_fmc(tmp_path / "out" / "test", tasks=["nerve_vessel_seg"])[0]
    original = {s.meta["name"]: s for s in load_dataset("usgra", shared / "usgra")["test"]}[image.meta["name"]]
    assert np.array_equal(image.image, original.image) and np.array_equal(image.label, original.label)
