"""The few-labels flags of the recipes: --semi, --unlabeled rest, --train-images, --two-stage-steps."""

import json

import pytest
import torch

from m2dino import M2DINO
from m2dino.data.synthetic import write_synthetic
from m2dino.recipes import semi_supervised, unified
from m2dino.recipes.flags import cli_main
from m2dino.training.checkpoint import latest_checkpoint, read_state

TINY = ["--backbone", "test", "--image-size", "32", "--batch-size", "2", "--steps", "3", "--eval-every", "3",
        "--decoder-features", "8", "--warmup-steps", "1", "--no-progress", "--num-workers", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("fmc"), per_task=8, image_size=48,
                           tasks=["fetal_head", "fetal_plane_cls"])


def test_unified_recipe_with_unlabelled_rest_of_a_fraction(roots, tmp_path):
    out = tmp_path / "run"
    unified.main(TINY + ["--data", str(roots["train"]), "--val-data", str(roots["val"]), "--data-fraction", "0.5",
                         "--unlabeled", "rest", "--semi", "fixmatch", "--semi-threshold", "0", "--log-every", "1",
                         "--output-dir", str(out)])
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all("unlabeled_loss" in r for r in steps if "loss" in r)
    assert M2DINO.from_pretrained(out).config.training["steps"] == 3
    saved = read_state(latest_checkpoint(out / "checkpoints"))["configuration"]["train"]
    assert saved["semi"]["method"] == "fixmatch" and saved["semi"]["threshold"] == 0.0


def test_two_stage_relearns_only_the_classification_heads(roots, tmp_path):
    out = tmp_path / "run"
    semi_supervised.main(TINY + ["--data", str(roots["train"]), "--val-data", str(roots["val"]),
                                 "--data-fraction", "0.5", "--unlabeled", "rest", "--semi", "mean-teacher",
                                 "--two-stage-steps", "2", "--output-dir", str(out)])
    first, second = M2DINO.from_pretrained(out), M2DINO.from_pretrained(out / "stage2")
    a, b = first.state_dict(), second.state_dict()
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and all(k.startswith("heads.fetal_plane_cls.") for k in changed)
    rows = json.loads((out / "summary.json").read_text())
    assert {r["task"] for r in rows if r["value"] is not None} == {"fetal_head", "fetal_plane_cls"}


@pytest.mark.parametrize("flags, message", [
    (["--semi", "fixmatch"], "needs both --semi METHOD and --unlabeled SRC"),
    (["--unlabeled", "rest", "--semi", "cps"], "--unlabeled rest: no training images were left out"),
    (["--train-images", "LIST", "--unlabeled", "rest", "--semi", "cps"],
     r"--train-images .*list.txt: 1 listed image\(s\) are not training images of .*: /nowhere/scan.png"),
    (["--unlabeled", "/no/such/folder", "--semi", "fixmatch", "--data-fraction", "0.5"],
     "unlabelled image folder not found: /no/such/folder"),
])
def test_bad_few_label_flags_are_one_clear_error(roots, tmp_path, capsys, flags, message):
    listed = tmp_path / "list.txt"
    listed.write_text(f"{next((roots['train'] / 'Segmentation').rglob('*.png'))}\n/nowhere/scan.png\n")
    flags = [str(listed) if f == "LIST" else f for f in flags]
    status = cli_main(semi_supervised.main, TINY + ["--data", str(roots["train"]), "--val-data", str(roots["val"]),
                                                    "--output-dir", str(tmp_path / "run")] + flags)
    assert status == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(Exception, match=message):
        semi_supervised.main(TINY + ["--data", str(roots["train"]), "--val-data", str(roots["val"]),
                                     "--output-dir", str(tmp_path / "run2")] + flags)
