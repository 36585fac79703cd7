"""Image paths from annotation files must stay inside the configured image root."""

from __future__ import annotations

from pathlib import Path

from symdpo.data.errors import BadImageError


def check_relpath(path: str) -> str | None:
    """Return why ``path`` is not a safe relative path (absolute, ``..``, empty, ...), or None if it is."""
    # plain string tests: this runs for every image of every record, pathlib would dominate a build
    if not path or path.isspace():
        return "empty path"
    if "\x00" in path:
        return "NUL character"
    if "\\" in path:
        return "backslash in path (use '/')"
    if path[0] == "/" or path[0] == "~" or (len(path) > 1 and path[1] == ":"):
        return "absolute path"
    if ".." in path.split("/"):
        return "'..' escapes the image root"
    return None


def resolve_inside(root: str | Path, rel: str) -> Path:
    """Return ``root/rel`` resolved, refusing paths that leave ``root`` (also through symlinks)."""
    problem = check_relpath(rel)
    if problem:
        raise BadImageError(rel, "unsafe_path", f"unsafe image path: {problem}")
    base = Path(root).resolve()
    full = (base / rel).resolve()
    if not full.is_relative_to(base):
        raise BadImageError(rel, "unsafe_path", f"resolves outside the image root {base}")
    return full
