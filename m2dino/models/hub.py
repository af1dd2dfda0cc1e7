"""The files of a saved M2DINO model (config.json + model.safetensors + a model card) and the Hub.

This module knows files, not the model: `M2DINO.save_pretrained` / ``from_pretrained`` /
``push_to_hub`` compose these functions, so the model imports this module and never the reverse.
safetensors only: no pickle is ever read or written.

Why not `huggingface_hub.PyTorchModelHubMixin` (checked against huggingface_hub 2.4): its
``from_pretrained`` only logs a warning when config.json is missing and goes on to build a model
from defaults; it maps config.json onto ``__init__`` arguments by signature, which bypasses
`M2DINOConfig.from_dict` (the model_type check, unknown-field errors, the task specs that travel
with a checkpoint); and it loads weights without naming mismatched keys and shapes. Keeping those
would mean overriding ``_from_pretrained`` and ``_save_pretrained`` and its card rendering, which
leaves the mixin only the download and upload calls that this module makes directly
(`snapshot_download` restricted to the three files, `HfApi.upload_folder` in one commit). What the
hand-written path keeps: an error that names the folder when config.json or the weights are
missing, a pickle found instead of safetensors named and refused, ``tasks=`` subsets, the offline
cache (``HF_HUB_OFFLINE=1``) and a bare name refused without a network attempt.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .model_config import CONFIG_NAME

WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"


Shapes = dict[str, tuple[int, ...]]


def check_shapes(expected: Shapes, found: Shapes, source: str, strict: bool = True) -> None:
    """One error naming the checkpoint, the keys and the shapes where ``found`` (the checkpoint's
    tensor shapes) differs from ``expected`` (the model's)."""
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if strict and missing:
        problems.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:4])})")
    if strict and unexpected:
        problems.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:4])})")
    shapes = [f"{k}: checkpoint {found[k]} vs model {expected[k]}"
              for k in sorted(set(found) & set(expected)) if found[k] != expected[k]]
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches ({'; '.join(shapes[:4])})")
    if problems:
        raise ValueError(f"{source}: checkpoint does not match the model built from its config: "
                         + "; ".join(problems))


def shapes_of(state: dict[str, torch.Tensor]) -> Shapes:
    return {k: tuple(v.shape) for k, v in state.items()}


def load_state_dict_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str,
                            strict: bool = True) -> None:
    """``load_state_dict`` with an error that names the checkpoint, the keys and the shapes."""
    check_shapes(shapes_of(model.state_dict()), shapes_of(state), source, strict)
    model.load_state_dict(state, strict=strict)


def save_weights(state: dict[str, torch.Tensor], directory: Path) -> Path:
    """``state`` as ``directory/model.safetensors`` (contiguous CPU copies)."""
    path = directory / WEIGHTS_NAME
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(state, str(path), metadata={"format": "pt", "model_type": "m2dino"})
    return path


def weights_file(folder: Path) -> Path:
    """``folder/model.safetensors``; a pickle found instead is named and refused."""
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickles = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt*")]
        hint = f" (found {pickles}: pickle checkpoints are not loaded, convert them to safetensors)" if pickles else ""
        raise FileNotFoundError(f"{folder}: no {WEIGHTS_NAME}{hint}")
    return weights


def _unreadable(weights: Path, err: Exception) -> ValueError:
    return ValueError(f"{weights}: not a readable safetensors file ({err}); it may be truncated: save or "
                      "download it again")


def read_shapes(folder: Path) -> tuple[Shapes, str]:
    """The tensor shapes in ``folder/model.safetensors``, read from its header alone (nothing is
    loaded; safetensors checks that the header's shapes cover exactly the file's bytes), and its path."""
    weights = weights_file(folder)
    try:
        with safe_open(str(weights), framework="pt") as file:
            return {key: tuple(file.get_slice(key).get_shape()) for key in file.keys()}, str(weights)
    except SafetensorError as err:
        raise _unreadable(weights, err) from None


def load_weights(folder: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict in ``folder/model.safetensors`` and its path (for errors); a pickle found
    instead is named and refused, a truncated file is named."""
    weights = weights_file(folder)
    try:
        return load_file(str(weights)), str(weights)
    except SafetensorError as err:
        raise _unreadable(weights, err) from None


def resolve_files(path_or_hub_id: str | Path, revision: str | None, cache_dir: str | Path | None,
                  token: str | bool | None) -> Path:
    """A local folder as-is, else a Hub snapshot (served from the HF cache when offline)."""
    text, local = str(path_or_hub_id), Path(path_or_hub_id)
    if local.is_dir():
        return local
    if local.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise FileNotFoundError(f"{text}: no such model folder (expected a folder holding {CONFIG_NAME} and "
                                f"{WEIGHTS_NAME}, or a Hub id of the form 'org/name')")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(path_or_hub_id), revision=revision, cache_dir=cache_dir, token=token,
                                  allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]))


def push_folder(save: Callable[[Path], object], repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "Upload M2DINO model", revision: str | None = None) -> str:
    """Create the repo if needed, let ``save`` write the model folder into a temporary directory and
    upload it (config, weights and model card) in one commit."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save(Path(tmp))
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message,
                                 revision=revision)
    return str(getattr(info, "commit_url", info))
