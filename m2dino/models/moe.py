"""Task-conditioned Mixture-of-Experts: router, experts and the MoE wrapper (torchtitan's split).

Each chosen block's MLP becomes E experts upcycled from it, so at initialisation the model computes
exactly what the dense backbone computes. A router turns a learned task embedding (optionally plus
token features) into expert logits; routing runs in fp32 and takes the top-k with renormalised weights.
The experts run as one grouped matrix multiply over their stacked weights, without a loop over experts
or a host synchronisation (`expert_dispatch`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .expert_dispatch import mlp_linears, run_routes, run_selected

ROUTING_MODES = ("task", "task+token")


@dataclass
class TaskRouting:
    """What the MoE blocks need to route one batch."""

    task_index: torch.Tensor      # (B,) long: row of each sample's task in the task table
    task_embedding: torch.Tensor  # (B, D) the samples' task embeddings
    all_task_embeddings: torch.Tensor  # (T, D) every task's embedding (for the balancing loss)
    single_task: bool             # all samples share one task: experts run on the whole batch


class TaskRouter(nn.Module):
    """Logits ``W_t·e_task`` (+ ``W_x·x`` in task+token mode), computed in fp32."""

    def __init__(self, dim: int, task_embed_dim: int, num_experts: int, top_k: int, mode: str = "task") -> None:
        super().__init__()
        if mode not in ROUTING_MODES:
            raise ValueError(f"unknown routing mode {mode!r}; expected one of {ROUTING_MODES}")
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in 1..num_experts={num_experts}, got {top_k}")
        self.num_experts, self.top_k, self.mode = num_experts, top_k, mode
        self.task_proj = nn.Linear(task_embed_dim, num_experts, bias=False)
        # Token logits start at zero so that enabling them does not change the initial routing.
        self.token_proj = nn.Linear(dim, num_experts, bias=False) if mode == "task+token" else None
        nn.init.normal_(self.task_proj.weight, std=task_embed_dim ** -0.5)
        if self.token_proj is not None:
            nn.init.zeros_(self.token_proj.weight)

    def task_logits(self, task_embedding: torch.Tensor) -> torch.Tensor:
        with torch.autocast(task_embedding.device.type, enabled=False):
            return F.linear(task_embedding.float(), self.task_proj.weight.float())

    def token_logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.float(), self.token_proj.weight.float())

    def select(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top-k experts, their renormalised weights and the full softmax (all fp32).

        With k = 1 the renormalised weight is identically 1 and would give the router no gradient;
        there the weight is ``p / p.detach()`` (value 1, gradient of the raw probability, as in Switch).
        """
        probs = logits.softmax(dim=-1)
        top_probs, top_index = probs.topk(self.top_k, dim=-1)
        if self.top_k == 1:
            weights = top_probs / top_probs.detach()
        else:
            weights = top_probs / top_probs.sum(dim=-1, keepdim=True)
        return top_index, weights, probs


