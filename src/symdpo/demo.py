"""``symdpo demo``: the whole SymDPO loop on easy-VQA with a tiny Flamingo, on a CPU, nothing to download.

    starting model ─► build SymDPO pairs (easy-VQA train) ─► evaluate ─► SymDPO training ─► evaluate ─► report

The starting model (``symdpo/assets/tiny-easyvqa``) is a tiny Flamingo pretrained the way OpenFlamingo was:
its LM first learns to copy text from its context, then, with the LM frozen, the perceiver and cross-attention
learn ordinary easy-VQA in-context answering of the colour questions (reproducible with the commands at the top of
``configs/tiny-pretrain-lm.yaml`` and ``configs/tiny-pretrain.yaml``). Nothing in its training rewards matching
the query image to a demonstration image. SymDPO then trains the perceiver and cross-attention (the LM frozen,
as in the paper's OpenFlamingo runs) on symbol contexts whose symbols are one token each for the tiny tokenizer
(``symdpo/assets/tiny-symbols.txt``), mixed half and half with ordinary contexts (``PAIRS``). Both models are evaluated on the same held-out contexts: easy-VQA accuracy
at 4 and 8 shots on the open (colour, shape) questions (the OpenFlamingo protocol), symbol-ICL accuracy on
test-split symbol contexts, and each score again with blank demonstration images — the drop measures how much
the model uses them. Whatever is measured is printed.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from symdpo.atomic import write_text
from symdpo.models.registry import BUNDLED

STARTING_MODEL = BUNDLED["tiny-easyvqa"][0]  # the bundled preset's folder (symdpo/assets/tiny-easyvqa)
SYMBOLS = Path(__file__).parent / "assets" / "tiny-symbols.txt"  # one token each for the tiny tokenizer
RECIPE = Path(__file__).parent / "assets" / "easyvqa_dpo.yaml"  # the README's quick start (configs/ links to it)


@dataclass(frozen=True)
class DemoSize:
    pairs: int  # SymDPO training pairs from easy-VQA train
    probes: int  # held-out symbol contexts from easy-VQA test
    vqa_items: int  # easy-VQA test questions per shot setting
    epochs: int


# the full run: 2240 SymDPO steps; the tiny model started matching images after 300 to 1600 of them (runs so far)
FULL = DemoSize(pairs=5120, probes=300, vqa_items=150, epochs=7)
QUICK = DemoSize(pairs=256, probes=60, vqa_items=24, epochs=1)
# easy-VQA's colour questions: the answer only the image gives, and the one the starting model learned to name
QUESTIONS = "^what.*color"
# The SymDPO pairs. Half ordinary contexts (the answer in words chosen, another demonstration's answer rejected)
# keep the model naming what it sees; symbol contexts reject only the shortcut's symbol. Rejecting the query's
# answer in words ("text") in a symbol context teaches the model to avoid naming the colour it sees, which is
# what an ordinary question asks: with it, easy-VQA 4/8-shot fell by 9-20 points (docs/demo.md).
PAIRS = dict(k_min=2, k_max=3, icl_fraction=0.5, rejected_weights={"text": 0.0, "wrong_symbol": 1.0})
# one fixed thread count, recorded in results.json: CPU kernels split their sums by thread, so another count
# gives other last digits
THREADS = 2


def build_data(out: Path, size: DemoSize, console: Console, seed: int = 0) -> tuple[Path, Path]:
    """Return (training pairs, held-out probes) built with the SymDPO builder from easy-VQA."""
    from symdpo.data.build import build
    from symdpo.data.options import BuildOptions, SymbolOptions

    pairs, probes = out / "data" / "pairs.jsonl", out / "data" / "probes.jsonl"
    vocab = dict(symbols_file=SYMBOLS, builtin_symbols=False)
    if not pairs.exists():
        build(BuildOptions(source="easyvqa", split="train", out=pairs, max_records=size.pairs, seed=seed,
                           question_regex=QUESTIONS,
                           symbols=SymbolOptions(**PAIRS, **vocab)))
    if not probes.exists():
        # only symbol contexts, from the test split: images and questions the training never saw
        build(BuildOptions(source="easyvqa", split="test", out=probes, max_records=size.probes, seed=1,
                           question_regex=QUESTIONS,
                           symbols=SymbolOptions(k_min=2, k_max=4, icl_fraction=0.0, **vocab)))
    console.print(f"data: {size.pairs} SymDPO pairs (easy-VQA train), {size.probes} held-out symbol contexts (test)")
    return pairs, probes


def evaluate(model, model_path: str, probes: Path, out: Path, size: DemoSize) -> dict:
    """Return the demo's scores of one model: easy-VQA 4/8-shot and symbol-ICL, real and blank demo images."""
    from symdpo.data.manifest import manifest_image_root
    from symdpo.data.recordio import read_records
    from symdpo.eval.config import EvalConfig
    from symdpo.eval.merge import merge_run
    from symdpo.eval.runner import run_eval
    from symdpo.eval.symbol_icl import symbol_accuracy

    model.train(False)
    scores: dict[str, float] = {}
    records = list(read_records(probes))
    root = manifest_image_root(probes)
    for cond in ("real", "blank"):
        scores[f"symbol_icl/{cond}"] = symbol_accuracy(model, records, root, demo_images=cond)["accuracy"]
    # the open questions only: the starting model was pretrained on them (QUESTIONS), never on yes/no ones
    cfg = EvalConfig(model=model_path, tasks=["easyvqa-open"], shots=[4, 8], trials=1, num_samples=size.vqa_items,
                     demo_images=["real", "blank"], batch_size=16, query_set_size=512)
    run_eval(cfg, model, out, progress=True)
    for cell in merge_run(out)["results"]:
        scores[f"easyvqa-open/{cell['shots']}-shot/{cell['demo_images']}"] = cell["mean"]
    return scores


