"""Hub access for presets: a repository neither in the local cache nor downloadable fails at once, in one line.

Without this, a machine that cannot reach huggingface.co retries every file for ~25 s before transformers
gives up with an error that names neither the repository nor the cache. `hub_access` wraps a load: it checks
every repository the load reads, asks the hub endpoint once (``HF_ENDPOINT``; a few seconds at most) only when
needed, and, when everything is cached but the hub is unreachable, runs the load from the cache alone (as
``HF_HUB_OFFLINE=1`` would) instead of retrying each optional file. Local directories are never looked up.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlparse

from symdpo.models.errors import HubUnavailableError

PROBE_TIMEOUT_S = 3.0  # the hub endpoint answers a HEAD in well under a second when it is reachable
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_probed: dict[str, bool] = {}  # endpoint -> reachable, asked once per process
_lock = threading.Lock()

Repos = Iterable[tuple[str, Sequence[str] | None]]


def cache_dir() -> str:
    """Return the Hugging Face hub cache folder in use (``HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def is_cached(repo_id: str, filenames: Sequence[str] | None = None) -> bool:
    """Return whether the cache holds ``repo_id``'s snapshot, or each of ``filenames`` of it when given."""
    from huggingface_hub import snapshot_download, try_to_load_from_cache
    from huggingface_hub.errors import LocalEntryNotFoundError

    if filenames:
        return all(isinstance(try_to_load_from_cache(repo_id, f), str) for f in filenames)
    try:
        return os.path.isdir(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        return False


def hub_reachable() -> bool:
    """Return whether the hub endpoint answers within PROBE_TIMEOUT_S (asked once per process and endpoint)."""
    from huggingface_hub import constants

    endpoint = constants.ENDPOINT
    with _lock:
        if endpoint not in _probed:
            _probed[endpoint] = _probe(endpoint)
        return _probed[endpoint]


def _probe(endpoint: str) -> bool:
    from huggingface_hub import get_session

    answer: list[bool] = []

    def ask() -> None:
        try:
            answer.append(get_session().head(endpoint, timeout=PROBE_TIMEOUT_S).status_code < 500)
        except Exception:  # noqa: BLE001 - any failure to get an answer means unreachable
            answer.append(False)

    # a thread bounds the whole probe, name resolution included (the client's timeout may not cover it)
    probe = threading.Thread(target=ask, daemon=True)
    probe.start()
    probe.join(PROBE_TIMEOUT_S + 0.5)
    return bool(answer and answer[0])


def _offline_var() -> str | None:
    from huggingface_hub import constants

    if not constants.is_offline_mode():
        return None
    return next((v for v in _OFFLINE_VARS if os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE")),
                "HF_HUB_OFFLINE")


def _is_local(repo_id: str) -> bool:
    return os.path.isdir(repo_id)


def not_cached_message(repo_id: str, filenames: Sequence[str] | None, *, model_name: str | None, why: str) -> str:
    """Return the one line saying ``repo_id`` is missing from the cache, why it cannot be fetched, and what to do."""
    files = f" (file {', '.join(filenames)})" if filenames else ""
    prefix = f"model {model_name!r}: " if model_name else ""
    command = " ".join(["hf download", repo_id, *(filenames or ())])
    return (f"{prefix}{repo_id!r}{files} is not in the Hugging Face cache ({cache_dir()}) and {why}; download it "
            f"where there is internet ({command}) and point HF_HOME at that cache")


def ensure_cached(repo_id: str, filenames: Sequence[str] | None = None, *, model_name: str | None = None) -> None:
    """Return None when ``repo_id`` (or its ``filenames``) is cached or the hub can be reached; else raise.

    Raises HubUnavailableError (a ModelError) naming the repository and the cache, without waiting on retries:
    at once under HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, else after one short probe of the hub endpoint.
    A local directory passes untouched.
    """
    if _is_local(repo_id) or is_cached(repo_id, filenames):
        return
    var = _offline_var()
    if var is not None:
        raise HubUnavailableError(not_cached_message(
            repo_id, filenames, model_name=model_name, why=f"{var} is set (unset it to download)"))
    if not hub_reachable():
        from huggingface_hub import constants

        host = urlparse(constants.ENDPOINT).netloc or constants.ENDPOINT
        raise HubUnavailableError(not_cached_message(
            repo_id, filenames, model_name=model_name, why=f"{host} cannot be reached"))


@contextmanager
def offline() -> Iterator[None]:
    """Yield with the hub in offline mode (as HF_HUB_OFFLINE=1): downloads read the cache alone."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


@contextmanager
def hub_access(repos: Repos, *, model_name: str | None = None) -> Iterator[None]:
    """Yield once every hub repository in ``repos`` ((repo id, filenames or None) pairs) can be read; else raise.

    Each repo goes through `ensure_cached`. When all are cached but the hub is unreachable, the body runs in
    `offline` mode, so that files a repository lacks (optional configs) are not retried on the network.
    Nests freely.
    """
    from huggingface_hub import constants

    hub = [(r, f) for r, f in repos if not _is_local(r)]
    for repo_id, filenames in hub:
        ensure_cached(repo_id, filenames, model_name=model_name)
    if not hub or constants.is_offline_mode() or hub_reachable():
        yield
        return
    with offline():
        yield
