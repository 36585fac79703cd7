"""Fixtures shared by every test folder."""

from __future__ import annotations

import socket
import sys

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def torchrun():
    """Return a function: nproc -> the command prefix that launches `python -m ...` on that many CPU processes."""
    def launcher(nproc: int) -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
                str(_free_port())]
    return launcher


@pytest.fixture
def hf_api_calls(monkeypatch) -> list:
    """Return the list that records huggingface_hub.HfApi's calls: HfApi is replaced by a stand-in that records
    create_repo and upload_folder (the one network step of a push) instead of sending them."""
    import huggingface_hub

    calls: list = []

    class StandIn:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw))
            kind = "" if kw.get("repo_type", "model") == "model" else f"{kw['repo_type']}s/"
            return huggingface_hub.CommitInfo(commit_url=f"https://huggingface.co/{kind}{kw['repo_id']}/commit/abc",
                                              commit_message=kw["commit_message"], commit_description="", oid="abc")

    monkeypatch.setattr(huggingface_hub, "HfApi", StandIn)
    return calls
