"""Tiny copies of the layouts ../shared/data/get_public.sh extracts (PSFHS, POCUS, MMOTU, DDTI):
names and formats exactly as published, contents synthetic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from .helpers import gray, rgb, write_csv, write_png

# --- PSFHS: MetaImage files ----------------------------------------------------------------------

def write_mha(path: Path, array: np.ndarray, compressed: bool = False) -> Path:
    """A one-file MetaImage as PSFHS stores them (header lines, then the raw bytes, x fastest)."""
    import zlib

    data = np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compressed:
        data = zlib.compress(data)
    dims = " ".join(str(n) for n in array.shape[::-1])
    header = (f"ObjectType = Image\nNDims = {array.ndim}\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              f"CompressedData = {compressed}\nDimSize = {dims}\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode() + data)
    return path


def psfhs_label(height: int, width: int, seed: int) -> np.ndarray:
    label = np.zeros((height, width), np.uint8)
    label[2:8, 3 + seed:12 + seed] = 1  # pubic symphysis
    label[12:28, 10:30] = 2  # fetal head
    return label


PSFHS_IDS = ["03744", "03745", "03746", "03747", "03748"]


def write_psfhs(root: Path) -> Path:
    for i, name in enumerate(PSFHS_IDS):
        image = gray(32, 40, seed=i)
        write_mha(root / "image_mha" / f"{name}.mha", np.stack([image] * 3), compressed=i == 1)
        write_mha(root / "label_mha" / f"{name}.mha", psfhs_label(32, 40, i))
    return root


# --- POCUS: frames of videos, published folds ---------------------------------------------------

# class -> {file name: fold}; the Atlas video's three frames are all in fold 0
POCUS_FILES = {"covid": {"Cov-Atlas+(44).gif_frame0.jpg": 0, "Cov-Atlas+(44).gif_frame3.jpg": 0,
                         "Cov-Atlas+(44).gif_frame12.jpg": 0, "Cov_Oliviera_2020_Fig5A.jpg": 2},
               "pneumonia": {"Pneu-grep-bacterial.mp4_frame0.jpg": 1, "Pneu-grep-bacterial.mp4_frame6.jpg": 1,
                             "Pneu_emdocs_1.png": 3},
               "regular": {"Reg-Grep-Normal.mp4_frame0.jpg": 4, "Reg_Avi_normal-A-lines.JPG": 2}}
POCUS_LICENSES = {"Cov-Atlas+(44)": "CC BY-NC 4.0", "Cov_Oliviera_2020_Fig5A": "CC BY 4.0"}


def write_pocus(root: Path) -> Path:
    data = root / "data"
    for c, (category, files) in enumerate(POCUS_FILES.items()):
        for k, (name, fold) in enumerate(files.items()):
            image = Image.fromarray(rgb(24, 28, 10 * c + k))
            if name.endswith(".png"):  # as published: the few PNGs are RGBA with an opaque alpha channel
                image.putalpha(255)
            for path in (data / "image_dataset" / category / name, data / "cross_validation" / f"split{fold}" /
                         category / name):
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(path, format="PNG" if name.endswith(".png") else "JPEG")
    for fold in range(5):  # empty class folders exist too
        (data / "cross_validation" / f"split{fold}" / "regular").mkdir(parents=True, exist_ok=True)
    write_csv(data / "dataset_metadata.csv", ["Date added", "Filename", "Label", "License"],
              [["20.04.20", name, "COVID-19", lic] for name, lic in POCUS_LICENSES.items()])
    return root


# --- MMOTU: colour-coded annotations, official split file ----------------------------------------

# category -> [(image number, official split, lesion box x0, y0, x1, y1)]
MMOTU_IMAGES = {"Chocolate_Cyst": [(10, "train", 4, 4, 12, 10), (11, "train", 5, 5, 9, 9),
                                   (12, "validation", 2, 2, 6, 6)],
                "Ovary_Normal": [(658, "train", 10, 8, 20, 16), (659, "validation", 1, 1, 5, 5)],
                "Teratoma": [(232, "train", 3, 3, 15, 15), (233, "train", 6, 2, 9, 8)],
                "High-grade_Serous_Cystadenoma": [(1426, "validation", 0, 0, 10, 4)]}
MMOTU_COLOURS = {"Chocolate_Cyst": (64, 0, 0), "Ovary_Normal": (64, 64, 64), "Teratoma": (0, 0, 64),
                 "High-grade_Serous_Cystadenoma": (0, 0, 128)}


def mmotu_annotation(height: int, width: int, box: tuple[int, int, int, int], colour: tuple[int, int, int]):
    x0, y0, x1, y1 = box
    annotation = np.zeros((height, width, 3), np.uint8)
    annotation[y0:y1, x0:x1] = colour
    return annotation


def write_mmotu(root: Path) -> Path:
    records = []
    for category, images in MMOTU_IMAGES.items():
        for number, split, *box in images:
            Image.fromarray(rgb(20, 24, number)).save(
                _mkdir(root / category / "images") / f"{number}.JPG", format="JPEG")
            write_png(root / category / "annotations" / f"{number}.PNG",
                      mmotu_annotation(20, 24, tuple(box), MMOTU_COLOURS[category]))
            records.append({"file_path_img": f"OTU_2D/8_layers/{category}/images/{number}.JPG",
                            "file_path_ann": f"OTU_2D/8_layers/{category}/annotations/{number}.PNG",
                            "split": split})
    (root / "OTU_2D_8-layers.json").write_text(json.dumps(records, indent=4))
    return root


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- DDTI: crops, GIF masks, headerless diagnosis.csv --------------------------------------------

# id -> (TI-RADS, nodule box); cases 100 (two nodules of one image), 101, 102 and 139
DDTI_CROPS = {"100_1(1)": ("4a", (2, 2, 10, 9)), "100_1(2)": ("4a", (12, 12, 20, 18)),
              "101_1": ("5", (5, 4, 15, 14)), "102_1": ("None", (3, 6, 9, 12)), "102_2": ("None", (1, 1, 4, 4)),
              "139_1": ("2", (6, 6, 18, 16))}


def write_ddti(root: Path) -> Path:
    rows = []
    for i, (name, (tirads, (x0, y0, x1, y1))) in enumerate(DDTI_CROPS.items()):
        write_png(root / "cropped" / f"{name}.png", gray(24, 24, i))
        mask = np.zeros((24, 24), np.uint8)
        mask[y0:y1, x0:x1] = 255
        _mkdir(root / "mask")
        Image.fromarray(mask).save(root / "mask" / f"{name}.gif")
        rows.append([name, tirads, "" if tirads == "None" else int(tirads not in ("2", "3"))])
    rows.append(["362_1(1)", "4b", 1])  # as published: a row without a crop
    (root / "diagnosis.csv").write_text("".join(",".join(map(str, row)) + "\r\n" for row in rows))
    return root
