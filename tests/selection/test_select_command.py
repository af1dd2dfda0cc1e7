"""`m2dino select` end to end with a tiny random model on a folder of synthetic scans, and every
error it reports."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from m2dino import M2DINO, M2DINOConfig
from m2dino.cli.main import main

TASKS = ["fetal_head", "breast_2cls", "fetal_head_det", "fetal_femur"]  # mask, class, boxes, keypoints
POOL_SIZE = 7


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    M2DINO(M2DINOConfig(backbone="test", tasks=TASKS, image_size=32, decoder_features=8)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("pool")
    for i in range(POOL_SIZE):  # different sizes, gray and RGB
        shape = (30 + 3 * i, 40) if i % 2 else (36, 30 + 2 * i, 3)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(folder / f"scan{i}.png")
    return folder


def select(model_dir, pool, out, *extra):
    return main(["select", "--model", str(model_dir), "--pool", str(pool), "--out", str(out), "--device", "cpu",
                 "--quiet", "--batch-size", "3", *extra])


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("strategy, task, features", [
    ("random", "fetal_head", "pixels"), ("entropy", "fetal_head", "pixels"), ("entropy", "breast_2cls", "pixels"),
    ("entropy", "fetal_head_det", "pixels"), ("entropy", "fetal_femur", "pixels"), ("egad", "fetal_head", "pixels"),
    ("egad", "breast_2cls", "backbone"), ("coreset", "fetal_femur", "pixels"), ("coreset", "fetal_head", "backbone"),
])
def test_every_strategy_writes_budget_ranked_rows_without_the_labelled_images(
        model_dir, pool, tmp_path, capsys, strategy, task, features):
    labelled = tmp_path / "labelled.txt"
    labelled.write_text("scan0.png\nscan3.png\n")
    out = tmp_path / "picked.csv"
    assert select(model_dir, pool, out, "--labelled", str(labelled), "--budget", "3", "--strategy", strategy,
                  "--task", task, "--features", features) == 0
    assert f"picked 3 of {POOL_SIZE} images ({strategy})" in capsys.readouterr().out
    picked = rows(out)
    assert list(picked[0]) == ["image", "score", "rank", "strategy"]
    assert [r["rank"] for r in picked] == ["1", "2", "3"] and {r["strategy"] for r in picked} == {strategy}
    names = [r["image"].rsplit("/", 1)[-1] for r in picked]
    assert len(set(names)) == 3 and not {"scan0.png", "scan3.png"} & set(names)
    scores = [float(r["score"]) for r in picked]
    assert all(np.isfinite(scores))
    if strategy != "coreset":  # core-set scores are distances at pick time, not a ranking key
        assert scores == sorted(scores, reverse=True)


def test_same_seed_same_csv_and_the_seed_matters(model_dir, pool, tmp_path):
    outputs = []
    for seed in ("1", "1", "2"):
        out = tmp_path / f"picked_{len(outputs)}.csv"
        select(model_dir, pool, out, "--budget", "4", "--strategy", "random", "--task", "fetal_head",
               "--seed", seed)
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1] and outputs[0] != outputs[2]
    first, again = (tmp_path / "e1.csv"), (tmp_path / "e2.csv")
    for out in (first, again):
        select(model_dir, pool, out, "--budget", "2", "--strategy", "coreset", "--features", "backbone",
               "--task", "fetal_head")
    assert first.read_text() == again.read_text()


def test_an_earlier_pick_is_a_labelled_list_for_the_next_round(model_dir, pool, tmp_path):
    first, second = tmp_path / "round1.csv", tmp_path / "round2.csv"
    select(model_dir, pool, first, "--budget", "3", "--strategy", "entropy", "--task", "fetal_head")
    select(model_dir, pool, second, "--budget", "4", "--strategy", "egad", "--task", "fetal_head",
           "--labelled", str(first))
    assert {r["image"] for r in rows(first)} | {r["image"] for r in rows(second)} == {
        str(pool / f"scan{i}.png") for i in range(POOL_SIZE)}


def error_of(capsys, *argv):
    assert main(list(argv)) == 2
    return capsys.readouterr().err.strip()


def test_budget_larger_than_the_pool(model_dir, pool, tmp_path, capsys):
    labelled = tmp_path / "labelled.txt"
    labelled.write_text("scan1.png\n")
    err = error_of(capsys, "select", "--model", str(model_dir), "--pool", str(pool), "--budget", "7",
                   "--labelled", str(labelled), "--strategy", "random", "--task", "fetal_head",
                   "--out", str(tmp_path / "p.csv"))
    assert err == (f"m2dino select: error: budget 7 is larger than the pool: folder {pool} has 6 unlabelled "
                   f"image(s) (1 of its 7 images already labelled)")
    assert not (tmp_path / "p.csv").exists()


def test_budget_below_one(model_dir, pool, tmp_path, capsys):
    err = error_of(capsys, "select", "--model", str(model_dir), "--pool", str(pool), "--budget", "0",
                   "--strategy", "random", "--task", "fetal_head", "--out", str(tmp_path / "p.csv"))
    assert err == "m2dino select: error: budget 0; expected at least 1 image to pick"


def test_labelled_files_absent_from_the_pool_are_named(model_dir, pool, tmp_path, capsys):
    labelled = tmp_path / "labelled.txt"
    labelled.write_text("scan1.png\nscan99.png\nother/scan2.png\n")
    err = error_of(capsys, "select", "--model", str(model_dir), "--pool", str(pool), "--budget", "1",
                   "--labelled", str(labelled), "--strategy", "random", "--task", "fetal_head",
                   "--out", str(tmp_path / "p.csv"))
    assert err == (f"m2dino select: error: {labelled}: 2 labelled image(s) are not in the pool {pool}: "
                   "scan99.png, other/scan2.png")


def test_a_task_the_model_lacks_names_the_model_tasks(model_dir, pool, tmp_path, capsys):
    err = error_of(capsys, "select", "--model", str(model_dir), "--pool", str(pool), "--budget", "1",
                   "--strategy", "entropy", "--task", "fetal_heart", "--out", str(tmp_path / "p.csv"))
    assert err == ("m2dino select: error: task 'fetal_heart' is not one of this model's 4 tasks: "
                   "fetal_head, breast_2cls, fetal_head_det, fetal_femur")


def test_an_unknown_task_id_gets_the_registry_suggestions(model_dir, pool, tmp_path, capsys):
    err = error_of(capsys, "select", "--model", str(model_dir), "--pool", str(pool), "--budget", "1",
                   "--strategy", "entropy", "--task", "fetal_abdomen", "--out", str(tmp_path / "p.csv"))
    assert err.startswith("m2dino select: error: unknown task id 'fetal_abdomen'; closest known ids: ")
    assert "\n" not in err


def test_a_multi_task_model_needs_a_task(model_dir, pool, tmp_path, capsys):
    err = error_of(capsys, "select", "--model", str(model_dir), "--pool", str(pool), "--budget", "1",
                   "--strategy", "entropy", "--out", str(tmp_path / "p.csv"))
    assert err == ("m2dino select: error: the model has 4 tasks (fetal_head, breast_2cls, fetal_head_det, "
                   "fetal_femur): choose one with --task")


def test_egad_without_labelled_images(model_dir, pool, tmp_path, capsys):
    err = error_of(capsys, "select", "--model", str(model_dir), "--pool", str(pool), "--budget", "1",
                   "--strategy", "egad", "--task", "fetal_head", "--out", str(tmp_path / "p.csv"))
    assert err == ("m2dino select: error: strategy 'egad' compares the pool against the labelled images: "
                   "give them with --labelled (a folder or a list of pool files)")


def test_missing_pool_folder(model_dir, tmp_path, capsys):
    err = error_of(capsys, "select", "--model", str(model_dir), "--pool", str(tmp_path / "nowhere"), "--budget", "1",
                   "--strategy", "random", "--out", str(tmp_path / "p.csv"))
    assert err == f"m2dino select: error: unlabelled image folder not found: {tmp_path / 'nowhere'}"


def test_unknown_strategy_is_an_argparse_error(model_dir, pool, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["select", "--model", str(model_dir), "--pool", str(pool), "--budget", "1", "--strategy", "badge",
              "--out", str(tmp_path / "p.csv")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.replace("'", "")  # Python versions differ in quoting the choices
    assert "argument --strategy: invalid choice: badge (choose from random, entropy, egad, coreset)" in err


def test_a_scalar_task_has_no_entropy_but_coreset_works(pool, tmp_path, capsys):
    folder = tmp_path / "scalar_model"
    M2DINO(M2DINOConfig(backbone="test", tasks=["fetal_head_circumference"], image_size=32,
                        decoder_features=8)).save_pretrained(folder)
    err = error_of(capsys, "select", "--model", str(folder), "--pool", str(pool), "--budget", "1", "--quiet",
                   "--strategy", "entropy", "--out", str(tmp_path / "p.csv"))
    assert err == ("m2dino select: error: task 'fetal_head_circumference' predicts a scalar measurement: its head "
                   "gives a point estimate with no predictive distribution, so it has no entropy; use --strategy "
                   "random or coreset")
    assert select(folder, pool, tmp_path / "c.csv", "--budget", "2", "--strategy", "coreset",
                  "--features", "backbone") == 0
    assert len(rows(tmp_path / "c.csv")) == 2


def test_a_labelled_folder_outside_the_pool_is_compared_against(model_dir, pool, tmp_path):
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    (labelled / "copy_of_scan2.png").write_bytes((pool / "scan2.png").read_bytes())  # = a pool image
    Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(labelled / "dark.png")  # not in the pool
    out = tmp_path / "picked.csv"
    assert select(model_dir, pool, out, "--labelled", str(labelled), "--budget", str(POOL_SIZE - 1),
                  "--strategy", "egad", "--task", "fetal_head") == 0
    assert str(pool / "scan2.png") not in {r["image"] for r in rows(out)} and len(rows(out)) == POOL_SIZE - 1


def test_the_library_call_keeps_the_model_mode_and_is_deterministic(model_dir, pool):
    from m2dino.data.unlabeled import UnlabeledSource
    from m2dino.selection import SelectionConfig
    from m2dino.selection import select as select_images

    model = M2DINO.from_pretrained(model_dir).train()
    source = UnlabeledSource.from_folder(pool)
    config = SelectionConfig("entropy", 3, task="fetal_head_det", batch_size=2)
    first = select_images(model, source, config)
    assert model.training
    assert select_images(model, source, config) == first and [p.rank for p in first] == [1, 2, 3]
