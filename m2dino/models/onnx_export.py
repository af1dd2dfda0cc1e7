"""ONNX export: one graph per task, ``pixel_values`` (dynamic batch) → the head's tensors, plus ``export.json``.

One file per task rather than one graph per model: `M2DINO.extract_task` collapses each task-routed MoE
to that task's experts with fixed weights, so every task's graph is a plain dense ViT + one head that
any ONNX runtime runs, with no task input, routing or control flow. Each file carries the shared
backbone again; that is the price of a graph a user can run knowing one task.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``. With torch 2.14 the
torch.export-based exporter (``dynamo=True``) stops at the backbone's input check (``isfinite(x).all()``
is a data-dependent branch it cannot guard on), while the tracer records it as a constant and the
graph is otherwise static: timm's RoPE table depends only on the (fixed) input size, so it is folded
into constants. timm's attention calls ``scaled_dot_product_attention``, which the TorchScript exporter
maps to ONNX from opset 14; it writes opsets up to 20.

What each label kind exports and how to post-process it (the steps `M2DINO.predict` applies after
the forward pass) is the per-kind table `KIND_EXPORTS`; ``export.json`` and the README repeat it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..tasks import TaskSpec
from .heads import DetectionHead
from .multitask import M2DINO
from .outputs import TaskOutput

DEFAULT_OPSET = 17
MIN_OPSET = 14              # aten::scaled_dot_product_attention (timm's attention) exists in ONNX from 14
INPUT_NAME = "pixel_values"
MANIFEST_NAME = "export.json"
MANIFEST_FORMAT = "m2dino-onnx/1"
INSTALL_HINT = "pip install 'm2dino[onnx]' (or pip install -e \".[onnx]\" in a checkout)"
# Export-time self-check: onnxruntime against the (full, routed) torch model on one random image.
# Float kernels differ between the two runtimes; a real discrepancy is orders of magnitude above this.
SELF_CHECK_RTOL = 1e-3


@dataclass(frozen=True)
class OutputInfo:
    """One output of a task's graph: its name, shape after the batch axis (from the traced output)
    and what it holds."""

    name: str
    meaning: str
    raw: bool = True   # a head tensor (checked against torch at export); False: decoded from the raw ones


@dataclass(frozen=True)
class KindExport:
    """What a label kind's graph returns and how its outputs become a prediction in original pixels."""

    outputs: tuple[OutputInfo, ...]
    tensors: Callable[[TaskOutput, TaskSpec], tuple[torch.Tensor, ...]]  # the head's output → graph outputs
    postprocess: str


def _detection_tensors(output, spec: TaskSpec) -> tuple[torch.Tensor, ...]:
    boxes, scores, labels = DetectionHead.decode(output, spec.max_boxes)
    return output.heatmap_logits, output.size, output.offset, boxes, scores, labels


TO_ORIGINAL = ("to the original image: x = (x' - pad_x) / scale_x, y = (y' - pad_y) / scale_y, where the "
               "letterbox content is w' = max(1, round(w * s)) by h' = max(1, round(h * s)) at "
               "pad = ((W - w') // 2, (H - h') // 2), s = min(W / w, H / h), scale_x = w' / w, scale_y = h' / h "
               "(stretch: pad 0, scale_x = W / w, scale_y = H / h)")

