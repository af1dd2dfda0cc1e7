"""CI: the installed wheel works from outside the checkout: save (the packaged model card), load,
predict, and the recipes import as modules. Run with PYTHONPATH=<folder the wheel went into>."""

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import m2dino
from m2dino import M2DINO, M2DINOConfig

target = Path(sys.argv[1]).resolve()
module = Path(m2dino.__file__).resolve()
if target not in module.parents:
    sys.exit(f"wheel check: imported {module}, not the wheel installed in {target}")
print(f"m2dino {m2dino.__version__} from {module.parent}")

model = M2DINO(M2DINOConfig(backbone="test", tasks=["fetal_head", "breast_2cls", "fetal_head_circumference"],
                            image_size=(32, 32), decoder_features=8))
with tempfile.TemporaryDirectory() as folder:
    model.save_pretrained(folder)
    print("saved:", ", ".join(sorted(p.name for p in Path(folder).iterdir())))
    loaded = M2DINO.from_pretrained(folder)
image = np.random.default_rng(0).integers(0, 255, (50, 70), dtype=np.uint8)
mask = loaded.predict(image, "fetal_head").mask
probs = loaded.predict(image, "breast_2cls").probs
value = loaded.predict(image, "fetal_head_circumference")
print(f"predicted: mask {mask.shape}, probs {np.round(probs, 3).tolist()}, HC {value.value:.3f} {value.unit}")
if mask.shape != (50, 70):
    sys.exit(f"wheel check: mask of shape {mask.shape}, expected the image's (50, 70)")
from m2dino.recipes import RunConfig, grouped, task_specific, unified  # noqa: E402,F401  (the recipes ship as modules)

if RunConfig.from_dict(RunConfig().to_dict()) != RunConfig():
    sys.exit("wheel check: the default RunConfig does not survive its own dict")
print("recipes importable: unified, grouped, task_specific; RunConfig round-trips")

# The zoo on a fresh install, offline: the bundled first release loads by name and segments an example scan.
os.environ["HF_HUB_OFFLINE"] = "1"
names = m2dino.list_pretrained()
if "m2dino-mini-ccby" not in names:
    sys.exit(f"wheel check: the bundled release is not in the zoo ({names})")
released = M2DINO.from_pretrained("m2dino-mini-ccby")
from m2dino.visualize.examples import example_images  # noqa: E402  (synthetic: no real scan ships)

scan = example_images()[0]
head = released.predict(scan, "fetal_head").mask
if head.shape != (360, 480) or not 0.05 < head.mean() < 0.6:
    sys.exit(f"wheel check: the bundled release's fetal_head mask is {head.shape}, {head.mean():.1%} of the scan")
print(f"zoo: {', '.join(names)}; m2dino-mini-ccby segments {scan.name} ({head.mean():.1%} fetal head)")

# The zoo's second entry, the pretrained backbone alone, loads by name into a new model, offline.
backbones = m2dino.list_pretrained("backbone")
if backbones != ["m2dino-mini-us-ccby"] or len(names) < 2:
    sys.exit(f"wheel check: expected the bundled backbone as a second zoo entry, got {names}")
own = M2DINO(M2DINOConfig(backbone="mini", tasks=["breast_2cls"], image_size=(128, 128), moe_blocks=()),
             backbone_weights="m2dino-mini-us-ccby")
probs = own.predict(scan, "breast_2cls").probs
print(f"zoo backbone: m2dino-mini-us-ccby under a new breast_2cls head, probs {np.round(probs, 3).tolist()}")

# The CLI on the same install: m2dino predict --model ZOO_NAME writes an overlay and a JSON.
from m2dino.cli.main import main as m2dino_cli  # noqa: E402

with tempfile.TemporaryDirectory() as out:
    if m2dino_cli(["predict", "--model", "m2dino-mini-ccby", "--all", str(scan), "--out", out, "--quiet"]) != 0:
        sys.exit("wheel check: m2dino predict --model m2dino-mini-ccby failed")
    written = sorted(p.name for p in Path(out).iterdir())
if written != [f"{scan.stem}.json", f"{scan.stem}_overlay.png"]:
    sys.exit(f"wheel check: m2dino predict wrote {written}")
print(f"m2dino predict --model m2dino-mini-ccby: {', '.join(written)}")