@contextmanager
def fixed_kernels():
    """Run the block on ``THREADS`` torch threads with deterministic algorithms, then restore both."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def run_demo(out: str | Path = "runs/demo", *, quick: bool = False, seed: int = 0,
             console: Console | None = None) -> dict:
    """Run the demo into ``out`` and return its results (also written to ``out/results.json``).

    ``seed`` draws the SymDPO pairs and the training order; the held-out contexts are the same for every seed.
    The same command on the same machine gives the same scores (seeded draws, ``fixed_kernels``).
    """
    with fixed_kernels():
        return _run_demo(Path(out), quick, seed, console or Console())


def _run_demo(out: Path, quick: bool, seed: int, console: Console) -> dict:
    """Return the results of the demo run into ``out`` (see ``run_demo``)."""
    import torch

    from symdpo.models.registry import load_model
    from symdpo.train.dpo import train_dpo

    size = QUICK if quick else FULL
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, size, seed)
    t0 = time.perf_counter()
    pairs, probes = build_data(out, size, console, seed)
    console.rule("evaluating the starting model")
    start = load_model(str(STARTING_MODEL))
    before = evaluate(start, str(STARTING_MODEL), probes, out / "eval-before", size)
    console.rule("SymDPO training")
    train_dir = out / "train"
    final = train_dir / "final"
    if not final.exists():
        cfg = train_config(train_dir, pairs, size, seed)
        from symdpo.train.checkpointing import latest_checkpoint

        train_dpo(cfg, resume=latest_checkpoint(train_dir) is not None)  # a stopped demo goes on from its checkpoint
    console.rule("evaluating the SymDPO model")
    tuned = load_model(str(final))
    after = evaluate(tuned, str(final), probes, out / "eval-after", size)
    results = {"size": size.__dict__, "seed": seed, "threads": THREADS, "torch": torch.__version__,
               "seconds": round(time.perf_counter() - t0, 1),
               "starting_model": str(STARTING_MODEL), "symdpo_model": str(final),
               "before": before, "after": after, "reliance": reliance(before, after)}
    write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    plot(results, out / "before_after.png")
    contact_sheet({"before": start, "after": tuned}, probes, out / "examples.png")
    console.print(table(results))
    console.print(f"report: {out}/results.json, before_after.png, examples.png ({results['seconds']:.0f} s)")
    return results


def train_config(train_dir: Path, pairs: Path, size: DemoSize, seed: int):
    """Return the demo's training config: ``RECIPE`` on the demo's pairs, epochs and seed.

    The held-out measure is the demo's own (test-split probes and easy-VQA items), so no training pair is held
    out; a checkpoint every 500 steps, and no TensorBoard files.
    """
    from symdpo.config import load_config
    from symdpo.train.config import TrainConfig

    data = load_config(RECIPE, [], TrainConfig).model_dump()
    data.update(output_dir=train_dir, seed=seed)
    data["model"]["name"] = str(STARTING_MODEL)
    data["data"].update(path=pairs, eval_fraction=0.0)
    data["optim"]["epochs"] = size.epochs
    data["checkpoint"]["every_steps"] = 500
    data["logging"]["tensorboard"] = False
    return TrainConfig.model_validate(data)


def run_demos(out: str | Path, seeds: list[int], *, quick: bool = False, console: Console | None = None) -> dict:
    """Run the demo once per seed (into ``out/seed-N``) and return every score's mean and std over the seeds.

    Also written to ``out/summary.json`` and ``out/summary.md`` and printed as a table. The starting model's
    scores are the same for every seed (its held-out contexts and easy-VQA items are fixed): shown once.
    """
    import numpy as np

    console = console or Console()
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs distinct seeds, got {seeds}")
    runs = {s: run_demo(Path(out) / f"seed-{s}", quick=quick, seed=s, console=console) for s in seeds}
    first = runs[seeds[0]]

    def spread(values: list[float]) -> dict:
        return {"mean": float(np.mean(values)), "std": float(np.std(values)), "per_seed": values}

    summary = {
        "seeds": seeds, "size": first["size"], "before": first["before"],
        "after": {k: spread([runs[s]["after"][k] for s in seeds]) for k in first["after"]},
        "reliance": {k: {"before": d["before"], "after": spread([runs[s]["reliance"][k]["after"] for s in seeds])}
                     for k, d in first["reliance"].items()},
    }
    write_text(Path(out) / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text(Path(out) / "summary.md", summary_markdown(summary))
    console.print(summary_table(summary))
    return summary


def summary_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Return (header, rows) of the starting model vs the SymDPO models' mean ± std, with each seed's score."""
    seeds = summary["seeds"]
    header = ["metric", "starting model", "SymDPO mean ± std", *(f"seed {s}" for s in seeds)]
    rows = [(k, summary["before"][k], v) for k, v in summary["after"].items()]
    rows += [(f"{k}: drop with blank demo images", d["before"], d["after"]) for k, d in summary["reliance"].items()]
    return header, [[name, f"{before:.1f}", f"{after['mean']:.1f} ± {after['std']:.1f}",
                     *(f"{v:.1f}" for v in after["per_seed"])] for name, before, after in rows]


