"""Tiny copies of the public datasets' layouts, written by the tests (names and formats exactly as
published; contents synthetic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .helpers import gray, rgb, write_csv, write_png

# HC18: (file name, centre x, centre y, semi-axis a, semi-axis b, angle); 010 and 010_2 are one patient.
HC18_HEADS = [("000_HC.png", 40, 30, 22, 15, 0.3), ("001_HC.png", 38, 32, 20, 16, -0.5),
              ("002_HC.png", 42, 28, 18, 12, 1.2), ("003_HC.png", 40, 30, 24, 18, 0.0),
              ("004_HC.png", 41, 31, 21, 14, 2.0), ("005_HC.png", 39, 29, 19, 15, -1.0),
              ("010_HC.png", 40, 30, 22, 17, 0.7), ("010_2HC.png", 40, 30, 23, 16, 0.8),
              ("014_HC.png", 40, 44, 25, 20, 0.2)]  # 014 leaves the image at the bottom: open contour
HC18_SIZE = (60, 80)
HC18_PIXEL_MM = 0.1


def draw_contour(height: int, width: int, cx: float, cy: float, a: float, b: float, angle: float) -> np.ndarray:
    """A closed 1-px (8-connected) ellipse contour, 255 on 0, as HC18 annotations are drawn."""
    t = np.linspace(0, 2 * np.pi, 20000)
    x = cx + a * np.cos(t) * np.cos(angle) - b * np.sin(t) * np.sin(angle)
    y = cy + a * np.cos(t) * np.sin(angle) + b * np.sin(t) * np.cos(angle)
    out = np.zeros((height, width), np.uint8)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    out[y[inside].astype(int), x[inside].astype(int)] = 255
    return out


def write_hc18(root: Path) -> Path:
    rows = []
    for i, (name, cx, cy, a, b, angle) in enumerate(HC18_HEADS):
        write_png(root / "training_set" / name, gray(*HC18_SIZE, seed=i))
        write_png(root / "training_set" / name.replace("HC.png", "HC_Annotation.png"),
                  draw_contour(*HC18_SIZE, cx, cy, a, b, angle))
        rows.append([name, HC18_PIXEL_MM, round(100 + i * 10.5, 2)])
    write_csv(root / "training_set_pixel_size_and_HC.csv", ["filename", "pixel size(mm)", "head circumference (mm)"],
              rows)
    return root


AFRICAN_ROWS = {"train": [(7, "Fetal femur", "Algeria", "patient007_DZA_plane2"),
                          (7, "Fetal brain", "Algeria", "patient007_DZA_plane1"),
                          (7, "Fetal abdomen", "Egypt", "patient007_EGY_plane0")],
                "test": [(53, "Fetal thorax", "Ghana", "patient053_GHA_plane3"),
                         (54, "Fetal abdomen", "Malawi", "patient054_MWI_plane0")]}


def write_african_planes(root: Path) -> Path:
    for split, rows in AFRICAN_ROWS.items():
        folder = root / f"african_{split}"
        for i, (_, _, _, name) in enumerate(rows):
            write_png(folder / f"{name}.png", rgb(30, 40, i) if i == 0 else gray(32, 36, i))
        write_csv(folder / f"African_{split}.csv", ["Patient_num", "Plane", "Train", "Center", "Image_name"],
                  [[p, plane, int(split == "train"), center, name] for p, plane, center, name in rows])
    return root


def palette_mask(array: np.ndarray) -> Image.Image:
    image = Image.fromarray(array.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (256 * 3 - 12))  # VOC colours, as USGRA
    return image


def usgra_mask(height: int, width: int, seed: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[5:12, 5 + seed:15 + seed] = 1
    mask[20:26, 20:30] = 2 if seed % 2 == 0 else 0
    return mask


def write_usgra(root: Path) -> Path:
    for folder, names in (("", ["0000", "0001", "0004"]), ("test/", ["0009", "0017"])):
        for i, name in enumerate(names):
            write_png(root / f"{folder}images" / f"{name}.png", gray(32, 40, i))
            (root / f"{folder}masks").mkdir(parents=True, exist_ok=True)
            palette_mask(usgra_mask(32, 40, i)).save(root / f"{folder}masks" / f"{name}.png")
    return root


def busi_mask(height: int, width: int, box: tuple[int, int, int, int] | None) -> np.ndarray:
    mask = np.zeros((height, width, 3), np.uint8)  # BUSI masks are 0/255, some stored as RGB
    if box:
        x0, y0, x1, y1 = box
        mask[y0:y1, x0:x1] = 255
    return mask


BUSI_IMAGES = {"benign": {"benign (1)": [(2, 3, 10, 8)], "benign (2)": [(2, 2, 6, 6), (20, 15, 25, 22)]},
               "malignant": {"malignant (1)": [(5, 5, 15, 20)]},
               "normal": {"normal (1)": [None], "normal (2)": [None]}}


def write_busi(root: Path) -> Path:
    base = root / "Dataset_BUSI_with_GT"
    for i, (category, images) in enumerate(BUSI_IMAGES.items()):
        for j, (name, boxes) in enumerate(images.items()):
            write_png(base / category / f"{name}.png", rgb(28, 32, 10 * i + j))
            for k, box in enumerate(boxes):
                suffix = "_mask" if k == 0 else f"_mask_{k}"
                write_png(base / category / f"{name}{suffix}.png", busi_mask(28, 32, box))
    return root
