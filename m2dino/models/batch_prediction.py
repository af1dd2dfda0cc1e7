"""Predicting many images of one task a batch at a time: the preprocess → forward → postprocess loop
that `m2dino evaluate` and the in-loop validation share, kept apart from the model (as
segment-anything keeps its predictor apart) so that any model with that inference interface
(`M2DINO`, the semi-supervised `CNNPartner`) runs through the same code."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Protocol

import torch

from ..image import ImageLike, ResizeGeometry
from .outputs import TaskOutput
from .predictions import Prediction


class InferenceModel(Protocol):
    """What `predict_batches` needs of a model."""

    training: bool

    def __call__(self, pixel_values: torch.Tensor, task: str) -> TaskOutput: ...

    def preprocess(self, images: Sequence[ImageLike]) -> tuple[torch.Tensor, list[ResizeGeometry]]: ...

    def postprocess(self, output: TaskOutput, index: int, geometry: ResizeGeometry) -> Prediction: ...

    def train(self, mode: bool = True) -> InferenceModel: ...


@torch.no_grad()
def predict_batches(model: InferenceModel, images: Iterable[ImageLike], task: str,
                    batch_size: int = 16) -> Iterator[Prediction]:
    """The prediction of every image of ``images`` for ``task``, in order and in ORIGINAL pixels,
    ``batch_size`` images per forward pass, in eval mode (the model's mode is restored afterwards).

    ``images`` is read one batch at a time, so a generator that loads files keeps only one batch of
    images in memory. Each prediction equals ``model.predict(image, task)`` on its own.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    remaining = iter(images)
    was_training = model.training
    model.train(False)
    try:
        while batch := list(islice(remaining, batch_size)):
            pixel_values, geometries = model.preprocess(batch)
            output = model(pixel_values, task=task)
            for index, geometry in enumerate(geometries):
                yield model.postprocess(output, index, geometry)
    finally:
        model.train(was_training)
