"""Pretrained weights for a dense `DINOv3Backbone`: timm Hub ids, transformers checkpoints, local files.

safetensors only: pickle checkpoints (.pth/.bin/.pt) can run arbitrary code when loaded.
Loading is all-or-nothing: a checkpoint that does not fit the backbone exactly raises and names the keys.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from safetensors.torch import load_file
from timm.models.eva import checkpoint_filter_fn

from ..limits import positive_int
from . import zoo
from .backbone import DINOv3Backbone
from .backbone_configs import resolve_backbone
from .convert_transformers import (
    architecture_of,
    backbone_architecture,
    backbone_spec_from_transformers_config,
    convert_transformers_state_dict,
    is_transformers_state_dict,
)

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".pkl", ".ckpt")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_SHOWN = 8  # keys listed per kind of mismatch in error messages


def default_weights(name: str) -> str:
    """The timm Hub id of a named backbone's pretrained weights (ungated)."""
    canonical, config = resolve_backbone(name)
    if config.timm_hub_id is None:
        raise ValueError(f"backbone {canonical!r} has no pretrained weights (random-init configuration)")
    return config.timm_hub_id


def load_backbone_weights(backbone: DINOv3Backbone, source: str | Path, revision: str | None = None,
                          cache_dir: str | Path | None = None, token: str | bool | None = None) -> dict[str, Any]:
    """Load pretrained weights into a dense backbone, in place.

    ``source``: a zoo backbone name (`m2dino.list_pretrained("backbone")`, resolved by `zoo.resolve`);
    a timm Hub id (``timm/vit_small_patch16_dinov3.lvd1689m``); a transformers Hub id or
    local folder (config.json + model.safetensors, or a sharded model.safetensors.index.json); or a
    local .safetensors file in timm's layout (Meta's original key names are accepted too) or in
    transformers' layout. Hub files come from the Hugging Face cache (``HF_HUB_OFFLINE=1`` works once
    cached); ``revision``, ``cache_dir`` and ``token`` go to `huggingface_hub.hf_hub_download`.

    Returns a report: source, format ("timm", "meta" or "transformers"), backbone, files, the q/v bias
    keys dropped or added (all zero, so exact) and missing/unexpected keys (empty: mismatches raise).
    """
    if backbone.moe_blocks:
        raise ValueError(f"backbone {backbone.name!r} already has MoE blocks {list(backbone.moe_blocks)}: load the "
                         "pretrained weights into the dense backbone first, then upcycle its MLPs into experts")
    files, config_file = _locate(str(source), revision, cache_dir, token)
    state = _read_safetensors(files)
    if is_transformers_state_dict(state):
        layout = "transformers"
        if config_file is not None:
            _check_transformers_config(config_file, backbone)
        state = convert_transformers_state_dict(state)
    else:
        layout = "meta" if "storage_tokens" in state else "timm"
        state = _from_timm_layout(state, backbone)
    dropped, added = _fit_qkv_bias(state, backbone)
    _check_fits(state, backbone, str(source))
    result = backbone.load_state_dict(state, strict=True)
    return {"source": str(source), "format": layout, "backbone": backbone.name, "files": [str(f) for f in files],
            "dropped_zero_keys": dropped, "added_zero_keys": added,
            "missing_keys": list(result.missing_keys), "unexpected_keys": list(result.unexpected_keys)}


def backbone_spec_for_weights(source: str | Path, revision: str | None = None, cache_dir: str | Path | None = None,
                              token: str | bool | None = None) -> tuple[str, dict[str, Any]] | None:
    """``(backbone name, overrides)`` a transformers-layout checkpoint needs (its config.json says, e.g.
    q/v biases or another size), or the backbone a zoo entry lists; None for other timm-layout sources,
    whose size the user names."""
    _, config_file = _locate(str(source), revision, cache_dir, token)
    if config_file is None:
        entry = zoo.find_entry(source)
        return (entry.backbone, {}) if entry is not None else None
    from transformers import DINOv3ViTConfig

    config = DINOv3ViTConfig.from_json_file(str(config_file))
    return backbone_spec_from_transformers_config(_check_sizes(config, config_file))