class Experts(nn.Module):
    """E copies of the dense MLP (a timm Mlp, SwiGLU or GluMlp) and how routed tokens run through them:
    stacked weights and one grouped matrix multiply, never a loop over experts (`expert_dispatch`)."""

    def __init__(self, mlp: nn.Module, num_experts: int) -> None:
        super().__init__()
        self.linears = mlp_linears(mlp)
        self.experts = nn.ModuleList(copy.deepcopy(mlp) for _ in range(num_experts))

    def __len__(self) -> int:
        return len(self.experts)

    def __getitem__(self, index: int) -> nn.Module:
        return self.experts[index]

    def run_routes(self, x: torch.Tensor, top_index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """S × P × D sources (samples or tokens), each through its k experts (``top_index``, ``weights``: S × k)."""
        return run_routes(list(self.experts), self.linears, x, top_index, weights)

    def run_selected(self, x: torch.Tensor, chosen: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Every token through the same k experts ``chosen`` (k,) with ``weights`` (k,)."""
        return run_selected(list(self.experts), self.linears, x, chosen, weights)


class TaskMoE(nn.Module):
    """Drop-in replacement for a block's MLP: ``forward(x, routing) -> (y, balancing_loss)``."""

    def __init__(self, mlp: nn.Module, dim: int, task_embed_dim: int, num_experts: int = 8, top_k: int = 2,
                 mode: str = "task", num_tasks: int = 1) -> None:
        super().__init__()
        self.experts = Experts(mlp, num_experts)
        self.router = TaskRouter(dim, task_embed_dim, num_experts, top_k, mode)
        # Tokens each task sent to each expert (statistics, not saved); see `resize_tasks`.
        self.register_buffer("usage_counts", torch.zeros(num_tasks, num_experts), persistent=False)

    @property
    def num_experts(self) -> int:
        return self.router.num_experts

    @property
    def top_k(self) -> int:
        return self.router.top_k

    @property
    def mode(self) -> str:
        return self.router.mode

    def forward(self, x: torch.Tensor, routing: TaskRouting) -> tuple[torch.Tensor, torch.Tensor]:
        task_logits = self.router.task_logits(routing.task_embedding)          # B × E
        if self.mode == "task":
            top_index, weights, _ = self.router.select(task_logits)            # B × k
            if routing.single_task:  # one task: its k experts see every token, nothing to gather
                y = self.experts.run_selected(x, top_index[0], weights[0])
            else:
                y = self.experts.run_routes(x, top_index, weights)
            self._record_usage(routing.task_index, top_index, tokens_per_route=x.shape[1])
            aux = self._task_balance_loss(routing.all_task_embeddings)
        else:
            logits = task_logits[:, None, :] + self.router.token_logits(x)      # B × N × E
            top_index, weights, probs = self.router.select(logits)
            flat = x.reshape(-1, 1, x.shape[-1])                               # every token routes alone
            y = self.experts.run_routes(flat, top_index.reshape(-1, self.top_k), weights.reshape(-1, self.top_k))
            y = y.view_as(x)
            self._record_usage(routing.task_index, top_index.flatten(1), tokens_per_route=1)
            aux = self._switch_balance_loss(probs.flatten(0, 1), top_index.flatten(0, 1))
        return y, aux

    def _task_balance_loss(self, all_task_embeddings: torch.Tensor) -> torch.Tensor:
        """Switch-style ``E·Σ f_e·P_e`` over the task table rather than the batch.

        With task routing a batch holds one task, so a per-batch loss would only flatten that
        task's distribution; balancing across all tasks' routes is what spreads experts.
        """
        logits = self.router.task_logits(all_task_embeddings)
        top_index, _, probs = self.router.select(logits)
        return self._switch_balance_loss(probs, top_index)

    def _switch_balance_loss(self, probs: torch.Tensor, top_index: torch.Tensor) -> torch.Tensor:
        counts = torch.zeros(self.num_experts, device=probs.device).index_add_(
            0, top_index.flatten(), torch.ones(top_index.numel(), device=probs.device))
        fraction = counts / top_index.numel()
        return self.num_experts * (fraction * probs.mean(dim=0)).sum()

    @torch.no_grad()
    def _record_usage(self, task_index: torch.Tensor, top_index: torch.Tensor, tokens_per_route: int) -> None:
        rows = task_index[:, None].expand_as(top_index).flatten()
        flat = rows * self.num_experts + top_index.flatten()
        # index_add_, not bincount: bincount reads its input's maximum back to the host on CUDA
        counts = torch.full(flat.shape, float(tokens_per_route), dtype=self.usage_counts.dtype, device=flat.device)
        self.usage_counts.view(-1).index_add_(0, flat, counts)

    def resize_tasks(self, num_tasks: int, keep: list[int] | None = None) -> None:
        """Resize the usage table for a new task table (``keep`` = old rows to carry, in order)."""
        old = self.usage_counts
        new = torch.zeros(num_tasks, self.num_experts, device=old.device)
        if keep is not None and old.numel():
            rows = torch.tensor(keep, device=old.device)
            new[: len(keep)] = old[rows]
        elif old.numel():
            rows = min(num_tasks, old.shape[0])
            new[:rows] = old[:rows]
        self.usage_counts = new

    def reset_usage(self) -> None:
        self.usage_counts.zero_()

    @torch.no_grad()
    def task_routes(self, task_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each task's top-k experts and weights from its embedding alone (task-level part)."""
        top_index, weights, _ = self.router.select(self.router.task_logits(task_embeddings))
        return top_index, weights.detach()


class FixedMixture(nn.Module):
    """A TaskMoE collapsed to one task: its k experts with their fixed weights (`extract_task`)."""

    def __init__(self, experts: list[nn.Module], weights: list[float]) -> None:
        super().__init__()
        self.experts = nn.ModuleList(experts)
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for expert, weight in zip(self.experts, self.weights.to(x.dtype)):
            y = expert(x) * weight
            out = y if out is None else out + y
        return out