KIND_EXPORTS: dict[str, KindExport] = {
    "mask": KindExport(
        (OutputInfo("logits", "class logits per pixel at the model input's resolution (B×C×H×W)"),),
        lambda o, spec: (o.logits,),
        "crop the letterbox content (rows pad_y..pad_y+h', columns pad_x..pad_x+w'), resize each class's "
        "logits bilinearly to the original h×w (half-pixel centres, no antialiasing: torch's "
        "align_corners=False, which PIL's BILINEAR equals when enlarging), argmax over classes: a uint8 "
        "mask of class indices (class_names)"),
    "class": KindExport(
        (OutputInfo("logits", "class logits (B×C)"),),
        lambda o, spec: (o.logits,),
        "softmax over classes for the probabilities; argmax for the class index (class_names)"),
    "boxes": KindExport(
        (OutputInfo("heatmap_logits", "centre heatmap logits per object class at stride 4 (B×K×H/4×W/4)"),
         OutputInfo("size", "box (width, height) as a fraction of the input (W, H) at each cell (B×2×H/4×W/4)"),
         OutputInfo("offset", "sub-cell centre offset in cells (B×2×H/4×W/4)"),
         OutputInfo("boxes", "top-n boxes (x_min, y_min, x_max, y_max) in input pixels, best first (B×n×4)", False),
         OutputInfo("scores", "their peak heights, sigmoid(heatmap) in [0, 1] (B×n)", False),
         OutputInfo("labels", "their object classes (B×n, int64)", False)),
        _detection_tensors,
        "boxes, scores and labels are decoded in the graph (n = max_boxes: sigmoid heatmap, 3×3 max-pool "
        "peaks, top n, centre (cell + offset) × 4, size × input size); map each box's corners "
        + TO_ORIGINAL + ", then clip x to [0, w] and y to [0, h]"),
    "keypoints": KindExport(
        (OutputInfo("heatmap_logits", "one heatmap of logits per point at stride 4 (B×K×H/4×W/4)"),
         OutputInfo("keypoints", "soft-argmax (x, y) of each heatmap in input pixels (B×K×2)", False)),
        lambda o, spec: (o.heatmap_logits, o.keypoints),
        "map each point " + TO_ORIGINAL + "; with point_order left_to_right (interchangeable points) "
        "sort the points by x, then y"),
    "scalar": KindExport(
        (OutputInfo("value", "the measurement in scalar_unit (B)"),),
        lambda o, spec: (o.value,),
        "none: the value is the prediction, in scalar_unit (the head de-standardises it in the graph)"),
}


class TaskGraph(nn.Module):
    """One task of an M2DINO as a function ``pixel_values → tensors`` (the kind's `KIND_EXPORTS` outputs):
    what the ONNX file records."""

    def __init__(self, model: M2DINO, task: str) -> None:
        super().__init__()
        self.model, self.task = model, task
        self.spec = model.task_spec(task)
        self.kind = KIND_EXPORTS[self.spec.label_kind.name]

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.kind.tensors(self.model(pixel_values, task=self.task), self.spec)


def require_onnx() -> None:
    """Raise ImportError with the install line when onnx or onnxruntime is missing (the ``onnx`` extra)."""
    missing = []
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImportError(f"ONNX export needs {' and '.join(missing)}, not installed: {INSTALL_HINT}")


def writable_opsets() -> tuple[int, int]:
    """(lowest, highest) opset this export can write: from `MIN_OPSET` to the lower of the TorchScript
    exporter's and the installed onnx's highest opset."""
    import onnx.defs
    from torch.onnx import _constants

    return MIN_OPSET, min(_constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET, onnx.defs.onnx_opset_version())


def check_opset(opset: int) -> None:
    """Raise ValueError (one line, with the reason) unless ``opset`` is one this installation can write."""
    import onnx
    import onnx.defs
    from torch.onnx import _constants

    low, high = writable_opsets()
    shown = f"ONNX opset {opset!r}"
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise ValueError(f"{shown}: expected a whole number from {low} to {high}")
    if opset < low:
        raise ValueError(f"{shown}: the model's attention (scaled_dot_product_attention) needs opset {low} or "
                         f"later; expected {low}..{high}")
    if opset > onnx.defs.onnx_opset_version():
        raise ValueError(f"{shown}: the installed onnx {onnx.__version__} writes opsets up to "
                         f"{onnx.defs.onnx_opset_version()}; expected {low}..{high}")
    if opset > _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET:
        raise ValueError(f"{shown}: torch {torch.__version__}'s TorchScript-based exporter writes opsets up to "
                         f"{_constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET}; expected {low}..{high}")


