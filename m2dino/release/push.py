"""Uploading a release folder to the Hugging Face Hub (`m2dino release --push org/name`)."""

from __future__ import annotations

import re
from pathlib import Path

NO_TOKEN = "no Hugging Face token: run `huggingface-cli login` or set HF_TOKEN"
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def hub_token(repo_id: str) -> str:
    """The token an upload to ``repo_id`` will use (HF_TOKEN, else the one `huggingface-cli login` stored);
    a malformed repo id or no token is one error, checked before any work."""
    if not REPO_ID.match(repo_id):
        raise ValueError(f"--push {repo_id!r}: expected a Hub repo id 'org/name'")
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise ValueError(NO_TOKEN)
    return token


def push_release(folder: str | Path, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Create the model repo ``repo_id`` if needed and upload every file of ``folder`` in one commit;
    returns the commit's URL."""
    from huggingface_hub import HfApi

    token = token or hub_token(repo_id)
    folder = Path(folder)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                             commit_message=f"Release {folder.name} (m2dino release)")
    return str(getattr(info, "commit_url", info))
