"""Zoo releases: one command from a run config to a Hub-ready model folder with its card.

    from m2dino.release import ReleaseConfig, release
    release(ReleaseConfig.read("release.yaml", ["run.train.steps=500"]))

``m2dino release release.yaml [--set k=v] [--push org/name]`` runs the same. `ReleaseConfig` names the
run (a unified `RunConfig`, optionally after `PretrainConfig` pretraining), the test split of every
training dataset and their licences; `release` trains, evaluates through the code ``m2dino evaluate``
runs, scores the constant predictor beside it and writes the folder (`m2dino.release.pipeline`).
`weights_license` is the licence rule; `zoo_entry` turns a release folder into a registry entry.
A `BackboneReleaseConfig` (``kind: backbone``) releases a pretrained backbone alone (`release_backbone`).
"""

from .backbone_config import BackboneReleaseConfig, is_backbone_release
from .backbone_release import BackboneReleaseOutcome, check_backbone_release, release_backbone
from .checks import check_release
from .licensing import LicenseDecision, is_noncommercial, weights_license
from .pipeline import ReleaseOutcome, release, zoo_entry
from .push import NO_TOKEN, hub_token, push_release
from .release_config import WEIGHTS_DTYPES, ReleaseConfig

__all__ = ["NO_TOKEN", "WEIGHTS_DTYPES", "BackboneReleaseConfig", "BackboneReleaseOutcome", "LicenseDecision",
           "ReleaseConfig", "ReleaseOutcome", "check_backbone_release", "check_release", "hub_token",
           "is_backbone_release", "is_noncommercial", "push_release", "release", "release_backbone",
           "weights_license", "zoo_entry"]