def check_exportable(model: M2DINO, tasks: Sequence[str]) -> list[str]:
    """``tasks`` without repeats, each checked against ``model`` (ValueError naming the model's tasks);
    a model routing each token is refused (its experts change from token to token)."""
    tasks = list(dict.fromkeys(tasks))
    if not tasks:
        raise ValueError("no task to export; name one or more of the model's tasks: " + ", ".join(model.task_ids))
    for task in tasks:
        if task not in model.task_ids:
            raise ValueError(f"task {task!r} is not one of this model's {len(model.task_ids)} tasks: "
                             f"{', '.join(model.task_ids)}")
    if model.moe_blocks and model.config.routing != "task":
        raise ValueError(f"the model routes each token (routing {model.config.routing!r}): ONNX export needs "
                         "task routing, where each task's MoE collapses to fixed experts")
    return tasks


def planned_files(out_dir: str | Path, tasks: Sequence[str], overwrite: bool = False) -> list[Path]:
    """The files an export of ``tasks`` writes (one ``<task>.onnx`` each, then `MANIFEST_NAME`), refused
    with one line if ``out_dir`` is a file or a file exists and ``overwrite`` is off."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is a file; the ONNX output is a folder (one <task>.onnx per task and "
                         f"{MANIFEST_NAME})")
    files = [out_dir / f"{task}.onnx" for task in tasks] + [out_dir / MANIFEST_NAME]
    if not overwrite:
        for path in files:
            if path.exists():
                raise ValueError(f"{path} already exists (--overwrite, or overwrite=True, replaces it)")
    return files


def preprocessing_info(model: M2DINO) -> dict:
    """How an image becomes the graph's input: `M2DINOConfig.preprocessing` spelt out for other runtimes."""
    prep = model.config.preprocessing
    return {
        "image_size": list(prep.image_size), "resize_mode": prep.resize_mode,
        "mean": list(prep.mean), "std": list(prep.std),
        "steps": "read as RGB uint8 (gray replicated to 3 channels); letterbox: s = min(W / w, H / h), resize "
                 "bilinearly (PIL) to w' = max(1, round(w * s)) by h' = max(1, round(h * s)) and paste on a black "
                 "H×W canvas at ((W - w') // 2, (H - h') // 2); stretch: resize bilinearly to W×H; then float32 "
                 "(x / 255 - mean) / std per channel, laid out 1×3×H×W (NCHW)",
    }


def export_task(model: M2DINO, task: str, path: str | Path, opset: int = DEFAULT_OPSET) -> dict:
    """Write ``task``'s graph to ``path`` (written beside it, then moved into place) and return its
    `MANIFEST_NAME` entry, after checking onnxruntime's outputs against ``model``'s on one random image."""
    import onnxruntime
    import torch.onnx  # deferred: the exporter is only needed here

    path = Path(path)
    spec = model.task_spec(task)
    kind = KIND_EXPORTS[spec.label_kind.name]
    # The task's dense model (a copy, on the CPU): each task-routed MoE becomes its k experts with fixed weights.
    graph = TaskGraph(model.extract_task(task).cpu().eval(), task).eval()
    height, width = model.config.preprocessing.image_size
    # Traced at batch 2 so that no size-1 axis is folded into a broadcast; checked at batch 1 below.
    example = torch.zeros(2, 3, height, width)
    names = [o.name for o in kind.outputs]
    with torch.no_grad():
        traced = graph(example)
    shapes = [tuple(t.shape[1:]) for t in traced]
    dtypes = [str(t.dtype).removeprefix("torch.") for t in traced]
    partial = path.with_name(f".{path.name}.partial")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns where Python reads tensor values (input checks, the fixed routing and RoPE
            # tables); those are constants of a task's graph at a fixed input size, which is the intent.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.onnx.export(graph, (example,), str(partial), input_names=[INPUT_NAME], output_names=names,
                              dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *names]},
                              opset_version=opset, dynamo=False, do_constant_folding=True)
        _declare_output_shapes(partial, shapes)
        parity = _self_check(model, task, kind, str(partial), onnxruntime, (height, width))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return {
        "file": path.name, "task": task, "kind": spec.label_kind.name, "task_type": spec.type.value,
        "class_names": list(spec.class_names), "scalar_unit": spec.scalar_unit,
        "max_boxes": spec.max_boxes, "point_order": spec.point_order,
        "input": {"name": INPUT_NAME, "shape": ["batch", 3, height, width], "dtype": "float32"},
        "preprocessing": preprocessing_info(model),
        "outputs": [{"name": o.name, "shape": ["batch", *shape], "dtype": dtype, "meaning": o.meaning}
                    for o, shape, dtype in zip(kind.outputs, shapes, dtypes)],
        "postprocess": kind.postprocess,
        "self_check": parity,
    }