def _reject_pickle(path: str) -> None:
    if path.endswith(PICKLE_SUFFIXES):
        raise ValueError(f"{path}: pickle checkpoints are not loaded (unpickling can run arbitrary code); "
                         "m2dino reads safetensors only. Convert it once where you trust the file: "
                         "safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')")


def _locate(source: str, revision: str | None, cache_dir: str | Path | None,
            token: str | bool | None) -> tuple[list[Path], Path | None]:
    """The safetensors files to read and the transformers config.json (if any)."""
    _reject_pickle(source)
    resolved = zoo.resolve(source, "backbone", revision)  # a zoo backbone name: its bundled file, else its Hub id
    source, revision = str(resolved.source), resolved.revision
    path = Path(source).expanduser()
    if revision is not None and path.exists():
        raise ValueError(f"{source} is a local path: revision={revision!r} applies to Hub ids only")
    if path.is_dir():
        return _folder_files(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ValueError(f"{source}: expected a .safetensors file")
        return [path], None
    if source.endswith(".safetensors") or not _HUB_ID.match(source):
        raise FileNotFoundError(f"{source}: no such file or folder (and not a Hub id of the form 'org/name')")
    return _hub_files(source, revision, cache_dir, token)


def _folder_files(folder: Path) -> tuple[list[Path], Path | None]:
    config = folder / "config.json"
    config = config if config.is_file() and _is_transformers_config(config) else None
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"], config
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return [folder / name for name in _shard_names(index)], config
    pickles = sorted(p.name for p in folder.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
    found = f" (found {', '.join(pickles)}: pickle checkpoints are not loaded)" if pickles else ""
    raise FileNotFoundError(f"{folder}: no model.safetensors or model.safetensors.index.json{found}")


def _hub_files(repo_id: str, revision: str | None, cache_dir: str | Path | None,
               token: str | bool | None) -> tuple[list[Path], Path | None]:
    def download(filename: str) -> Path:
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir, token=token))

    if repo_id.startswith("timm/"):  # timm's own repos: always one model.safetensors in timm layout
        return [download("model.safetensors")], None
    # Other repos: transformers (model_type "dinov3_vit") or timm layout ("architecture"); the keys decide.
    config = download("config.json")
    config = config if _is_transformers_config(config) else None
    try:
        return [download("model.safetensors")], config
    except EntryNotFoundError:
        pass
    try:
        index = download("model.safetensors.index.json")
    except EntryNotFoundError:
        raise FileNotFoundError(f"{repo_id}: no model.safetensors or model.safetensors.index.json "
                                "(m2dino loads safetensors only)") from None
    return [download(name) for name in _shard_names(index)], config


def _shard_names(index: Path) -> list[str]:
    names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    for name in names:
        if Path(name).name != name or not name.endswith(".safetensors"):  # no path escapes, no pickle shards
            raise ValueError(f"{index}: invalid shard name {name!r}")
    return names


def _is_transformers_config(config_file: Path) -> bool:
    return json.loads(config_file.read_text()).get("model_type") == "dinov3_vit"


def _read_safetensors(files: list[Path]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(file, device="cpu"))
    return state


def _check_transformers_config(config_file: Path, backbone: DINOv3Backbone) -> None:
    """Compare what the weights cannot show (RoPE period, norm eps, activation) as well as the sizes."""
    from transformers import DINOv3ViTConfig  # heavy import, only needed for this format

    config = _check_sizes(DINOv3ViTConfig.from_pretrained(config_file.parent), config_file)
    name, overrides = backbone_spec_from_transformers_config(config)
    wanted, have = architecture_of(name, overrides), backbone_architecture(backbone)
    differences = [f"{k}: backbone {have[k]}, checkpoint {wanted[k]}" for k in wanted if wanted[k] != have[k]]
    if differences:
        raise ValueError(f"checkpoint {config_file.parent} is DINOv3Backbone({name!r}, **{overrides}); backbone "
                         f"{backbone.name!r} differs: " + "; ".join(differences))


# A transformers config.json's sizes and the m2dino limit each is held to.
_TRANSFORMERS_SIZES = {"hidden_size": "width", "intermediate_size": "width", "num_attention_heads": "width",
                       "num_hidden_layers": "blocks", "num_register_tokens": "registers"}


