"""Benchmark: ``symdpo data export`` of 100k SymDPO pairs: time, and peak memory flat as records grow.

Builds a few hundred easy-VQA SymDPO pairs (offline), repeats them under new ids to ``--records`` records
(export cost depends on rows and images, not on which pairs they are), then exports a tenth of them and all of
them, each in its own child process (``python -m symdpo.data.cli export``, as a user runs it), and reports
each run's wall time, peak RSS (``os.wait4``: that child's own) and peak anonymous memory (sampled from /proc;
RSS also counts the memory-mapped Arrow files read back, page cache that grows with the data). Streaming means
the two anonymous peaks match: what the export holds does not grow with the record count. The last line
printed is the headline.

    .venv/bin/python benchmarks/export.py [--records 100000] [--format trl] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import maxrss_gib


def repeated_records(base: Path, out: Path, n: int) -> Path:
    """Write ``n`` records to ``out``: the records of ``base`` cycled, each copy under a new id; copy the
    manifest beside it (the image folder, the card's summary)."""
    rows = [json.loads(line) for line in base.read_text().splitlines() if line.strip()]
    with open(out, "w") as f:
        for i in range(n):
            row = dict(rows[i % len(rows)], id=f"{rows[i % len(rows)]['id']}#{i}")
            f.write(json.dumps(row) + "\n")
    from symdpo.data.manifest import manifest_path, read_manifest

    manifest = read_manifest(base)
    manifest["counts"]["records"] = n
    manifest_path(out).write_text(json.dumps(manifest))
    return out


def _anon_kib(pid: int) -> int:
    """Return the process's anonymous resident memory (KiB; 0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed_export(records: Path, fmt: str, out: Path) -> tuple[float, float, float]:
    """Return (wall seconds, peak RSS GiB, peak anonymous RSS GiB) of one ``symdpo data export`` child.

    Peak RSS (``os.wait4``) counts the pages of the memory-mapped Arrow files the export reads back (page cache
    the kernel can drop, growing with the data); the anonymous part, sampled every 50 ms from /proc, is the
    memory the export itself holds.
    """
    cmd = [sys.executable, "-m", "symdpo.data.cli", "export", str(records), "--format", fmt, "--out", str(out)]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd)
    anon = 0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        anon = max(anon, _anon_kib(child.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"export failed: {' '.join(cmd)}")
    return seconds, maxrss_gib(usage), anon / 2**20  # /proc reports KiB


def main() -> None:
    """Build the records, time the two exports, print time and peak memory."""
    from symdpo.data.build import build
    from symdpo.data.options import BuildOptions, SymbolOptions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--base", type=int, default=500, help="distinct easy-VQA pairs the records repeat")
    ap.add_argument("--format", default="trl", choices=["trl", "llamafactory"])
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep the files")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="symdpo-export-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    base = work / "base.jsonl"
    build(BuildOptions(source="easyvqa", split="train", out=base, max_records=min(args.base, args.records), seed=0,
                       symbols=SymbolOptions(k_min=2, k_max=8)))
    results = {}
    for n in (max(1, args.records // 10), args.records):
        records = repeated_records(base, work / f"records-{n}.jsonl", n)
        out = work / f"export-{n}"
        seconds, peak, anon = timed_export(records, args.format, out)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**30
        results[n] = (seconds, peak, anon)
        print(f"{n:,} records -> {args.format}: {seconds:.1f} s ({n / seconds:,.0f} records/s), peak RSS "
              f"{peak:.2f} GiB (anonymous {anon:.2f} GiB), folder {size:.2f} GiB")
    if args.keep is None:
        shutil.rmtree(work)
    (small, (s_sec, s_peak, s_anon)), (big, (b_sec, b_peak, b_anon)) = results.items()
    print(f"export: {big:,} SymDPO records -> {args.format} in {b_sec:.1f} s, peak RSS {b_peak:.2f} GiB, "
          f"anonymous {b_anon:.2f} GiB ({small:,} records: {s_sec:.1f} s, {s_peak:.2f} GiB, anonymous "
          f"{s_anon:.2f} GiB; anonymous ratio {b_anon / max(s_anon, 1e-9):.2f})")


if __name__ == "__main__":
    main()