def _declare_output_shapes(path: Path, shapes: list[tuple[int, ...]]) -> None:
    """Write each output's shape after the batch axis into the file (then check it). The exporter's shape
    inference leaves names such as ``Castheatmap_logits_dim_2`` where the sizes pass through shape
    arithmetic, although at a fixed input size they are constants: a runtime reading the file sees them."""
    import onnx

    proto = onnx.load(str(path))
    for output, shape in zip(proto.graph.output, shapes):
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        dims.add().dim_param = "batch"
        for size in shape:
            dims.add().dim_value = size
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _self_check(model: M2DINO, task: str, kind: KindExport, path: str, onnxruntime, size: tuple[int, int]) -> dict:
    """onnxruntime against the full (routed) torch model on one random image; RuntimeError if a raw
    output differs by more than `SELF_CHECK_RTOL` of its magnitude (that would be an exporter bug)."""
    pixels = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = [t.cpu() for t in TaskGraph(model, task)(pixels.to(model.task_embedding.weight.device))]
    finally:
        model.train(was_training)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: pixels.numpy()})
    diffs = {}
    for info, want, have in zip(kind.outputs, expected, got):
        want = want.float().numpy()
        diff = float(np.abs(want - np.asarray(have, dtype=np.float32)).max()) if want.size else 0.0
        diffs[info.name] = diff
        if info.raw and not diff <= SELF_CHECK_RTOL * max(1.0, float(np.abs(want).max(initial=0.0))):
            raise RuntimeError(f"task {task!r}: onnxruntime's {info.name!r} differs from torch's by {diff:.3g}")
    return {"batch": 1, "max_abs_diff": diffs}


def export_onnx(model: M2DINO, tasks: Sequence[str], out_dir: str | Path, opset: int = DEFAULT_OPSET,
                overwrite: bool = False, source: str | None = None,
                progress: Callable[[str], None] | None = None) -> dict:
    """Export each of ``tasks`` to ``out_dir/<task>.onnx`` and describe them in ``out_dir/export.json``
    (returned). Everything is checked (the onnx extra, the opset, the tasks, the files) before the
    first file is written; ``source`` (a model name or Hub id) is recorded as given."""
    require_onnx()
    check_opset(opset)
    tasks = check_exportable(model, tasks)
    files = planned_files(out_dir, tasks, overwrite)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    entries = {}
    for task, path in zip(tasks, files):
        if progress is not None:
            progress(task)
        entries[task] = export_task(model, task, path, opset)
    manifest = {"format": MANIFEST_FORMAT, "m2dino_version": __version__, "source": source,
                "exporter": f"torch.onnx.export (TorchScript-based, dynamo=False), torch {torch.__version__}",
                "opset": opset, "backbone": model.config.backbone, "tasks": entries}
    files[-1].write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest
