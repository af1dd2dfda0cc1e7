"""The labelled images as a list of pool files or as a folder, matched against the pool."""

import numpy as np
import pytest
from PIL import Image

from m2dino.data.errors import DataError, MissingFileError
from m2dino.data.unlabeled import UnlabeledSource
from m2dino.selection.labelled import read_labelled


@pytest.fixture
def pool(tmp_path):
    root = tmp_path / "pool"
    (root / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.png", "sub/c.png"]):
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(root / name)
    return root, UnlabeledSource.from_folder(root)


def test_text_list_relative_to_the_pool_or_as_given(pool, tmp_path, monkeypatch):
    root, source = pool
    monkeypatch.chdir(tmp_path)
    listing = tmp_path / "done.txt"
    listing.write_text("# labelled so far\nsub/c.png\n\npool/a.png\n")  # pool-relative, then cwd-relative
    labelled = read_labelled(listing, source, root)
    assert labelled.in_pool == {0, 2} and labelled.outside is None


def test_csv_list_reads_the_image_column_of_an_earlier_pick(pool, tmp_path):
    root, source = pool
    picked = tmp_path / "picked.csv"
    picked.write_text(f"image,score,rank,strategy\n{root / 'b.png'},0.5,1,entropy\n")
    assert read_labelled(picked, source, root).in_pool == {1}


def test_list_naming_files_absent_from_the_pool_names_them(pool, tmp_path):
    root, source = pool
    listing = tmp_path / "done.txt"
    listing.write_text("a.png\nmissing1.png\nelsewhere/x.png\n")
    with pytest.raises(DataError, match=rf"done.txt: 2 labelled image\(s\) are not in the pool {root}: "
                                        r"missing1.png, elsewhere/x.png$"):
        read_labelled(listing, source, root)


def test_empty_list_and_missing_path(pool, tmp_path):
    root, source = pool
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    with pytest.raises(DataError, match="empty.txt: the labelled list names no images"):
        read_labelled(tmp_path / "empty.txt", source, root)
    with pytest.raises(MissingFileError, match="labelled list or folder not found: .*nope.txt"):
        read_labelled(tmp_path / "nope.txt", source, root)


def test_folder_inside_the_pool_and_outside_it(pool, tmp_path):
    root, source = pool
    inside = read_labelled(root / "sub", source, root)
    assert inside.in_pool == {2} and inside.outside is None
    outside_dir = tmp_path / "labelled"
    outside_dir.mkdir()
    (outside_dir / "b_again.png").write_bytes((root / "b.png").read_bytes())  # same bytes: that pool image
    Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(outside_dir / "new.png")
    labelled = read_labelled(outside_dir, source, root)
    assert labelled.in_pool == {1}
    assert labelled.outside.sources == [str(outside_dir / "new.png")]  # read for its features
