"""``symdpo model push``: upload a saved model folder, with its model card, to the Hugging Face Hub.

``upload`` is the one hub step, also behind ``symdpo data push`` (``data/export.py``).

The folder is checked first (a saved model: ``config.json``; a card: ``README.md``, written by training) so a
wrong path fails before any network call. The upload is ``huggingface_hub``'s: one ``create_repo`` (exists
is fine) and one ``upload_folder`` commit of every file in the folder.
"""

from __future__ import annotations

from pathlib import Path

from symdpo.models.card import CARD
from symdpo.models.errors import ModelError


def files_to_upload(folder: str | Path) -> list[str]:
    """Return the folder's files, relative and sorted (what the commit will hold); a ModelError when it is no
    saved model or has no card."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: not a folder; give a saved model folder (a run's final/ or an export)")
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder}: no config.json, so not a saved symdpo model; give a run's final/ folder "
                         "or the output of `symdpo model export`")
    if not (folder / CARD).is_file():
        raise ModelError(f"{folder}: no {CARD} model card; training writes one into final/ (an older save: "
                         "write a README.md before pushing)")
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def upload(folder: str | Path, repo_id: str, *, repo_type: str, private: bool, message: str,
           token: str | None = None, ignore: list[str] | None = None) -> str:
    """Upload ``folder`` to the hub repository ``repo_id`` of ``repo_type`` (created when missing); return the
    commit's URL. Shared by ``model push`` and ``data push``; a network or auth failure is a ModelError."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                                 commit_message=message, ignore_patterns=ignore)
    except OSError as e:  # requests' connection errors are OSErrors; the hub's HTTP errors too
        raise ModelError(f"pushing {folder} to {repo_id} failed: {e}; check the network, HF_ENDPOINT and your "
                         "token (`hf auth login` or HF_TOKEN)") from e
    return str(getattr(info, "commit_url", info))


def push(folder: str | Path, repo_id: str, *, private: bool = False, message: str = "Upload a symdpo model",
         token: str | None = None) -> str:
    """Upload ``folder`` to the hub model repository ``repo_id`` (created when missing); return the commit's URL."""
    files_to_upload(folder)
    return upload(folder, repo_id, repo_type="model", private=private, message=message, token=token)