def summary_table(summary: dict) -> Table:
    """Return the summary as a console table."""
    header, rows = summary_rows(summary)
    t = Table(title=f"SymDPO on easy-VQA (tiny Flamingo), seeds {', '.join(map(str, summary['seeds']))}")
    for col in header:
        t.add_column(col, justify="left" if col == "metric" else "right")
    for row in rows:
        t.add_row(*row)
    return t


def summary_markdown(summary: dict) -> str:
    """Return the summary as a Markdown table (``summary.md``, what the README shows)."""
    header, rows = summary_rows(summary)
    lines = [header, ["---"] * len(header), *rows]
    return "".join(f"| {' | '.join(line)} |\n" for line in lines)


def check_settings(out: Path, size: DemoSize, seed: int) -> None:
    """Record the run's settings in ``out``; raise ValueError when ``out`` holds a run made with other ones.

    Finished steps in ``out`` are reused (a stopped demo resumes), so they must come from the same starting
    model, symbols and sizes: data or a trained model of another run would give a wrong table.
    """
    import hashlib

    settings = {"size": size.__dict__, "seed": seed, "pairs": PAIRS, **{f.name: hashlib.sha256(f.read_bytes()).hexdigest()
                                          for f in (STARTING_MODEL / "model.safetensors", SYMBOLS)}}
    path = out / "settings.json"
    if path.exists() and json.loads(path.read_text()) != settings:
        raise ValueError(f"{out} holds a demo run with other settings (starting model, symbols, --seed or --quick); "
                         "give another --out or delete it")
    if any(out.iterdir()) and not path.exists():
        raise ValueError(f"{out} is not empty and holds no demo settings.json; give another --out or delete it")
    write_text(path, json.dumps(settings, indent=2) + "\n")


