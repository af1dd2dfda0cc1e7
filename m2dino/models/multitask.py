"""M2DINO, the multi-task model: a DINOv3 backbone whose chosen blocks are task-conditioned MoEs, plus one
head per task."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..image import ImageLike, ResizeGeometry
from ..tasks import TaskSpec, UnknownTaskError, get_task
from . import hub, zoo
from .backbone import BackboneOutput, DINOv3Backbone
from .config_fit import check_config_fits_weights
from .heads import build_head
from .model_config import CONFIG_NAME, M2DINOConfig
from .moe import FixedMixture, TaskMoE, TaskRouting
from .outputs import MultiTaskOutput, TaskOutput
from .predictions import Prediction
from .spatial_prior import ModelFeatures, SpatialPrior, spatial_maps


def resolve_task_specs(tasks: Sequence[str], saved_specs: Mapping[str, dict]) -> dict[str, TaskSpec]:
    """Each task's spec: the one saved with the checkpoint (``saved_specs``, a config's ``task_specs``),
    else the registry's. Read only: a task the registry does not know stays the model's own
    (`M2DINO.task_specs`)."""
    specs = {}
    for task in tasks:
        saved = saved_specs.get(task)
        if saved is None:
            specs[task] = get_task(task)
            continue
        spec = TaskSpec.from_dict(saved)
        try:
            known = get_task(task)
        except UnknownTaskError:
            known = spec
        # Data of a registered task is read with the registry's spec; a different head would misread it.
        if known != spec:
            raise ValueError(f"task {task!r}: the checkpoint's spec differs from the registered one "
                             f"(checkpoint {spec.to_dict()}, registry {known.to_dict()})")
        specs[task] = spec
    return specs


class M2DINO(nn.Module):
    """Multi-task ultrasound model. ``model(pixel_values, task=...)`` gives a typed output per task type.

    ``pixel_values`` are B×3×H×W normalised with ``config.mean/std``; H and W multiples of 16.
    ``task`` is one task id for the whole batch, or one id per sample (a mixed-task batch).

    The model keeps its own copy of ``config`` and its own task specs (``task_specs``, also saved in
    the copy's ``config.task_specs``): building or loading a model changes neither the caller's config
    nor the global task registry.
    """

    def __init__(self, config: M2DINOConfig, backbone_weights: str | None = None) -> None:
        super().__init__()
        self.task_specs: dict[str, TaskSpec] = resolve_task_specs(config.tasks, config.task_specs)
        self.config = config = copy.deepcopy(config)
        config.task_specs = {t: s.to_dict() for t, s in self.task_specs.items()}
        specs = list(self.task_specs.values())
        self.backbone = DINOv3Backbone(config.backbone, drop_path_rate=config.drop_path_rate,
                                       **config.backbone_overrides)
        if backbone_weights is not None:
            from .pretrained_weights import load_backbone_weights

            load_backbone_weights(self.backbone, backbone_weights)
            config.backbone_weights = backbone_weights
        depth, dim = self.backbone.depth, self.backbone.embed_dim
        for block in (*config.moe_blocks, *config.collapsed_moe):
            if not -depth <= block < depth:
                raise ValueError(f"MoE block {block} out of range for {config.backbone} ({depth} blocks)")
        self.moe_blocks = tuple(sorted(b % depth for b in config.moe_blocks))
        self.feature_blocks = tuple(b % depth for b in config.feature_blocks) if config.feature_blocks else \
            tuple(round(depth * (i + 1) / 4) - 1 for i in range(4))
        self.task_ids = [s.id for s in specs]
        self.task_embedding = nn.Embedding(len(specs), config.task_embed_dim)
        nn.init.normal_(self.task_embedding.weight)
        for index in self.moe_blocks:
            block = self.backbone.blocks[index]
            block.mlp = TaskMoE(block.mlp, dim, config.task_embed_dim, config.num_experts, config.top_k,
                                config.routing, num_tasks=len(specs))
        for index, kept in config.collapsed_moe.items():
            block = self.backbone.blocks[index % depth]
            # weights are placeholders until the extracted checkpoint's values load over them
            block.mlp = FixedMixture([copy.deepcopy(block.mlp) for _ in range(kept)], [1.0] * kept)
        self.heads = nn.ModuleDict({s.id: build_head(s, dim, config.decoder_features) for s in specs})
        # Beside the backbone, never in it: its maps go to the dense heads only (None: no such module,
        # so a model saved without the branch has the same state dict as before the option existed).
        self.spatial_prior = SpatialPrior(config.decoder_features) if config.spatial_prior else None

    # ----------------------------------------------------------------------------------- tasks
    def task_spec(self, task: str) -> TaskSpec:
        """This model's spec of ``task`` (the checkpoint's own, which the registry need not know)."""
        if task not in self.task_specs:
            get_task(task)  # an id unknown everywhere: the registry's error lists the closest ids
            raise ValueError(f"task {task!r} is not one of this model's {len(self.task_ids)} tasks: "
                             f"{', '.join(self.task_ids)}")
        return self.task_specs[task]

    def routing(self, tasks: Sequence[str]) -> TaskRouting:
        """The MoE routing of a batch with one task id per sample (checked against this model's tasks)."""
        tasks = list(tasks)
        for task in dict.fromkeys(tasks):
            self.task_spec(task)
        index = torch.tensor([self.task_ids.index(t) for t in tasks], device=self._device())
        return TaskRouting(index, self.task_embedding(index), self.task_embedding.weight,
                           single_task=len(set(tasks)) == 1)

    # --------------------------------------------------------------------------------- forward
    def forward(self, pixel_values: torch.Tensor, task: str | Sequence[str]) -> TaskOutput | MultiTaskOutput:
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4:
            shape = tuple(pixel_values.shape) if hasattr(pixel_values, "shape") else type(pixel_values).__name__
            raise ValueError(f"pixel_values of shape {shape}; expected a batch B×3×H×W (one image: x[None]); "
                             "`predict` takes images of any size")
        batch = pixel_values.shape[0]
        tasks = [task] * max(batch, 0) if isinstance(task, str) else list(task)
        if not isinstance(task, str) and len(tasks) != batch:
            raise ValueError(f"{len(tasks)} task ids for a batch of {batch} images; expected one per image")
        features = self.forward_features(pixel_values, tasks)
        image_size = tuple(pixel_values.shape[-2:])
        if isinstance(task, str):
            return self.forward_head(task, features, image_size)
        outputs, indices = {}, {}
        for name in dict.fromkeys(tasks):
            rows = torch.tensor([i for i, t in enumerate(tasks) if t == name], device=pixel_values.device)
            outputs[name] = self.forward_head(name, features.select(rows), image_size)
            indices[name] = rows
        return MultiTaskOutput(outputs, indices, features.aux_loss)

    def forward_features(self, pixel_values: torch.Tensor, task: str | Sequence[str]) -> ModelFeatures:
        """The routed backbone for a batch (one task id, or one per sample), with the feature levels
        (and the spatial prior's maps) that the heads of those tasks read."""
        tasks = [task] * pixel_values.shape[0] if isinstance(task, str) else list(task)
        needs_levels = any(self.heads[t].uses_levels for t in set(tasks) if t in self.heads)
        features = self.backbone.forward_features(pixel_values, self.routing(tasks),
                                                  self.feature_blocks if needs_levels else ())
        return ModelFeatures.of(features, self._spatial_maps(pixel_values, needs_levels))

    def _spatial_maps(self, pixel_values: torch.Tensor, needs_levels: bool) -> dict[int, torch.Tensor]:
        """The spatial prior on the pixels, run only for a batch with a dense head ({} without the branch)."""
        return self.spatial_prior(pixel_values) if needs_levels and self.spatial_prior is not None else {}

    def forward_head(self, task: str, features: BackboneOutput, image_size: tuple[int, int]) -> TaskOutput:
        """One task's head on features of that task's samples (`forward_features`: the backbone's output
        and, for a model with the spatial prior, its maps)."""
        if self.spatial_prior is not None and self.heads[task].uses_levels and not spatial_maps(features):
            raise ValueError(f"task {task!r}: this model's dense heads read the spatial prior's maps, which "
                             "these features lack; compute them with M2DINO.forward_features")
        levels = [features.intermediates[b] for b in self.feature_blocks] if features.intermediates else []
        output = self.heads[task](features, levels, task, image_size)
        output.aux_loss = features.aux_loss
        return output

    def loss(self, output: TaskOutput | MultiTaskOutput, targets, task: str | None = None,
             return_parts: bool = False) -> torch.Tensor | dict[str, torch.Tensor]:
        """Task loss (+ ``balance_loss_weight`` × MoE balancing loss). For a mixed batch, ``targets``
        maps each task to its targets and the task losses are averaged."""
        if isinstance(output, MultiTaskOutput):
            missing = set(output.outputs) - set(targets)
            if missing:
                raise ValueError(f"no targets for tasks {sorted(missing)} of this mixed batch")
            task_loss = torch.stack([self.heads[t].loss(o, targets[t]) for t, o in output.outputs.items()]).mean()
        else:
            if task is not None and task != output.task:
                raise ValueError(f"loss asked for task {task!r} but the output is for {output.task!r}")
            task_loss = self.heads[output.task].loss(output, targets)
        balance = output.aux_loss if output.aux_loss is not None else task_loss.new_zeros(())
        total = task_loss + self.config.balance_loss_weight * balance
        if return_parts:  # not detached: a trainer may re-weight the task loss
            return {"loss": total, "task_loss": task_loss, "balance_loss": balance}
        return total

    # ------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def predict(self, image: ImageLike | Sequence[ImageLike], task: str, top_n: int | None = None
                ) -> Prediction | list[Prediction]:
        """Predict on path / PIL / numpy image(s) of any size, gray or RGB; results in ORIGINAL pixels."""
        single = not isinstance(image, (list, tuple))
        images = [image] if single else list(image)
        self.task_spec(task)
        pixel_values, geometries = self.preprocess(images)
        was_training = self.training
        self.eval()
        try:
            output = self(pixel_values, task=task)
        finally:
            self.train(was_training)
        results = [self.postprocess(output, i, geometries[i], top_n) for i in range(len(images))]
        return results[0] if single else results

    def preprocess(self, images: Sequence[ImageLike]) -> tuple[torch.Tensor, list[ResizeGeometry]]:
        """Images of any size → this model's normalised input on its device, and each image's geometry."""
        pixel_values, geometries = self.config.preprocessing(images)
        return pixel_values.to(self._device()), geometries

    def postprocess(self, output: TaskOutput, index: int, geometry: ResizeGeometry, top_n: int | None = None
                    ) -> Prediction:
        """Sample ``index`` of a task's ``output`` as a typed prediction in ORIGINAL pixels (by its head)."""
        return self.heads[output.task].predict(output, index, geometry, self.task_specs[output.task], top_n)

    @torch.no_grad()
    def predict_all(self, image: ImageLike, tasks: Sequence[str] | None = None, top_n: int | None = None
                    ) -> dict[str, Prediction]:
        """Every task (or ``tasks``) for one image. The dense blocks before the first MoE block run
        once; the MoE blocks run on one copy of the hidden state per task, grouped by expert."""
        tasks = list(tasks or self.task_ids)
        for task in tasks:
            self.task_spec(task)
        pixel_values, geometries = self.preprocess([image])
        was_training = self.training
        self.eval()
        try:
            outputs = self.forward_all(pixel_values, tasks)
        finally:
            self.train(was_training)
        return {t: self.postprocess(outputs[t], 0, geometries[0], top_n) for t in tasks}

    def forward_all(self, pixel_values: torch.Tensor, tasks: Sequence[str]) -> dict[str, TaskOutput]:
        """Every task in ``tasks`` for ONE image (batch of 1): `forward_features_all`, then each head."""
        tasks = list(tasks)
        features = self.forward_features_all(pixel_values, tasks)
        image_size = tuple(pixel_values.shape[-2:])
        return {t: self.forward_head(t, features.select(torch.tensor([i])), image_size) for i, t in enumerate(tasks)}

    def forward_features_all(self, pixel_values: torch.Tensor, tasks: Sequence[str]) -> ModelFeatures:
        """Backbone features of ONE image for every task in ``tasks`` (row i is ``tasks[i]``): the dense
        blocks before the first MoE block (and the spatial prior) run once, the MoE blocks on one copy
        of the hidden state per task, grouped by expert."""
        tasks = list(tasks)
        if pixel_values.ndim != 4 or pixel_values.shape[0] != 1:
            raise ValueError(f"forward_all takes one image (1×3×H×W), got shape {tuple(pixel_values.shape)}")
        backbone = self.backbone
        backbone.check_input(pixel_values)
        needs_levels = any(self.heads[t].uses_levels for t in tasks if t in self.heads)
        wanted = self.feature_blocks if needs_levels else ()
        first_routed = self.moe_blocks[0] if self.moe_blocks else backbone.depth
        routing = self.routing(tasks)
        x, rope, grid = backbone.embed(pixel_values)
        x, shared_levels, _ = backbone.run_blocks(x, rope, grid, None, wanted, stop=first_routed)
        n = len(tasks)
        x, routed_levels, aux = backbone.run_blocks(x.expand(n, -1, -1), rope, grid, routing, wanted,
                                                    start=first_routed)
        levels = {**{b: m.expand(n, -1, -1, -1) for b, m in shared_levels.items()}, **routed_levels}
        spatial = {s: m.expand(n, -1, -1, -1) for s, m in self._spatial_maps(pixel_values, needs_levels).items()}
        return ModelFeatures(backbone.norm(x), grid, backbone.num_prefix_tokens, levels, aux, spatial)

    def _device(self) -> torch.device:
        return self.task_embedding.weight.device

    # ----------------------------------------------------------------- task surgery and routing
    def select_tasks(self, tasks: Sequence[str]) -> "M2DINO":
        """Keep only ``tasks`` (heads, task-embedding rows, usage statistics), in place."""
        tasks = list(tasks)
        for task in tasks:
            self.task_spec(task)
        keep = [self.task_ids.index(t) for t in tasks]
        embedding = nn.Embedding(len(keep), self.config.task_embed_dim).to(self.task_embedding.weight)
        embedding.weight.data.copy_(self.task_embedding.weight.data[keep])
        self.task_embedding = embedding
        self.heads = nn.ModuleDict({t: self.heads[t] for t in tasks})
        for moe in self.moe_modules():
            moe.resize_tasks(len(keep), keep)
        self.task_ids = tasks
        self.task_specs = {t: self.task_specs[t] for t in tasks}
        self.config.tasks = tasks
        self.config.task_specs = {t: self.config.task_specs[t] for t in tasks}
        return self

    def add_task(self, spec: TaskSpec | str) -> "M2DINO":
        """A new head and router entry; every existing task's computation is unchanged. A `TaskSpec`
        becomes this model's own: to build datasets of it, `register_task` it as well."""
        spec = spec if isinstance(spec, TaskSpec) else get_task(spec)
        if spec.id in self.heads:
            raise ValueError(f"task {spec.id!r} is already one of this model's tasks")
        if self.config.collapsed_moe:
            raise ValueError("this model was extracted for one task (its MoE blocks are collapsed); "
                             "add tasks to the multi-task model it came from")
        old = self.task_embedding.weight.data
        embedding = nn.Embedding(old.shape[0] + 1, old.shape[1]).to(old)
        nn.init.normal_(embedding.weight)
        embedding.weight.data[:-1] = old
        self.task_embedding = embedding
        self.heads[spec.id] = build_head(spec, self.backbone.embed_dim, self.config.decoder_features).to(old.device)
        for moe in self.moe_modules():
            moe.resize_tasks(len(self.task_ids) + 1)
        self.task_ids.append(spec.id)
        self.task_specs[spec.id] = spec
        self.config.tasks = list(self.task_ids)
        self.config.task_specs[spec.id] = spec.to_dict()
        return self

    def extract_task(self, task: str) -> "M2DINO":
        """A single-task model computing exactly this task's outputs: with task routing each MoE is
        collapsed to the task's k experts and their fixed weights (no router, E−k experts dropped)."""
        self.task_spec(task)
        single = copy.deepcopy(self).select_tasks([task])
        if self.config.routing == "task" and self.moe_blocks:
            for b in single.moe_blocks:
                moe = single.backbone.blocks[b].mlp
                experts, weights = moe.task_routes(single.task_embedding.weight)
                single.backbone.blocks[b].mlp = FixedMixture([moe.experts[e] for e in experts[0].tolist()],
                                                             weights[0].tolist())
            single.config.collapsed_moe = {b: self.config.top_k for b in single.moe_blocks}
            single.config.moe_blocks = ()
            single.moe_blocks = ()
        return single

    def moe_modules(self) -> list[TaskMoE]:
        return [b.mlp for b in self.backbone.blocks if isinstance(b.mlp, TaskMoE)]

    @torch.no_grad()
    def routing_table(self) -> dict[str, dict[int, list[tuple[int, float]]]]:
        """Task → MoE block → [(expert, weight)] from the task-level router (task routing mode)."""
        table: dict[str, dict[int, list[tuple[int, float]]]] = {t: {} for t in self.task_ids}
        for b in self.moe_blocks:
            experts, weights = self.backbone.blocks[b].mlp.task_routes(self.task_embedding.weight)
            for row, task in enumerate(self.task_ids):
                table[task][b] = [(int(e), float(w)) for e, w in zip(experts[row], weights[row])]
        return table

    def expert_usage(self) -> dict[int, torch.Tensor]:
        """MoE block → tasks × experts fraction of tokens routed since the last reset."""
        usage = {}
        for b in self.moe_blocks:
            counts = self.backbone.blocks[b].mlp.usage_counts
            usage[b] = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
        return usage

    # ------------------------------------------------------------------------------------- hub
    def save_pretrained(self, directory: str | Path, card_extra: dict | None = None) -> Path:
        """config.json, model.safetensors and the model card (README.md) in ``directory``."""
        # deferred: importing huggingface_hub (the card's renderer) is paid only when saving
        from .model_card import render_model_card

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory)
        hub.save_weights(self.state_dict(), directory)
        card = render_model_card(self.config, self.backbone.depth, self.backbone.embed_dim, self.moe_blocks,
                                 sum(p.numel() for p in self.parameters()), card_extra or {})
        (directory / hub.CARD_NAME).write_text(card)
        return directory

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | Path, revision: str | None = None,
                        tasks: Sequence[str] | None = None, cache_dir: str | Path | None = None,
                        token: str | bool | None = None, device: str | torch.device = "cpu") -> "M2DINO":
        """A saved model from a local folder, a zoo name (`m2dino.list_pretrained()`: its bundled copy,
        offline, else its Hub id) or a Hub id at ``revision``; ``tasks`` keeps a subset. An existing
        folder wins over a zoo name of the same spelling; a zoo name never contains '/'."""
        source, revision, _ = zoo.resolve(path_or_hub_id, "model", revision)
        folder = hub.resolve_files(source, revision, cache_dir, token)
        config = M2DINOConfig.load(folder / CONFIG_NAME)  # sizes bounded, backbone_overrides allow-listed
        # The config against the weights' shapes (header only) before anything is allocated: first field
        # by field, then every key on a model built on the meta device. config.backbone_weights is
        # provenance: nothing in a config names a file that loading reads.
        shapes, source = hub.read_shapes(folder)
        check_config_fits_weights(config, shapes, str(folder / CONFIG_NAME), source)
        with torch.device("meta"):
            skeleton = cls(config)
        hub.check_shapes(hub.shapes_of(skeleton.state_dict()), shapes, source)
        del skeleton
        state, source = hub.load_weights(folder)
        model = cls(config)
        hub.load_state_dict_checked(model, state, source)
        if tasks is not None:
            model.select_tasks(list(tasks))
        return model.to(device).eval()

    def push_to_hub(self, repo_id: str, private: bool = False, token: str | None = None,
                    commit_message: str = "Upload M2DINO model", revision: str | None = None) -> str:
        """Create the Hub repo if needed and upload config, weights and model card in one commit."""
        return hub.push_folder(self.save_pretrained, repo_id, private, token, commit_message, revision)
