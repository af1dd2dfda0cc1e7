"""One process of the two-process FSDP test (`test_fsdp.py` starts two under torchrun):

    python -m torch.distributed.run --nproc_per_node 2 fsdp_worker.py OUTPUT STEPS CHECKPOINT_AT [RESUME]

trains the tiny model's `LossModule` sharded for STEPS steps from the start, or from the checkpoint
RESUME, writes a checkpoint after step CHECKPOINT_AT (the engine's own `save_training_state`), and
leaves the complete weights (gathered from the shards) in OUTPUT/weights.safetensors."""

import json
import sys
from pathlib import Path

import torch
from accelerate.utils import DistributedType
from safetensors.torch import save_file

from m2dino import M2DINO, M2DINOConfig
from m2dino.training.accelerator_setup import make_accelerator
from m2dino.training.checkpoint import load_training_state, save_training_state
from m2dino.training.optim import warmup_cosine
from m2dino.training.trainer_loss import LossModule

TASKS = ["fetal_head", "fetal_plane_cls", "IUGC"]  # a mask, a class and three points per image


def batch(step: int, rank: int) -> tuple[torch.Tensor, str, torch.Tensor]:
    """Step ``step``'s images and targets on process ``rank``: every process trains the same task (as the
    engine's sampler ensures), on its own images."""
    generator = torch.Generator().manual_seed(1000 * step + rank)
    task = TASKS[step % len(TASKS)]
    pixels = torch.randn(2, 3, 32, 32, generator=generator)
    targets = {"fetal_head": lambda: (torch.rand(2, 32, 32, generator=generator) > 0.5).long(),
               "fetal_plane_cls": lambda: torch.randint(0, 6, (2,), generator=generator),
               "IUGC": lambda: torch.rand(2, 3, 2, generator=generator) * 32}[task]()
    return pixels, task, targets


def main(output: Path, steps: int, checkpoint_at: int, resume: str | None) -> None:
    torch.manual_seed(0)
    model = M2DINO(M2DINOConfig(backbone="test", tasks=TASKS, moe_blocks=(), decoder_features=8, image_size=32))
    accelerator = make_accelerator("no", output, distributed="fsdp", model=model)
    assert accelerator.distributed_type == DistributedType.FSDP, accelerator.distributed_type
    module = LossModule(model, model, None)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    module, optimizer, scheduler = accelerator.prepare(module, optimizer, warmup_cosine(optimizer, 1, steps, 0.01))
    start = 0
    if resume is not None:
        start = load_training_state(accelerator, Path(resume), module=module, optimizer=optimizer,
                                    scheduler=scheduler)["counters"]["step"]
    losses = []
    for step in range(start, steps):
        loss = module(*batch(step, accelerator.process_index))["loss"]
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step + 1 == checkpoint_at:
            save_training_state(accelerator, output / "checkpoints", step + 1, 2, module=module, optimizer=optimizer,
                                scheduler=scheduler, state={"counters": {"step": step + 1}}, run_id="fsdp-test")
    weights = accelerator.get_state_dict(module)  # every process takes part; the main one gets them all
    local = sum(p.to_local().numel() for p in module.parameters())
    total = sum(p.numel() for p in module.parameters())
    if accelerator.is_main_process:
        save_file({k: v.contiguous() for k, v in weights.items()}, str(output / "weights.safetensors"))
    (output / f"rank{accelerator.process_index}.json").write_text(json.dumps(
        {"losses": losses, "local_parameters": local, "parameters": total}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