def _check_sizes(config: Any, config_file: Path) -> Any:
    """``config`` (a `DINOv3ViTConfig`) if its sizes are within `m2dino.limits`; checked before even a
    meta-device backbone is built from them (a downloaded checkpoint's config.json is a stranger's)."""
    for key, field in _TRANSFORMERS_SIZES.items():
        value = getattr(config, key, None)
        if not (key == "num_register_tokens" and value == 0):
            positive_int(f"{config_file}: {key}", value, field)
    return config


def _from_timm_layout(state: dict[str, torch.Tensor], backbone: DINOv3Backbone) -> dict[str, torch.Tensor]:
    """timm's own filter, which also renames Meta's original keys (storage_tokens, ls1.gamma, mlp.w1...)."""
    found = state.get("patch_embed.proj.weight")
    if found is not None and found.shape[-2:] != backbone.patch_embed.proj.weight.shape[-2:]:
        # timm's filter would silently resample the patch kernel; another patch size is another model.
        raise ValueError(f"checkpoint has {tuple(found.shape[-2:])} patches; backbone {backbone.name!r} "
                         f"is ViT/{backbone.patch_size}")
    if "storage_tokens" in state:
        state = _split_meta_qkv_bias(state)
    return checkpoint_filter_fn(state, backbone)


def _split_meta_qkv_bias(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Meta stores one qkv bias whose key part is masked out (``bias_mask``): keep q and v only.

    Done here rather than by timm's filter, which drops the whole bias when the backbone has none,
    even a non-zero one; `_fit_qkv_bias` then decides.
    """
    out = {}
    for key, value in state.items():
        if key.endswith("attn.qkv.bias"):
            q, _, v = value.chunk(3)
            out[key.replace("qkv.bias", "q_bias")], out[key.replace("qkv.bias", "v_bias")] = q, v
        else:
            out[key] = value
    return out


def _fit_qkv_bias(state: dict[str, torch.Tensor], backbone: DINOv3Backbone) -> tuple[list[str], list[str]]:
    """Match the checkpoint's q/v biases to the backbone's ``qkv_bias`` setting, in place.

    DINOv3 checkpoints exist with and without these biases (timm's ``_qkvb`` variants; transformers
    always has them); an all-zero bias is the same as none, so either side may lack it. Non-zero
    biases into a bias-free backbone would be lost: that raises.
    """
    dropped, added = [], []
    for index, block in enumerate(backbone.blocks):
        keys = [f"blocks.{index}.attn.q_bias", f"blocks.{index}.attn.v_bias"]
        present = [k for k in keys if k in state]
        if block.attn.q_bias is None and present:
            nonzero = [k for k in present if state[k].any()]
            if nonzero:
                raise ValueError(f"checkpoint has non-zero {nonzero[0]} but backbone {backbone.name!r} has no "
                                 "q/v biases: build it with qkv_bias=True")
            for key in present:
                del state[key]
            dropped += present
        elif block.attn.q_bias is not None and not present and f"blocks.{index}.attn.qkv.weight" in state:
            for key in keys:
                state[key] = torch.zeros_like(getattr(block.attn, key.rsplit(".", 1)[1]))
            added += keys
    return dropped, added


def _check_fits(state: dict[str, torch.Tensor], backbone: DINOv3Backbone, source: str) -> None:
    expected = backbone.state_dict()
    problems = []
    shapes = [f"{k}: expected {tuple(v.shape)}, found {tuple(state[k].shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    for title, items in (("shape mismatches", shapes), ("missing keys", missing), ("unexpected keys", unexpected)):
        if items:
            more = f" (and {len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
            problems.append(f"{title}: " + ", ".join(items[:_SHOWN]) + more)
    if problems:
        depth = len({key.split(".")[1] for key in state if key.startswith("blocks.")})
        width = state["cls_token"].shape[-1] if "cls_token" in state else "?"
        raise ValueError(f"checkpoint {source} ({depth} blocks, width {width}) does not fit backbone "
                         f"{backbone.name!r} ({backbone.depth} blocks, width {backbone.embed_dim}): "
                         + "; ".join(problems))
