"""`SemiConfig`: how unlabelled images join training (``--semi``), with each method's published defaults.

- ``mean-teacher`` (Tarvainen & Valpola 2017): unlabelled loss = soft consistency (`TaskHead.consistency`);
  target = EMA teacher, weak view; threshold = none; weight = 0.1; ramp-up = sigmoid, first 40 %.
- ``fixmatch`` (Sohn et al. 2020): unlabelled loss = supervised loss on hard pseudo-labels;
  target = EMA teacher, weak view; threshold = 0.95; weight = 1.0; ramp-up = none.
- ``cps`` (Chen et al. 2021; FM-DACL's CNN partner): unlabelled loss = each network's hard labels supervise
  the other; target = the other network, same view; threshold = 0 (argmax); weight = 0.1;
  ramp-up = sigmoid, first 40 %.

The weights and ramp follow SSL4MIS (consistency 0.1 with a sigmoid ramp for mean teacher and
CPS) and FixMatch (λ_u = 1, τ = 0.95, no ramp: the threshold already keeps early, wrong labels out).
The student always sees the strong view (`views.strong_view`), the teacher the weak one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

METHODS = ("mean-teacher", "fixmatch", "cps")
DEFAULTS = {"mean-teacher": {"weight": 0.1, "threshold": 0.0, "rampup": 0.4},
            "fixmatch": {"weight": 1.0, "threshold": 0.95, "rampup": 0.0},
            "cps": {"weight": 0.1, "threshold": 0.0, "rampup": 0.4}}


@dataclass
class SemiConfig:
    method: str
    weight: float | None = None        # λ of the unlabelled loss (None: the method's default)
    threshold: float | None = None     # pseudo-label confidence threshold (None: the method's default)
    rampup: float | None = None        # fraction of the steps over which λ ramps up (sigmoid)
    ema_momentum: float = 0.99         # teacher ← m·teacher + (1 − m)·student (SSL4MIS's ema_decay)
    unlabeled_ratio: float = 1.0       # unlabelled images per labelled image in a step
    partner: str = "resnet18"          # cps: the timm CNN encoder of the partner

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"--semi {self.method!r}; expected one of {', '.join(METHODS)}")
        for name, value in DEFAULTS[self.method].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.weight < 0:
            raise ValueError(f"--semi-weight must be >= 0, got {self.weight}")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"--semi-threshold must be in [0, 1], got {self.threshold}")
        if not 0 <= self.rampup <= 1:
            raise ValueError(f"--semi-rampup is a fraction of the steps in [0, 1], got {self.rampup}")
        if not 0 <= self.ema_momentum < 1:
            raise ValueError(f"--ema-momentum must be in [0, 1), got {self.ema_momentum}")
        if self.unlabeled_ratio <= 0:
            raise ValueError(f"--unlabeled-ratio must be > 0, got {self.unlabeled_ratio}")

    @property
    def uses_teacher(self) -> bool:
        return self.method in ("mean-teacher", "fixmatch")

    def to_dict(self) -> dict:
        return asdict(self)


def consistency_weight(config: SemiConfig, step: int, total_steps: int) -> float:
    """λ at ``step``: SSL4MIS's sigmoid ramp-up exp(−5(1 − t)²) over the first ``rampup`` of the run."""
    length = config.rampup * total_steps
    if length <= 0:
        return config.weight
    t = min(1.0, step / length)
    return config.weight * float(2.718281828459045 ** (-5.0 * (1.0 - t) ** 2))