def reliance(before: dict, after: dict) -> dict:
    """Return each score's drop when the demonstration images are blanked, before and after SymDPO."""
    out = {}
    for key in before:
        if key.endswith("/real"):
            base = key.removesuffix("/real")
            out[base] = {"before": before[key] - before[f"{base}/blank"], "after": after[key] - after[f"{base}/blank"]}
    return out


def table(results: dict) -> Table:
    """Return the before/after table."""
    t = Table(title="SymDPO on easy-VQA (tiny Flamingo): starting model vs SymDPO model")
    t.add_column("metric")
    t.add_column("before", justify="right")
    t.add_column("after", justify="right")
    t.add_column("change", justify="right")
    before, after = results["before"], results["after"]
    for key in before:
        t.add_row(key, f"{before[key]:.1f}", f"{after[key]:.1f}", f"{after[key] - before[key]:+.1f}")
    for key, drop in results["reliance"].items():
        t.add_row(f"{key}: drop with blank demo images", f"{drop['before']:.1f}", f"{drop['after']:.1f}",
                  f"{drop['after'] - drop['before']:+.1f}")
    return t


def plot(results: dict, path: Path) -> None:
    """Write a bar chart of every score before and after SymDPO."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(results["before"])
    fig, ax = plt.subplots(figsize=(10, 4))
    x = range(len(keys))
    ax.bar([i - 0.2 for i in x], [results["before"][k] for k in keys], 0.4, label="starting model")
    ax.bar([i + 0.2 for i in x], [results["after"][k] for k in keys], 0.4, label="after SymDPO")
    ax.set_xticks(list(x), keys, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def contact_sheet(models: dict, probes: Path, path: Path, n: int = 4) -> None:
    """Write a PNG of ``n`` held-out symbol contexts with the symbol each model ("before", "after") picks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from symdpo.data.images import load_image
    from symdpo.data.manifest import manifest_image_root
    from symdpo.data.recordio import read_records
    from symdpo.eval.symbol_icl import probe_contexts

    root = manifest_image_root(probes)
    records = [r for r in read_records(probes)][:n]
    picks = {}
    for label, model in models.items():
        picks[label] = []
        for rec in records:
            ctx, cands, _ = probe_contexts(rec, root)
            logps, counts = model.answer_logps([ctx] * len(cands), [c + model.end_of_chunk for c in cands])
            picks[label].append(cands[int((logps / counts).argmax())])
    cols = max(len(r.images) for r in records)
    fig, axes = plt.subplots(len(records), cols, figsize=(2.2 * cols, 2.6 * len(records)), squeeze=False)
    for row, rec in enumerate(records):
        for col in range(cols):
            ax = axes[row][col]
            ax.axis("off")
            if col >= len(rec.images):
                continue
            ax.imshow(load_image(root, rec.images[col]))
            if col < len(rec.context):
                d = rec.context[col]
                ax.set_title(f"{d.answer}\n({d.original_answer})", fontsize=8)
            else:
                ax.set_title(f"query: {rec.query.question}\nright: {rec.chosen} · before: {picks['before'][row]}"
                             f" · after: {picks['after'][row]}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
