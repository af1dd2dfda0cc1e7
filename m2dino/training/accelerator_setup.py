"""The `accelerate.Accelerator` every training loop shares (supervised and pretraining): its precision,
its tracker and how several processes split the work (DDP, or FSDP shards)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import PartialState
from accelerate.utils import DistributedDataParallelKwargs, DistributedType, FullyShardedDataParallelPlugin

from ..models import M2DINO
from .train_config import DISTRIBUTED

CPU_BF16_FEATURES = ("amx_bf16", "avx512_bf16", "bf16", "sve_bf16")  # x86 (AMX, AVX-512) and Arm names


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX-BF16 or AVX512-BF16 on x86, BF16 on Arm). Elsewhere torch
    emulates bf16 in fp32 and a bf16 step is slower than an fp32 one."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.10
    if capabilities is not None:
        found = capabilities()
        return any(found.get(name, False) for name in CPU_BF16_FEATURES)
    try:  # older torch: the kernel's flags (x86 "flags", Arm "Features")
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith(("flags", "Features"))
             for flag in line.split(":", 1)[1].split()}
    return any(name in flags for name in CPU_BF16_FEATURES)


def _runs_on_cpu() -> bool:
    """Whether accelerate will put the model on the CPU (no accelerator, or ACCELERATE_USE_CPU)."""
    if os.environ.get("ACCELERATE_USE_CPU", "false").lower() in ("1", "true", "yes"):
        return True
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, XPU, MPS, ...
    return not (accelerator.is_available() if accelerator is not None else torch.cuda.is_available())


def resolve_precision(choice: str) -> str:
    """``auto``: bf16 on a GPU that supports it, else fp32 ("no"); ``bf16`` on a CPU without native bf16:
    a warning and fp32; any other choice as given."""
    if choice == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    if choice == "bf16" and _runs_on_cpu() and not cpu_supports_bf16():
        warnings.warn("mixed_precision='bf16' asks for bf16 on a CPU without native bf16 (neither AMX-BF16 nor "
                      "AVX512-BF16; torch would emulate it, slower than fp32): training in fp32", stacklevel=2)
        return "no"
    return choice


def tracker() -> str | None:
    """TensorBoard when it is installed (the ``dev`` extra), else no tracker."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return None
    return "tensorboard"


def sharded_module_names(model: M2DINO) -> list[str]:
    """The classes FSDP shards one by one: each block's attention and MLP (or task-MoE). Not the blocks
    themselves: `DINOv3Backbone.run_block` calls a block's parts, never the block, and FSDP gathers a
    shard in the forward hook of the module that is called. For the same reason a class that also occurs
    inside one of those parts stays in an outer shard: a task-MoE's experts are copies of the dense MLP
    whose weights the grouped dispatch reads without calling them (the dense blocks' MLPs then go into
    the root's shard)."""
    parts = [part for block in model.backbone.blocks for part in (block.attn, block.mlp)]
    inner = {type(module).__name__ for part in parts for module in list(part.modules())[1:]}
    return sorted({type(part).__name__ for part in parts} - inner)


def fsdp_plugin(model: M2DINO) -> FullyShardedDataParallelPlugin:
    """FSDP2: attention and MLP/MoE of every block in their own shards (the rest, heads included, in the
    root's); checkpoints in shards (every process writes its own, through accelerate's save_state)."""
    return FullyShardedDataParallelPlugin(
        fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=sharded_module_names(model), reshard_after_forward=True,
        state_dict_type="SHARDED_STATE_DICT", cpu_ram_efficient_loading=False)


def _select_fsdp_on_cpu(accelerator: Accelerator, plugin: FullyShardedDataParallelPlugin) -> None:
    """accelerate (1.16, `AcceleratorState.__init__`) selects FSDP only for GPU-like process groups
    (MULTI_GPU, MULTI_XPU, ...), never for MULTI_CPU: there it drops the plugin without a word and wraps
    the model in DDP. torch's FSDP2 runs on gloo, and accelerate's FSDP2 paths (prepare, clip, save_state,
    load_state) work once selected, so a CPU run selects it here, as accelerate would for a GPU."""
    state = accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU:
        return
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def make_accelerator(mixed_precision: str, project_dir: str | Path, grad_accum: int = 1, distributed: str = "ddp",
                     model: M2DINO | None = None, find_unused_parameters: bool = False) -> Accelerator:
    """The Accelerator of a training run. ``distributed`` applies to runs of several processes (torchrun
    or ``accelerate launch``): ``ddp`` keeps a replica per process, ``fsdp`` shards weights, gradients and
    optimizer state across them (``model`` names what to shard; see `fsdp_plugin`). ``mixed_precision``
    as `resolve_precision` takes it. ``find_unused_parameters``: DDP's, for a model whose steps leave parts
    unused (another task's head)."""
    if distributed not in DISTRIBUTED:
        raise ValueError(f"distributed={distributed!r}; expected one of {DISTRIBUTED}")
    plugin = None
    if distributed == "fsdp":  # used by several processes only (one process has nothing to shard)
        if model is None:
            raise ValueError("distributed='fsdp' needs the model to choose its shards")
        plugin = fsdp_plugin(model)
    accelerator = Accelerator(
        mixed_precision=resolve_precision(mixed_precision), gradient_accumulation_steps=grad_accum,
        log_with=tracker(), project_dir=str(project_dir), fsdp_plugin=plugin,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)] if find_unused_parameters else [])
    if plugin is not None:
        _select_fsdp_on_cpu(accelerator, plugin)
    return accelerator
