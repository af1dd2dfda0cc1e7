"""Running routed inputs through E expert MLPs at once: stacked weights and one grouped matrix multiply.

The experts stay separate timm MLP modules (their state-dict keys, extraction and LoRA wrapping are
per expert); each forward stacks their Linear weights (E × out × in, cheap beside the activations)
and runs every route through them without a loop over experts or a host synchronisation:

- `run_routes`: S sources (samples under task routing, tokens under token routing) of P tokens each,
  every source sent to its k experts. Routes are sorted by expert, gathered, pushed through each
  Linear as one grouped GEMM (``torch.nn.functional.grouped_mm``, CPU and CUDA in torch ≥ 2.9; the
  fast CUDA kernel needs bf16 on sm90+, elsewhere torch loops over groups itself) and put back in
  source order, where the k outputs are summed with their weights in the input's dtype.
- `run_selected`: every source takes the same k experts (a single-task batch): those k experts as one
  MLP k times as wide, with no gather or scatter of the activations.

Every expert gets a gradient (zero where no route chose it), where a loop over the chosen experts
left the others' ``.grad`` at None: knowing which experts were chosen would need the host to wait.
Where torch has no grouped GEMM for the dtype or layout (float64, rows not a multiple of 16 bytes,
torch < 2.9, float32 under torch.compile), `grouped_matmul` runs one matmul per group, reading the
group sizes on the host (under torch.compile: a graph break).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from timm.layers import GluMlp, Mlp, SwiGLU
from torch import nn

GROUPED_MM = getattr(torch.nn.functional, "grouped_mm", None)
GROUPED_MM_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# The Linear layers each supported timm MLP type applies, by attribute name (GluMlp before its base Mlp).
MLP_LINEARS: tuple[tuple[type[nn.Module], tuple[str, ...]], ...] = (
    (SwiGLU, ("fc1_g", "fc1_x", "fc2")), (GluMlp, ("fc1", "fc2")), (Mlp, ("fc1", "fc2")))

Linear = Callable[[str, torch.Tensor], torch.Tensor]


def mlp_linears(mlp: nn.Module) -> tuple[str, ...]:
    """The names of ``mlp``'s Linear layers; a clear error for an MLP the stacked path cannot run."""
    names = next((names for kind, names in MLP_LINEARS if isinstance(mlp, kind)), None)
    if names is None:
        raise ValueError(f"MoE experts must be a timm Mlp, SwiGLU or GluMlp; got {type(mlp).__name__}")
    for name in names:
        if not isinstance(_base(getattr(mlp, name)), nn.Linear):
            raise ValueError(f"MoE expert {type(mlp).__name__}.{name} must be nn.Linear (use_conv is not supported), "
                             f"got {type(getattr(mlp, name)).__name__}")
    others = [n for n, _ in mlp.named_parameters() if n.split(".")[0] not in names]
    if others:
        raise ValueError(f"MoE expert {type(mlp).__name__} has parameters outside its Linear layers "
                         f"({', '.join(others)}); the stacked experts support a parameter-free norm only")
    return names


def _base(layer: nn.Module) -> nn.Module:
    """The Linear under a peft LoRA wrapper (the layer itself otherwise)."""
    return layer.get_base_layer() if hasattr(layer, "get_base_layer") else layer


def _lora_delta(layer: nn.Module) -> torch.Tensor | None:
    """The active LoRA adapters' weight delta of a peft-wrapped Linear (None: no adapter applies)."""
    if not hasattr(layer, "lora_A") or layer.merged or layer.disable_adapters:
        return None
    delta = None
    for adapter in layer.active_adapters:
        if adapter not in layer.lora_A:
            continue
        if any(getattr(layer, kind, {}).get(adapter) for kind in ("use_dora", "lora_variant", "lora_bias")):
            raise ValueError(f"LoRA adapter {adapter!r} on an MoE expert is a variant (DoRA, ...) or has a LoRA "
                             "bias; the stacked experts merge plain low-rank deltas only")
        if layer.training and not isinstance(layer.lora_dropout[adapter], nn.Identity):
            raise ValueError(f"LoRA adapter {adapter!r} on an MoE expert has dropout; the stacked experts merge "
                             "the low-rank delta into the weight, which needs LoRA dropout 0")
        step = layer.get_delta_weight(adapter)
        delta = step if delta is None else delta + step
    return delta


