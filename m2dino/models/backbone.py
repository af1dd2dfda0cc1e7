"""The DINOv3 ViT backbone, built from timm's blocks, with the block loop run here.

The modules keep timm's attribute names, so a timm state dict loads unchanged. Running the
loop ourselves lets the chosen blocks' feed-forward be a `TaskMoE` that receives the routing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import timm
import torch
from torch import nn

from ..limits import finite_number
from .backbone_configs import check_overrides, resolve_backbone
from .moe import TaskMoE, TaskRouting


@dataclass
class BackboneOutput:
    tokens: torch.Tensor                 # B × (1 + R + h·w) × C, after the final norm
    grid_size: tuple[int, int]           # (h, w) patch grid
    num_prefix_tokens: int               # CLS + registers
    intermediates: dict[int, torch.Tensor] = field(default_factory=dict)  # block -> B×C×h×w (normed)
    aux_loss: torch.Tensor | None = None  # summed MoE load-balancing loss

    @property
    def cls_token(self) -> torch.Tensor:
        return self.tokens[:, 0]

    def select(self, rows: torch.Tensor) -> "BackboneOutput":
        """The given batch rows (tokens and feature levels; the batch's MoE loss is kept)."""
        return BackboneOutput(self.tokens[rows], self.grid_size, self.num_prefix_tokens,
                              {b: m[rows] for b, m in self.intermediates.items()}, self.aux_loss)

    @property
    def register_tokens(self) -> torch.Tensor:
        return self.tokens[:, 1:self.num_prefix_tokens]

    @property
    def patch_tokens(self) -> torch.Tensor:
        return self.tokens[:, self.num_prefix_tokens:]


class DINOv3Backbone(nn.Module):
    """DINOv3 ViT/16 (CLS + 4 registers, RoPE, LayerScale; SwiGLU in S+ and H+)."""

    def __init__(self, name: str = "vit_small_patch16_dinov3", drop_path_rate: float = 0.0,
                 **overrides) -> None:
        super().__init__()
        self.name, config = resolve_backbone(name)
        self.timm_name = config.timm_name
        # Bounded and allow-listed before timm allocates or reads anything (overrides may come from a file).
        kwargs = {**config.overrides, **check_overrides(overrides)}
        finite_number("drop_path_rate", drop_path_rate, 0, 1)
        vit = timm.create_model(config.timm_name, pretrained=False, num_classes=0, global_pool="",
                                drop_path_rate=drop_path_rate, **kwargs)
        self.patch_size = vit.patch_embed.patch_size[0]
        self.embed_dim = vit.embed_dim
        self.num_prefix_tokens = vit.num_prefix_tokens
        # Same attribute names as timm's Eva so its state dict keys match ours one to one.
        self.patch_embed = vit.patch_embed
        self.cls_token = vit.cls_token
        self.reg_token = vit.reg_token
        self.rope = vit.rope
        self.norm_pre = vit.norm_pre
        self.blocks = vit.blocks
        self.norm = vit.norm
        if vit.pos_embed is not None:
            raise ValueError(f"{config.timm_name}: absolute position embeddings are not supported "
                             "(DINOv3 uses RoPE only)")

    @torch.no_grad()
    def reset_layerscale(self, value: float) -> None:
        """Set every block's LayerScale (``gamma_1``, ``gamma_2``) to ``value``."""
        for block in self.blocks:
            block.gamma_1.fill_(value)
            block.gamma_2.fill_(value)

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def moe_blocks(self) -> tuple[int, ...]:
        return tuple(i for i, block in enumerate(self.blocks) if isinstance(block.mlp, TaskMoE))

    def check_input(self, pixel_values: torch.Tensor) -> None:
        if pixel_values.ndim != 4:
            raise ValueError(f"pixel_values must be B×3×H×W, got shape {tuple(pixel_values.shape)}")
        channels, height, width = pixel_values.shape[1:]
        if channels != 3:
            raise ValueError(f"pixel_values has {channels} channels; expected 3 (RGB). "
                             "Gray ultrasound must be replicated to 3 channels")
        if height % self.patch_size or width % self.patch_size or height == 0 or width == 0:
            raise ValueError(f"input size {height}×{width}: both sides must be positive multiples of the "
                             f"patch size {self.patch_size} "
                             f"(e.g. {max(1, round(height / self.patch_size)) * self.patch_size}"
                             f"×{max(1, round(width / self.patch_size)) * self.patch_size})")
        if not pixel_values.is_floating_point():
            raise ValueError(f"pixel_values must be a float tensor (normalised), got {pixel_values.dtype}")
        if not torch.isfinite(pixel_values).all():
            raise ValueError("pixel_values contains NaN or infinite values")

    def embed(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Patch + prefix tokens and the RoPE table for this input size."""
        x = self.patch_embed(pixel_values)       # B × h × w × C (timm's dynamic-size layout)
        batch, h, w, channels = x.shape
        rope = self.rope.get_embed(shape=(h, w))
        prefix = [self.cls_token.expand(batch, -1, -1)]
        if self.reg_token is not None:
            prefix.append(self.reg_token.expand(batch, -1, -1))
        x = torch.cat([*prefix, x.reshape(batch, h * w, channels)], dim=1)
        return self.norm_pre(x), rope, (h, w)

    def run_block(self, index: int, x: torch.Tensor, rope: torch.Tensor,
                  routing: TaskRouting | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x + ls1(attn(norm1(x), rope))`` then ``x + ls2(ffn(norm2(x)))``; ffn may be a TaskMoE."""
        block = self.blocks[index]
        attn = block.attn(block.norm1(x), rope=rope)
        if block.gamma_1 is not None:
            attn = block.gamma_1 * attn
        x = x + block.drop_path1(attn)
        aux_loss = None
        if isinstance(block.mlp, TaskMoE):
            if routing is None:
                raise ValueError(f"block {index} is a task-conditioned MoE block: a task is required")
            ffn, aux_loss = block.mlp(block.norm2(x), routing)
        else:
            ffn = block.mlp(block.norm2(x))
        if block.gamma_2 is not None:
            ffn = block.gamma_2 * ffn
        return x + block.drop_path2(ffn), aux_loss

    def forward_features(self, pixel_values: torch.Tensor, routing: TaskRouting | None = None,
                         intermediate_blocks: tuple[int, ...] = ()) -> BackboneOutput:
        """Final normed tokens plus the (normed) patch maps of ``intermediate_blocks``."""
        self.check_input(pixel_values)
        x, rope, grid = self.embed(pixel_values)
        x, intermediates, aux_loss = self.run_blocks(x, rope, grid, routing, intermediate_blocks)
        return BackboneOutput(self.norm(x), grid, self.num_prefix_tokens, intermediates, aux_loss)

    def run_blocks(self, x: torch.Tensor, rope: torch.Tensor, grid: tuple[int, int],
                   routing: TaskRouting | None = None, intermediate_blocks: tuple[int, ...] = (),
                   start: int = 0, stop: int | None = None
                   ) -> tuple[torch.Tensor, dict[int, torch.Tensor], torch.Tensor | None]:
        """Blocks ``start..stop-1`` on hidden states ``x``: the raw output, the wanted intermediate
        maps and the summed MoE balancing loss. Split ranges let `predict_all` share the dense prefix."""
        stop = self.depth if stop is None else stop
        for index in intermediate_blocks:
            if not -self.depth <= index < self.depth:
                raise ValueError(f"intermediate block {index} out of range for a {self.depth}-block backbone")
        wanted = {i % self.depth for i in intermediate_blocks}
        intermediates: dict[int, torch.Tensor] = {}
        aux_total = None
        for index in range(start, stop):
            x, aux = self.run_block(index, x, rope, routing)
            if aux is not None:
                aux_total = aux if aux_total is None else aux_total + aux
            if index in wanted:
                intermediates[index] = self.to_feature_map(self.norm(x), grid)
        return x, intermediates, aux_total

    def to_feature_map(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Patch tokens (prefix dropped) as a B×C×h×w map."""
        patches = tokens[:, self.num_prefix_tokens:]
        return patches.transpose(1, 2).reshape(tokens.shape[0], -1, *grid)

    def forward(self, pixel_values: torch.Tensor, routing: TaskRouting | None = None) -> torch.Tensor:
        return self.forward_features(pixel_values, routing).tokens
