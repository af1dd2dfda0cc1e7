"""Unlabelled sources: folders of any common format, FMC roots and adapters with labels ignored,
Hugging Face datasets; held-out images are an error or excluded, never trained on silently."""

import pickle
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from m2dino.data import DataError, read_fmc
from m2dino.data.synthetic import write_synthetic
from m2dino.data.unlabeled import UnlabeledSource

from .helpers import gray, rgb, write_png


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("synthetic")
    return write_synthetic(out, 3, (32, 40), splits=("train", "val"), tasks=["fetal_head", "fetal_plane_cls"])


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "scans"
    write_png(root / "a.png", gray(20, 30, 1))
    (root / "day2" / "deeper").mkdir(parents=True)
    Image.fromarray(rgb(16, 16, 2)).save(root / "day2" / "b.JPG")
    Image.fromarray(gray(10, 12, 3)).save(root / "day2" / "deeper" / "c.bmp")
    write_png(root / ".thumbnails" / "skip.png", gray(4, 4))
    (root / "notes.txt").write_text("not an image")
    return root


def test_a_folder_tree_of_common_formats_decodes_lazily_to_uint8_rgb(tmp_path):
    root = _folder(tmp_path)
    source = UnlabeledSource.from_folder(root)
    assert [Path(s).relative_to(root).as_posix() for s in source.sources] == ["a.png", "day2/b.JPG",
                                                                               "day2/deeper/c.bmp"]
    first = source[0]
    assert first.image.dtype == np.uint8 and first.image.shape == (20, 30, 3)
    assert np.array_equal(first.image[..., 2], gray(20, 30, 1))
    assert source[2].image.shape == (10, 12, 3)
    assert len(UnlabeledSource.from_folder(root, recursive=False)) == 1
    restored = pickle.loads(pickle.dumps(source))  # DataLoader workers receive it pickled
    assert np.array_equal(restored[1].image, source[1].image)
    (root / "a.png").unlink()  # nothing was kept in memory: a vanished file fails on access, named
    with pytest.raises(DataError, match="image file not found: .*a.png"):
        source[0]
    with pytest.raises(DataError, match="no image files"):
        UnlabeledSource.from_folder(root / ".thumbnails" / "..", recursive=False)  # only a.png, now gone


def test_an_fmc_root_gives_each_image_once_without_labels(roots):
    source = UnlabeledSource.from_fmc(roots["train"])
    files = {s.source for s in read_fmc(roots["train"], lazy=True).items}
    assert sorted(source.sources) == sorted(files) and len(source) == len(files)
    image = source[0].image
    assert image.dtype == np.uint8 and image.shape == (32, 40, 3)


def test_held_out_images_are_an_error_naming_them_or_excluded_explicitly(roots, tmp_path):
    val = read_fmc(roots["val"], lazy=True).by_task()
    val_file = Path(val["fetal_head"].entry(0).files[0])
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy(val_file, folder / "renamed_copy.png")  # same bytes, another name
    write_png(folder / "fresh.png", gray(32, 40, 9))
    source = UnlabeledSource.from_folder(folder) + UnlabeledSource.from_fmc(roots["val"])
    with pytest.raises(DataError, match=f"(?s)also validation/test images: .*renamed_copy.png \\(= {val_file}\\)"):
        source.without(val)
    kept = source.without(val, on_overlap="exclude")
    assert [Path(s).name for s in kept.sources] == ["fresh.png"]
    train_only = UnlabeledSource.from_fmc(roots["train"])
    assert train_only.without(val) is train_only


def test_an_adapter_source_ignores_labels_and_checks_overlap(tmp_path):
    src = tmp_path / "thyroid"
    for i in range(3):
        write_png(src / "images" / f"s{i}.png", gray(12, 14, i))
        write_png(src / "masks" / f"s{i}.png", (gray(12, 14, i) > 128).astype(np.uint8))
    source = UnlabeledSource.from_adapter("folder", src, task="thyroid_nodule")
    assert len(source) == 3 and source[1].image.shape == (12, 14, 3)
    with pytest.raises(DataError, match="1 unlabelled image"):
        source.without([src / "images" / "s2.png"])


def test_a_hugging_face_dataset_is_read_and_compared_by_its_encoded_bytes(roots, tmp_path):
    val_files = [e.files[0] for e in read_fmc(roots["val"], lazy=True).items][:2]
    other = write_png(tmp_path / "other.png", gray(8, 8, 5))
    dataset = datasets.Dataset.from_dict({"image": [str(other), *val_files]}).cast_column("image", datasets.Image())
    source = UnlabeledSource.from_hf(dataset)
    assert len(source) == 3 and source[0].image.shape == (8, 8, 3)
    assert len(source.without(val_files, on_overlap="exclude")) == 1
    with pytest.raises(DataError, match="no column 'pixels'"):
        UnlabeledSource.from_hf(dataset, image_column="pixels")


def test_an_fmc_root_keeps_one_copy_of_an_image_that_several_task_folders_hold(roots, tmp_path):
    root = tmp_path / "train"
    shutil.copytree(roots["train"], root)
    files = sorted(UnlabeledSource.from_fmc(root).sources)
    shutil.copy(files[0], files[-1])  # as the FMC layout stores an image once per task that labels it
    shutil.copy(files[0], files[-2])
    kept = set(UnlabeledSource.from_fmc(root).sources)
    assert len(kept) == len(files) - 2 and set(files[1:-2]) <= kept  # one of the three copies stays
    assert len(kept & {files[0], files[-2], files[-1]}) == 1
