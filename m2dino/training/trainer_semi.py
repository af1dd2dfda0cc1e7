"""The unlabelled half of a semi-supervised step: the pool (minus validation images), its batches,
the strong view and the ramped weight."""

from __future__ import annotations

import torch

from ..data.errors import DataError
from ..data.unlabeled import UnlabeledSource
from ..image.preprocessing import Preprocessing
from .semi import SemiConfig, UnlabeledBatches, consistency_weight, strong_view


class SemiInputs:
    """Each step's unlabelled batch (weak view), its strong view and the weight of the unlabelled loss."""

    def __init__(self, semi: SemiConfig, pool: UnlabeledSource, val_samples: dict, on_overlap: str,
                 preprocessing: Preprocessing, batch_size: int, seed: int, rank: int, num_workers: int,
                 total_steps: int) -> None:
        # Unlabelled images that are also validation images would leak into model selection.
        try:
            pool = pool.without(val_samples, on_overlap=on_overlap)
        except DataError as err:
            raise DataError(f"{err} (recipes: --unlabeled-overlap exclude)") from None
        self.config, self.seed, self.total_steps = semi, seed, total_steps
        self.mean, self.std = preprocessing.mean, preprocessing.std
        self.batches = UnlabeledBatches(pool, preprocessing, max(1, round(batch_size * semi.unlabeled_ratio)),
                                        seed + 1000 * rank, num_workers)

    def for_step(self, step: int, device: torch.device) -> dict:
        """The strong view's randomness is seeded by the step, so a resumed run perturbs identically."""
        weak = self.batches.next().to(device, non_blocking=True)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return {"unlabeled": weak, "strong": strong_view(weak, self.mean, self.std, generator),
                "semi_weight": consistency_weight(self.config, step, self.total_steps)}

    def state_dict(self) -> dict:
        return self.batches.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batches.load_state_dict(state)
