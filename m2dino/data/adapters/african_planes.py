"""African fetal standard planes (Sendra-Balcells et al. 2023; Zenodo 7540448), published layout::

    <src>/african_train/African_train.csv   Patient_num,Plane,Train,Center,Image_name
    <src>/african_train/<Image_name>.png
    <src>/african_test/African_test.csv
    <src>/african_test/<Image_name>.png

Gives ``fetal_plane_cls`` samples (4 of its 6 classes) in the published train/test split; the
country (``Center``), patient and original plane name are kept in ``meta``. Patient numbers
restart in each country, so the patient id is ``"<country>:<Patient_num>"``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ...tasks import get_task
from ..collection import LazySample, SampleCollection
from ..csv_io import cell, read_csv_rows
from ..errors import DataError, MissingFileError, location
from .common import labelled_sample, require_dir

NAME = "african_planes"
TASKS = ("fetal_plane_cls",)
PLANES = {"Fetal abdomen": "fetal_abdomen", "Fetal brain": "fetal_brain", "Fetal femur": "fetal_femur",
          "Fetal thorax": "fetal_thorax"}
CSV_COLUMNS = ("Patient_num", "Plane", "Train", "Center", "Image_name")
# split -> (folder, CSV, value of the CSV's Train column)
SPLITS = {"train": ("african_train", "African_train.csv", "1"), "test": ("african_test", "African_test.csv", "0")}
LAYOUT = "African planes layout: african_{train,test}/African_{train,test}.csv and the PNGs beside them"


def load(src: str | Path) -> dict[str, SampleCollection]:
    """``{"train", "test"}`` -> lazy ``fetal_plane_cls`` samples, in CSV order."""
    src = Path(src)
    class_names = get_task("fetal_plane_cls").class_names
    out = {}
    for split, (folder_name, csv_name, train_flag) in SPLITS.items():
        folder = require_dir(src / folder_name, LAYOUT)
        csv_file = folder / csv_name
        items = []
        for number, row in read_csv_rows(csv_file, CSV_COLUMNS):
            where = location(csv_file, number)
            plane = cell(row, "Plane", where)
            if plane not in PLANES:
                raise DataError(f"{where}: Plane {plane!r}; expected one of {', '.join(PLANES)}")
            if cell(row, "Train", where) != train_flag:
                raise DataError(f"{where}: Train = {row['Train']!r} in the {split} folder; expected {train_flag!r}")
            name = cell(row, "Image_name", where)
            image_file = folder / (name if Path(name).suffix else f"{name}.png")
            if not image_file.is_file():
                raise MissingFileError(f"{where}: image file not found: {image_file}")
            country = cell(row, "Center", where)
            meta = {"dataset": NAME, "split": split, "country": country,
                    "patient": f"{country}:{cell(row, 'Patient_num', where)}", "plane": plane,
                    "name": image_file.stem}
            label = class_names.index(PLANES[plane])
            items.append(LazySample("fetal_plane_cls", str(image_file),
                                    partial(labelled_sample, image_file, "fetal_plane_cls", label, meta), meta,
                                    files=(str(image_file),), label=label))
        if not items:
            raise DataError(f"{csv_file}: empty dataset (no rows)")
        out[split] = SampleCollection(items)
    return out
