"""Benchmark: build SymDPO preference data from a synthetic VQAv2-sized annotation set.

Writes VQAv2-format questions + annotations files (443,757 questions over 82,783 images, ten annotator
answers each, like VQAv2 train), then runs ``symdpo data build`` on them in a child process (images not
decoded: ``--check-images none``) and reports its wall time and peak RSS. Targets on a 2-core machine:
under 2 minutes and under 4 GiB. The last line printed is the headline.

    .venv/bin/python benchmarks/build_data.py [--questions 443757] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import maxrss_gib, timed

COLORS = ["white", "black", "red", "blue", "green", "brown", "yellow", "gray", "orange", "pink", "purple", "silver"]
NOUNS = [f"{a}{b}" for a in ("cat", "dog", "car", "man", "bus", "cup", "bed", "sign", "kite", "boat", "tree", "bike",
                               "shirt", "plate", "train", "horse", "clock", "pizza", "table", "woman")
         for b in ("", "s", "e", "o", "y", "er", "ie", "ling", "let", "ster")]
OTHER = [f"{w}{i}" for i in range(150) for w in ("table", "grass", "tennis", "frisbee", "kitchen", "left", "wood")]
TYPES = [  # (template, question type, answer type, answers)
    ("is the {n} {c}?", "is the", "yes/no", ["yes", "no"]),
    ("is there a {n} in the picture?", "is there a", "yes/no", ["yes", "no"]),
    ("are the {n}s {c}?", "are the", "yes/no", ["yes", "no"]),
    ("how many {n}s are there?", "how many", "number", [str(i) for i in range(12)]),
    ("what color is the {n}?", "what color is the", "other", COLORS),
    ("what is the {n} on?", "what is the", "other", OTHER),
    ("where is the {n}?", "where is the", "other", OTHER),
    ("what type of {n} is this?", "what type of", "other", OTHER),
    ("what room is this?", "what room is", "other", OTHER[:40]),
    ("what sport is being played?", "what sport is", "other", OTHER[40:80]),
]


def _item_strings(rng: random.Random) -> tuple[str, str, str, list[str]]:
    """Return (question, question type, answer type, ten annotator answers) of one synthetic question."""
    template, qtype, atype, answers = TYPES[rng.randrange(len(TYPES))]
    question = template.format(n=rng.choice(NOUNS), c=rng.choice(COLORS))
    # Zipf-like canonical answer; 7 annotators agree, 3 answer anything of the same kind
    canon = answers[min(int(rng.paretovariate(1.2)) - 1, len(answers) - 1)]
    ten = [canon] * 7 + [rng.choice(answers) for _ in range(3)]
    rng.shuffle(ten)
    return question, qtype, atype, ten


def write_synthetic(folder: Path, n_questions: int, n_images: int, seed: int = 0) -> tuple[Path, Path]:
    """Write VQAv2-format questions and annotations files; return their paths."""
    rng = random.Random(seed)
    qpath, apath = folder / "questions.json", folder / "annotations.json"
    with open(qpath, "w") as qf, open(apath, "w") as af:
        qf.write('{"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {}, '
                 '"data_subtype": "train2014", "questions": [')
        af.write('{"info": {}, "license": {}, "data_subtype": "train2014", "annotations": [')
        for i in range(n_questions):
            image_id = 9 + (i * n_images // n_questions) * 7  # ~5.4 questions per image, like VQAv2
            qid = image_id * 1000 + i % 1000
            question, qtype, atype, ten = _item_strings(rng)
            sep = ", " if i else ""
            qf.write(sep + json.dumps({"image_id": image_id, "question": question, "question_id": qid}))
            af.write(sep + json.dumps({
                "question_type": qtype, "multiple_choice_answer": ten[0] if ten.count(ten[0]) >= 7 else
                max(set(ten), key=ten.count), "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                                                          for j, a in enumerate(ten)],
                "image_id": image_id, "answer_type": atype, "question_id": qid}))
        qf.write("]}")
        af.write("]}")
    return qpath, apath


def main() -> None:
    """Generate the data, time the build in a child process, print time and peak memory."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=443_757)
    ap.add_argument("--images", type=int, default=82_783)
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep the files")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="symdpo-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    qpath, apath = write_synthetic(work, args.questions, args.images)
    print(f"synthetic VQAv2-format set: {args.questions:,} questions, {args.images:,} images "
          f"({apath.stat().st_size / 2**20:.0f} MiB annotations) in {time.perf_counter() - t0:.1f} s")
    out = work / "symdpo.jsonl"
    cmd = [sys.executable, "-m", "symdpo.data.cli", "build", "--source", "vqav2", "--questions", str(qpath),
           "--annotations", str(apath), "--image-root", str(work), "--check-images", "none", "--out", str(out)]
    seconds, _ = timed(lambda: subprocess.run(cmd, check=True))
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_gib = maxrss_gib(usage)
    cpu = usage.ru_utime + usage.ru_stime  # wall time suffers when other jobs share the cores; CPU does not
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    print(f"records: {manifest['counts']['records']:,} ({out.stat().st_size / 2**20:.0f} MiB), "
          f"by kind {manifest['counts']['by_kind']}, by context {manifest['counts']['by_context']}")
    print(f"build time: {seconds:.1f} s wall, {cpu:.1f} s CPU (target < 120 s)")
    print(f"peak RSS: {peak_gib:.2f} GiB (target < 4 GiB)")
    if args.keep is None:
        for p in (qpath, apath, out, Path(f"{out}.manifest.json")):
            p.unlink(missing_ok=True)
        work.rmdir()
    ok = seconds < 120 and peak_gib < 4
    print(f"build_data: {args.questions:,} VQAv2-format questions -> SymDPO pairs in {seconds:.1f} s "
          f"({cpu:.1f} s CPU), "
          f"peak RSS {peak_gib:.2f} GiB ({'PASS' if ok else 'FAIL'}: < 120 s, < 4 GiB)")


if __name__ == "__main__":
    main()
