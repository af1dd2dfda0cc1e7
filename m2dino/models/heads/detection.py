"""Anchor-free detection (CenterNet-style): a centre heatmap, the box size and a sub-cell offset at stride 4."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import focal_heatmap_loss
from ..outputs import DetectionOutput
from ..predictions import DetectionPrediction
from ..spatial_prior import spatial_maps
from .base import PseudoLabels, TaskHead
from .dpt import DPTDecoder

STRIDE = 4


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: the largest centre shift keeping IoU ≥ ``min_overlap`` with the true box."""
    a1, b1, c1 = 1, height + width, width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2, c2 = 4, 2 * (height + width), (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return max(0.0, min(r1, r2, r3))


def _boxes_and_labels(target) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(target, dict):
        return target["boxes"], target["labels"]
    return target, torch.zeros(len(target), dtype=torch.long)


class DetectionHead(TaskHead):
    label_kind, uses_levels = "boxes", True

    @classmethod
    def from_spec(cls, spec, in_dim, features):
        return cls(in_dim, spec.num_classes, features)

    def __init__(self, in_dim: int, num_classes: int = 1, features: int = 64, size_weight: float = 5.0) -> None:
        super().__init__()
        self.decoder = DPTDecoder(in_dim, features)

        def branch(out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.ReLU(), nn.Conv2d(features, out, 1))

        self.heatmap = branch(num_classes)
        self.size = branch(2)
        self.offset = branch(2)
        nn.init.constant_(self.heatmap[-1].bias, -2.19)  # prior 0.1: keeps the focal loss stable early on
        self.num_classes, self.size_weight = num_classes, size_weight

    def forward(self, features, levels, task, image_size) -> DetectionOutput:
        x = self.decoder(levels, spatial_maps(features))  # the prior's stride-4/8 maps, if any
        return DetectionOutput(task, heatmap_logits=self.heatmap(x), size=self.size(x), offset=self.offset(x),
                               stride=STRIDE, image_size=tuple(image_size))

    def build_targets(self, output: DetectionOutput, targets) -> dict[str, torch.Tensor]:
        batch, _, h, w = output.heatmap_logits.shape
        device = output.heatmap_logits.device
        heatmap = torch.zeros(batch, self.num_classes, h, w, device=device)
        size = torch.zeros(batch, 2, h, w, device=device)
        offset = torch.zeros(batch, 2, h, w, device=device)
        mask = torch.zeros(batch, h, w, dtype=torch.bool, device=device)
        if len(targets) != batch:
            raise ValueError(f"detection targets for {len(targets)} images; expected {batch}")
        ys, xs = torch.arange(h, device=device)[:, None], torch.arange(w, device=device)[None, :]
        height_px, width_px = output.image_size
        for b, target in enumerate(targets):
            boxes, labels = _boxes_and_labels(target)
            for box, label in zip(boxes.tolist(), labels.tolist()):
                x0, y0, x1, y1 = box
                if x1 <= x0 or y1 <= y0:
                    raise ValueError(f"degenerate detection box {box} (need x_min < x_max, y_min < y_max)")
                if not 0 <= label < self.num_classes:
                    raise ValueError(f"detection label {label} outside 0..{self.num_classes - 1}")
                cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
                ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
                radius = gaussian_radius((y1 - y0) / STRIDE, (x1 - x0) / STRIDE)
                sigma = max((2 * radius + 1) / 6, 1 / 3)
                blob = torch.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma ** 2))
                heatmap[b, label] = torch.maximum(heatmap[b, label], blob)
                heatmap[b, label, iy, ix] = 1.0
                size[b, :, iy, ix] = torch.tensor([(x1 - x0) / width_px, (y1 - y0) / height_px])
                offset[b, :, iy, ix] = torch.tensor([cx - ix, cy - iy])
                mask[b, iy, ix] = True
        return {"heatmap": heatmap, "size": size, "offset": offset, "mask": mask}

    def loss(self, output: DetectionOutput, targets) -> torch.Tensor:
        t = self.build_targets(output, targets)
        focal = focal_heatmap_loss(output.heatmap_logits, t["heatmap"])
        centres = t["mask"][:, None].expand_as(output.size)
        n = t["mask"].sum().clamp(min=1)
        size = (output.size.float() - t["size"]).abs()[centres].sum() / n
        offset = (output.offset.float() - t["offset"]).abs()[centres].sum() / n
        return focal + self.size_weight * size + offset

    @staticmethod
    def decode(output: DetectionOutput, top_n: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top-n peaks (3×3 max-pool NMS) → boxes B×n×4 in input pixels, scores B×n, labels B×n."""
        heat = output.heatmap_logits.float().sigmoid()
        batch, classes, h, w = heat.shape
        peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
        scores, flat = peaks.flatten(1).topk(min(top_n, classes * h * w), dim=1)
        labels, cell = flat // (h * w), flat % (h * w)
        iy, ix = cell // w, cell % w
        gather = lambda t: t.float().flatten(2).gather(2, cell[:, None].expand(-1, 2, -1))  # noqa: E731
        offset, size = gather(output.offset), gather(output.size)
        cx = (ix + offset[:, 0]) * output.stride
        cy = (iy + offset[:, 1]) * output.stride
        bw = size[:, 0].clamp(min=0) * output.image_size[1]
        bh = size[:, 1].clamp(min=0) * output.image_size[0]
        boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)
        return boxes, scores, labels

    def predict(self, output, index, geometry, spec, top_n=None) -> DetectionPrediction:
        """The top ``top_n`` boxes (default: the task's ``max_boxes``), best first, clipped to the image."""
        boxes, scores, labels = self.decode(output, top_n or spec.max_boxes)
        original = spec.label_kind.to_original(boxes[index].cpu().numpy(), geometry)
        return DetectionPrediction(boxes=original, scores=scores[index].cpu().numpy(),
                                   labels=labels[index].cpu().numpy())

    def pseudo_labels(self, output: DetectionOutput, threshold: float, max_boxes: int = 16) -> PseudoLabels:
        """Boxes at centre-heatmap peaks whose score reaches ``threshold`` (at most ``max_boxes`` per
        image); an image without one is left out (not taught that it holds no object)."""
        boxes, scores, labels = self.decode(output, max_boxes)
        boxes, scores = boxes.detach(), scores.detach()
        height, width = output.image_size
        boxes[..., 0::2] = boxes[..., 0::2].clamp(0, width)
        boxes[..., 1::2] = boxes[..., 1::2].clamp(0, height)
        usable = (scores >= threshold) & (boxes[..., 2] - boxes[..., 0] >= 1) & (boxes[..., 3] - boxes[..., 1] >= 1)
        keep = usable.any(dim=1)
        targets = [{"boxes": boxes[b][usable[b]], "labels": labels[b][usable[b]]} for b in keep.nonzero()[:, 0]]
        return PseudoLabels(targets, keep, keep.float().mean())

    def consistency(self, student: DetectionOutput, teacher: DetectionOutput) -> torch.Tensor:
        """Squared difference of the centre heatmaps, plus the size and offset differences weighted by
        the teacher's heatmap (where it sees an object centre)."""
        teacher_heat = teacher.heatmap_logits.detach().float().sigmoid()
        heat = F.mse_loss(student.heatmap_logits.float().sigmoid(), teacher_heat)
        weight = teacher_heat.amax(dim=1, keepdim=True)
        geometry = ((student.size.float() - teacher.size.detach().float()).abs()
                    + (student.offset.float() - teacher.offset.detach().float()).abs())
        return heat + (weight * geometry).sum() / (2 * weight.sum()).clamp(min=1e-6)
