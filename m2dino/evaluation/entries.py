"""What a submission holds for one image: a typed prediction, or the reason it cannot be scored."""

from __future__ import annotations

from dataclasses import dataclass

from ..models.predictions import Prediction


@dataclass(frozen=True)
class InvalidPrediction:
    """A prediction that is present but cannot be scored, and why."""

    reason: str


Entry = Prediction | InvalidPrediction
