"""`ReleaseConfig`: everything a zoo release is made from, as one typed config (a YAML file with
``--set`` overrides, like ``m2dino train``'s run configs).

    name: m2dino-mini-public          # the zoo name
    output_dir: releases/m2dino-mini-public   # the Hub-ready folder
    run: {...}                        # a RunConfig (recipe unified: one released model)
    pretrain: null                    # or a PretrainConfig: its backbone becomes run.model.pretrained
    test:                             # dataset → FMC root of its test split (every trained dataset)
      public: data/public/test
    licenses:                         # dataset → SPDX id of its images and labels
      public: CC-BY-NC-SA-4.0
    license: null                     # the weights' licence; null: derived (see licensing.py)
    weights_dtype: fp32
    intended_use: research; not for clinical use
    examples: null                    # scans for the card's overlays; null: m2dino's two synthetic examples
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..recipes import PretrainConfig, RunConfig
from ..recipes.config_io import apply_overrides, config_from_dict, config_to_dict, config_to_yaml, read_yaml_mapping

# fp32 by default: the released tensors are exactly the trained ones, so fine-tuning and per-task
# extraction start from them unrounded. bf16 halves the file (the bundled model's 25 MB budget); the
# card's numbers are always measured on the weights as stored, whichever is chosen.
WEIGHTS_DTYPES = ("fp32", "bf16")
ZOO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # the registry's rule (m2dino/models/zoo.py)
DEFAULT_INTENDED_USE = "research; not for clinical use"


class ReleaseFile:
    """What a model release (`ReleaseConfig`) and a backbone release (`BackboneReleaseConfig`) share:
    the checks of their common fields, their folder, and the YAML round trip with ``--set`` overrides.
    A subclass is a dataclass with ``name``, ``output_dir`` and ``weights_dtype``."""

    def check_common(self, string_maps: tuple[str, ...]) -> None:
        """The zoo name, the weights dtype, and the mappings ``string_maps`` (field names) of non-empty strings."""
        if not isinstance(self.name, str) or not ZOO_NAME.match(self.name):
            raise ValueError(f"name={self.name!r}: expected a zoo name of letters, digits, '.', '_' and '-' "
                             "(no '/': a zoo name is never a Hub id), e.g. m2dino-mini-public")
        if self.weights_dtype not in WEIGHTS_DTYPES:
            raise ValueError(f"weights_dtype={self.weights_dtype!r}; expected one of {WEIGHTS_DTYPES}")
        for name in string_maps:
            mapping = getattr(self, name)
            bad = [key for key, value in mapping.items() if not isinstance(value, str) or not value.strip()]
            if bad:
                raise ValueError(f"{name}.{bad[0]}={mapping[bad[0]]!r}: expected a non-empty string")

    @property
    def folder(self) -> Path:
        """The release's Hub-ready folder."""
        return Path(self.output_dir) if self.output_dir else Path("releases") / self.name

    def to_dict(self) -> dict:
        return config_to_dict(self)

    def to_yaml(self) -> str:
        return config_to_yaml(self)

    @classmethod
    def from_dict(cls: type[Release], values: dict, source: str = "release config") -> Release:
        return config_from_dict(cls, values, source)

    @classmethod
    def read(cls: type[Release], path: str | Path, overrides: list[str] = ()) -> Release:
        """A YAML release config with ``key=value`` overrides (``run.train.steps=500``) applied."""
        return cls.from_dict(apply_overrides(read_yaml_mapping(path), overrides), str(path))


Release = TypeVar("Release", bound=ReleaseFile)


@dataclass
class ReleaseConfig(ReleaseFile):
    """One zoo release: the run that trains it, the test splits it is scored on, and its licence terms."""

    name: str
    run: RunConfig
    test: dict[str, str]                      # dataset → FMC root of its test split
    licenses: dict[str, str]                  # dataset → SPDX id of its data (the weights' licence follows)
    output_dir: str | None = None             # the Hub-ready folder (None: releases/<name>)
    pretrain: PretrainConfig | None = None    # optional self-supervised pretraining before the run
    license: str | None = None                # the weights' licence (None: derived from `licenses`)
    weights_dtype: str = "fp32"
    intended_use: str = DEFAULT_INTENDED_USE
    limitations: str | None = None            # extra limits for the card (the standard ones are always there)
    dataset_notes: dict[str, str] = field(default_factory=dict)  # dataset → source / citation line
    examples: list[str] | None = None         # scans for the overlays, e.g. CC BY ones (None: the synthetic two)
    examples_credit: str | None = None        # attribution of `examples`
    batch_size: int = 16                      # evaluation batch (`m2dino evaluate --batch-size`)

    def __post_init__(self) -> None:
        self.check_common(("test", "licenses", "dataset_notes"))
        if self.run.recipe != "unified":
            raise ValueError(f"run.recipe={self.run.recipe!r}: a release is one model; expected 'unified'")
        if not self.run.data.tasks:
            raise ValueError("run.data.tasks: a release names its tasks (a list of task ids), so the test splits "
                             "and the card can be checked before training")
        if not self.test:
            raise ValueError("test: expected the test split of each training dataset (dataset: FMC root)")
        if set(self.licenses) != set(self.test):
            extra, missing = sorted(set(self.licenses) - set(self.test)), sorted(set(self.test) - set(self.licenses))
            problem = f"no licence for {missing}" if missing else f"licences for {extra}, which have no test split"
            raise ValueError(f"licenses: {problem}; expected one SPDX id per dataset of test ({sorted(self.test)})")
        if self.pretrain is not None and self.run.model.pretrained:
            raise ValueError(f"run.model.pretrained={self.run.model.pretrained!r} and pretrain are both set: the "
                             "pretraining's backbone becomes run.model.pretrained; set one of them")
        if (self.pretrain is not None and self.run.model.backbone
                and self.run.model.backbone != self.pretrain.backbone):
            raise ValueError(f"run.model.backbone={self.run.model.backbone!r} differs from pretrain.backbone="
                             f"{self.pretrain.backbone!r}: the pretrained backbone is what the run trains")
        if self.examples is not None and not (self.examples_credit or "").strip():
            raise ValueError("examples_credit: required with examples (the attribution their CC BY licence asks "
                             "for, shown under the overlays)")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @property
    def tasks(self) -> list[str]:
        return list(self.run.data.tasks or ())
