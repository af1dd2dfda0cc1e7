"""`BackboneReleaseConfig`: a zoo release of a pretrained backbone alone (``kind: backbone``), for users'
own heads (``--pretrained NAME``). The same YAML + ``--set`` form as `ReleaseConfig`:

    kind: backbone
    name: m2dino-mini-us-ccby            # the zoo name
    output_dir: releases/m2dino-mini-us-ccby
    pretrain: {...}                      # a PretrainConfig: resumed from its output_dir's checkpoints when it
                                         # has some (a long pretraining runs in parts), else started
    licenses:                            # dataset → SPDX id of the pretraining images (the weights' licence follows)
      hc18: CC-BY-4.0
    probe:                               # classification task → FMC root with train/ val/ test/: the card's
      fetal_plane_cls: data/ccby/african_planes   # linear probe, these weights against random init
    probe_seeds: [0, 1, 2]
    weights_dtype: fp32
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..recipes import PretrainConfig
from ..tasks import get_task
from .release_config import DEFAULT_INTENDED_USE, ReleaseFile

KIND = "backbone"


@dataclass
class BackboneReleaseConfig(ReleaseFile):
    """One backbone release: the pretraining that makes it, its data's licences and the probes on its card."""

    name: str
    pretrain: PretrainConfig
    licenses: dict[str, str]                  # dataset → SPDX id of the pretraining images
    kind: str = KIND                          # tells `m2dino release` this is not a model release
    output_dir: str | None = None             # the Hub-ready folder (None: releases/<name>)
    probe: dict[str, str] = field(default_factory=dict)  # classification task → FMC root (train/ val/ test/)
    probe_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    license: str | None = None                # the weights' licence (None: derived from `licenses`)
    weights_dtype: str = "fp32"
    intended_use: str = DEFAULT_INTENDED_USE
    limitations: str | None = None
    dataset_notes: dict[str, str] = field(default_factory=dict)  # dataset → source / citation line

    def __post_init__(self) -> None:
        if self.kind != KIND:
            raise ValueError(f"kind={self.kind!r}: a backbone release has kind {KIND!r}")
        self.check_common(("licenses", "probe", "dataset_notes"))
        if self.pretrain.backbone_overrides:
            raise ValueError(f"pretrain.backbone_overrides={self.pretrain.backbone_overrides!r}: a released backbone "
                             "is a named size (test, mini, S, ...) that users select with --backbone; leave it empty")
        for task in self.probe:
            if get_task(task).label_kind.name != "class":
                raise ValueError(f"probe.{task}: a {get_task(task).label_kind.name} task; the linear probe needs a "
                                 "classification task (one class per image)")
        if self.probe and not self.probe_seeds:
            raise ValueError("probe_seeds: expected at least one seed for the probes")
        if len(set(self.probe_seeds)) != len(self.probe_seeds):
            raise ValueError(f"probe_seeds={self.probe_seeds}: each seed once")


def is_backbone_release(values: dict) -> bool:
    """Whether a release YAML's mapping describes a backbone release (``kind: backbone``)."""
    return isinstance(values, dict) and values.get("kind") == KIND
