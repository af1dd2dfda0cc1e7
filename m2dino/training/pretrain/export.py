"""The pretrained backbone as a timm-layout safetensors file with a model card beside it.

The file loads with `load_backbone_weights` (``--pretrained FILE`` in every recipe, and
``M2DINO(config, backbone_weights=FILE)``); the EMA teacher is exported, as DINO does, being the
smoother and better of the two.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from ...models.backbone import DINOv3Backbone
from ..checkpoint import write_into
from .curves import CURVES_FILE, plot_loss_curves

BACKBONE_FILE = "backbone.safetensors"
CARD_FILE = "README.md"


def export_backbone(backbone: DINOv3Backbone, folder: Path, config: dict, summary: dict) -> Path:
    """Write ``folder/backbone.safetensors``, ``folder/README.md`` and the loss curves drawn from
    ``folder/log.jsonl`` (all or nothing)."""
    weights = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    metadata = {"format": "pt", "backbone": backbone.name, "m2dino": "pretrain"}
    log = Path(folder) / "log.jsonl"

    def write(tmp: Path) -> None:
        save_file(weights, str(tmp / BACKBONE_FILE), metadata=metadata)
        curves = plot_loss_curves(log, tmp / CURVES_FILE) if log.is_file() else None
        (tmp / CARD_FILE).write_text(card_text(backbone.name, config, summary, curves is not None))

    write_into(Path(folder), write)
    return Path(folder) / BACKBONE_FILE


def card_text(backbone: str, config: dict, summary: dict, curves: bool = False) -> str:
    losses = summary.get("final_losses", {})
    rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in losses.items())
    data = "\n".join(f"- {d}" for d in config.get("data") or ["(not recorded)"])
    start = config.get("pretrained") or "random initialisation"
    return f"""# {backbone}: self-supervised on unlabelled ultrasound (m2dino pretrain)

DINOv3-style self-distillation (DINO + iBOT losses with Sinkhorn-Knopp targets, KoLeo{
', Gram anchoring' if config.get('loss', {}).get('gram_weight') else ''}), started from {start}.
The weights are the EMA teacher's backbone in timm's layout: use them with
`--pretrained {BACKBONE_FILE} --backbone {backbone}` or `M2DINO(config, backbone_weights=...)`.

## Data

{data}

{summary.get('images', '?')} images; {summary.get('steps', '?')} steps of {config.get('batch_size')} images
({config.get('crops', {}).get('global_size')} px global and {config.get('crops', {}).get('local_size')} px local crops).

## Losses (mean of the last 10 logged steps)

| loss | value |
|---|---|
{rows}
{f"{chr(10)}![loss curves]({CURVES_FILE}){chr(10)}" if curves else ""}
Non-finite steps skipped: {summary.get('nonfinite_steps', 0)}; steps with a collapsed teacher: {
summary.get('collapsed_steps', 0)}.

## Configuration

```json
{json.dumps(config, indent=1)}
```
"""
