"""``symdpo data inspect``: rendered samples of a record file and a PNG contact sheet of one record."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from symdpo.data.errors import BadImageError
from symdpo.data.images import load_image
from symdpo.data.records import PreferenceRecord, Record, render_openflamingo


def describe(record: Record) -> str:
    """Return a record rendered as OpenFlamingo sees it, plus its answers."""
    text, images, chosen, rejected = render_openflamingo(record)
    lines = [f"id: {record.id}  kind: {record.kind}  images: {len(images)}", f"prompt: {text}", f"chosen: {chosen}"]
    if isinstance(record, PreferenceRecord):
        lines.append(f"rejected ({record.rejected_type}): {rejected}")
        if record.symbols:
            lines.append("symbols: " + ", ".join(f"{a} -> {s}" for a, s in record.symbols.items()))
    return "\n".join(lines)


def _panel(ax, image_root: Path | None, rel: str, caption: str) -> None:
    """Draw one image (or a grey 'missing' tile) with a wrapped caption under it."""
    try:
        if image_root is None:
            raise BadImageError(rel, "missing", "no image root")
        ax.imshow(np.asarray(load_image(image_root, rel)))
    except BadImageError as e:
        ax.imshow(np.full((64, 64, 3), 200, np.uint8))
        ax.text(32, 32, e.reason, ha="center", va="center", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("\n".join(textwrap.wrap(caption, 28)), fontsize=7)


def contact_sheet(record: Record, image_root: str | Path | None, out: str | Path) -> Path:
    """Write a PNG of one record (demonstrations with the answers shown, then the query) and return its path."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    root = Path(image_root) if image_root is not None else None
    n = len(record.images)
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 3.4), squeeze=False)
    for i, d in enumerate(record.context):
        hidden = f" (hidden: {d.original_answer})" if d.answer != d.original_answer else ""
        q = f"Q: {d.question} " if d.question else ""
        _panel(axes[0][i], root, record.images[d.image], f"{q}A: {d.answer}{hidden}")
    q = f"Q: {record.query.question} " if record.query.question else "caption? "
    if isinstance(record, PreferenceRecord):
        tail = f"chosen: {record.chosen} | rejected ({record.rejected_type}): {record.rejected}"
    else:
        tail = f"target: {record.target}"
    _panel(axes[0][n - 1], root, record.images[record.query.image], f"QUERY {q}{tail}")
    axes[0][n - 1].set_title("query", fontsize=8, color="darkred")
    fig.suptitle(f"{record.id} ({record.kind})", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
