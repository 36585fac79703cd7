"""Without huggingface.co, a preset that is not cached fails at once in one line naming the repo and the cache."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import constants

from symdpo.models import hub
from symdpo.models.errors import HubUnavailableError, ModelError

OF3B = "openflamingo/OpenFlamingo-3B-vitl-mpt1b"
SMOLVLM = "HuggingFaceTB/SmolVLM-256M-Instruct"


@pytest.fixture
def closed_port():
    """Yield a local port that refuses connections (bound, never listening)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def fake_cache(hub_dir: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """Return the snapshot folder of ``repo_id`` written into ``hub_dir`` in the hub cache's own layout."""
    repo = hub_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    return snapshot


@pytest.fixture
def no_hub(tmp_path, monkeypatch, closed_port):
    """Return an empty hub cache folder, with the hub endpoint on a closed port and offline mode off."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_probed", {})
    return cache


def _cli(args: list[str], home: Path, port: int, offline: bool) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "SYMDPO_DEBUG")}
    env.update(HF_HOME=str(home), HF_ENDPOINT=f"http://127.0.0.1:{port}")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "symdpo", *args], capture_output=True, text=True, env=env, timeout=300)
    return r, time.monotonic() - start


@pytest.mark.parametrize("offline", [False, True], ids=["unreachable", "HF_HUB_OFFLINE"])
@pytest.mark.parametrize(("model", "repo"), [("openflamingo-3b", OF3B), ("smolvlm-256m", SMOLVLM)])
def test_uncached_preset_is_one_line_naming_repo_and_cache(tmp_path, closed_port, model, repo, offline):
    r, elapsed = _cli(["model", "info", model], tmp_path / "hf", closed_port, offline)
    print(f"symdpo model info {model} ({'HF_HUB_OFFLINE=1' if offline else 'hub unreachable'}): {elapsed:.1f} s")
    out = r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0 and "Traceback" not in out and "Retrying" not in out, out
    assert last.startswith("error: ") and f"model {model!r}" in last and repr(repo) in last, last
    assert str(tmp_path / "hf" / "hub") in last and "HF_HOME" in last, last
    assert ("HF_HUB_OFFLINE" in last) == offline, last


def test_cached_repo_passes_without_network(no_hub, monkeypatch):
    fake_cache(no_hub, "org/name", {"config.json": b"{}"})
    monkeypatch.setattr(hub, "_probe", lambda endpoint: pytest.fail("the hub was asked for a cached repo"))
    hub.ensure_cached("org/name", model_name="m")
    hub.ensure_cached("org/name", ["config.json"], model_name="m")
    assert hub.is_cached("org/name") and not hub.is_cached("org/name", ["model.safetensors"])


def test_local_directory_never_looks_at_the_hub(tmp_path, no_hub, monkeypatch):
    monkeypatch.setattr(hub, "_probe", lambda endpoint: pytest.fail("the hub was asked for a local directory"))
    monkeypatch.setattr(hub, "is_cached", lambda *a: pytest.fail("the cache was searched for a local directory"))
    hub.ensure_cached(str(tmp_path), ["config.json"])
    with hub.hub_access([(str(tmp_path), None)]):
        assert not constants.is_offline_mode()


def test_missing_file_of_a_cached_repo_names_it(no_hub):
    fake_cache(no_hub, "org/name", {"config.json": b"{}"})
    with pytest.raises(HubUnavailableError) as err:
        hub.ensure_cached("org/name", ["checkpoint.pt"], model_name="m")
    msg = str(err.value)
    assert isinstance(err.value, ModelError) and "checkpoint.pt" in msg and "'org/name'" in msg
    assert str(no_hub) in msg and "cannot be reached" in msg and "hf download org/name checkpoint.pt" in msg


def test_cached_repos_load_offline_while_the_hub_is_unreachable(no_hub):
    """Files a cached repo lacks (optional configs) must not be retried on the network for ~25 s each."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    snapshot = fake_cache(no_hub, "org/name", {"config.json": b"{}"})
    with hub.hub_access([("org/name", None)], model_name="m"):
        assert constants.is_offline_mode()
        assert hf_hub_download("org/name", "config.json") == str(snapshot / "config.json")
        with pytest.raises(LocalEntryNotFoundError):
            hf_hub_download("org/name", "generation_config.json")
    assert not constants.is_offline_mode()


def test_flamingo_preset_names_its_first_missing_backbone(no_hub):
    """With the checkpoint cached, the LM repo is named, before any backbone loads."""
    from symdpo.models.flamingo.loading import load_flamingo_preset

    fake_cache(no_hub, OF3B, {"checkpoint.pt": b""})
    with pytest.raises(HubUnavailableError, match="'anas-awadalla/mpt-1b-redpajama-200b' is not in"):
        load_flamingo_preset("openflamingo-3b")


def test_hub_repos_leave_out_config_dicts_and_local_dirs(tmp_path):
    from symdpo.models.flamingo.build import hub_repos, preset_config
    from symdpo.models.flamingo.presets import CLIP_L14

    assert hub_repos(preset_config("tiny")) == []
    assert hub_repos(preset_config("openflamingo-3b")) == ["anas-awadalla/mpt-1b-redpajama-200b", CLIP_L14]
    cfg = preset_config("openflamingo-3b").model_copy(update={"lm": str(tmp_path)})
    assert hub_repos(cfg) == [CLIP_L14]


def test_reachable_hub_lets_the_download_happen(no_hub, monkeypatch):
    """An uncached repo passes when the endpoint answers: the normal download then fetches it."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Hub(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        hub.ensure_cached("org/not-cached", ["checkpoint.pt"], model_name="m")
        assert hub.hub_reachable()
    finally:
        server.shutdown()
        server.server_close()