def stack_linear(layers: Sequence[nn.Module]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """E × out × in weights (LoRA deltas included) and E × out biases (None without bias)."""
    bases = [_base(layer) for layer in layers]
    weight = torch.stack([base.weight for base in bases])
    deltas = [_lora_delta(layer) for layer in layers]
    if any(d is not None for d in deltas):
        weight = weight + torch.stack([torch.zeros_like(b.weight) if d is None else d for b, d in zip(bases, deltas)])
    bias = torch.stack([base.bias for base in bases]) if bases[0].bias is not None else None
    return weight, bias


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """What an nn.Linear would multiply in here: autocast's dtype inside autocast (which does not cover
    grouped_mm), the input's otherwise."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


def grouped_matmul(x: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``x[rows of group e] @ weight[e].T`` for consecutive groups ending at ``offsets`` (int32, cumulative)."""
    row_bytes = {x.shape[-1] * x.element_size(), weight.shape[1] * weight.element_size()}
    # torch.compile's shape rule for grouped_mm (its meta function) takes bf16/fp16 only, eager takes fp32 too
    dtypes = GROUPED_MM_DTYPES[1:] if torch.compiler.is_compiling() else GROUPED_MM_DTYPES
    if GROUPED_MM is not None and x.dtype in dtypes and all(b % 16 == 0 for b in row_bytes):
        return GROUPED_MM(x, weight.transpose(-2, -1), offs=offsets)
    sizes = torch.diff(offsets, prepend=offsets.new_zeros(1)).tolist()
    return torch.cat([part @ w.T for part, w in zip(x.split(sizes), weight)])


def run_mlp(template: nn.Module, linear: Linear, x: torch.Tensor, experts: int = 1) -> torch.Tensor:
    """``template``'s forward (its activation, dropout and norm) with each Linear replaced by ``linear``;
    ``experts``: how many experts' features lie side by side in the hidden layer (GluMlp halves each)."""
    if isinstance(template, SwiGLU):
        h = template.act(linear("fc1_g", x)) * linear("fc1_x", x)
    elif isinstance(template, GluMlp):
        a, b = linear("fc1", x).unflatten(-1, (experts, -1)).chunk(2, dim=-1)
        h = (a * template.act(b) if template.gate_last else template.act(a) * b).flatten(-2)
    else:
        h = template.act(linear("fc1", x))
    return template.drop2(linear("fc2", template.norm(template.drop1(h))))


def _stacked(experts: Sequence[nn.Module], names: tuple[str, ...]
             ) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    return {name: stack_linear([getattr(e, name) for e in experts]) for name in names}


def run_routes(experts: Sequence[nn.Module], names: tuple[str, ...], x: torch.Tensor, top_index: torch.Tensor,
               weights: torch.Tensor) -> torch.Tensor:
    """S × P × D sources through their k experts (``top_index``, ``weights``: S × k) → S × P × D."""
    sources, tokens, dim = x.shape
    k = top_index.shape[1]
    route_expert = top_index.reshape(-1)                               # route r = source r // k, slot r % k
    order = route_expert.argsort(stable=True)
    sorted_expert = route_expert[order]
    # where each expert's group ends, in rows (routes × tokens per route)
    ends = torch.searchsorted(sorted_expert, torch.arange(len(experts), device=x.device), right=True)
    offsets = (ends * tokens).to(torch.int32)
    dtype = compute_dtype(x)
    stacked = _stacked(experts, names)

    def linear(name: str, h: torch.Tensor) -> torch.Tensor:
        weight, bias = stacked[name]
        y = grouped_matmul(h.to(dtype), weight.to(dtype), offsets)
        if bias is None:
            return y
        return (y.view(-1, tokens, y.shape[-1]) + bias.to(dtype)[sorted_expert][:, None]).view_as(y)

    routed = x[order // k].reshape(-1, dim)
    y = run_mlp(experts[0], linear, routed).view(-1, tokens, dim)
    inverse = torch.empty_like(order).scatter_(0, order, torch.arange(len(order), device=order.device))
    y = y[inverse].view(sources, k, tokens, dim)
    return (y * weights.to(x.dtype)[:, :, None, None]).sum(dim=1)


def run_selected(experts: Sequence[nn.Module], names: tuple[str, ...], x: torch.Tensor, chosen: torch.Tensor,
                 weights: torch.Tensor) -> torch.Tensor:
    """Every token of ``x`` (… × D) through the same k experts ``chosen`` (k,) with ``weights`` (k,).

    The k experts act as one MLP k times as wide: their input layers side by side, and the output
    layer ``[w_1·W_1 … w_k·W_k]`` with bias ``Σ w_j·b_j``, which sums the weighted experts inside the
    matmul (``Σ_j w_j·(h_j·W_jᵀ + b_j)``). With k = 1 that is the expert's own MLP (its weight is 1).
    The MLP's output dropout (zero in DINOv3) then drops from the mixture, not from each expert."""
    stacked = _stacked(experts, names)
    k = chosen.shape[0]

    def linear(name: str, h: torch.Tensor) -> torch.Tensor:
        weight, bias = stacked[name]
        weight, bias = weight[chosen], None if bias is None else bias[chosen]     # k × out × in, k × out
        if name == names[-1]:
            w = weights.to(weight.dtype)
            weight = (weight * w[:, None, None]).permute(1, 0, 2).flatten(1)       # out × (k·in)
            bias = None if bias is None else (bias * w[:, None]).sum(dim=0)
        else:
            weight, bias = weight.flatten(0, 1), None if bias is None else bias.flatten()  # (k·out) × in
        return F.linear(h, weight, bias)  # autocast applies as in each expert's nn.Linear

    return run_mlp(experts[0], linear, x, experts=k)
