"""Contexts of a plan: OpenFlamingo's strings, image conditions, determinism, shot checks."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from symdpo.eval.config import EvalConfig
from symdpo.eval.datasets import Split
from symdpo.eval.errors import EvalError
from symdpo.eval.images import BLANK, ImageRef
from symdpo.eval.plan import Condition, TaskPlan, check_shots, conditions, derangement, make_trial
from symdpo.eval.tasks import get_task


def _rec(i: int, split: str) -> NS:
    return NS(id=f"{split}-{i}", image=f"{split}/{i}.png", question=f"Q{i}?", answers=(f"a{i}",), answer=f"a{i}")


def _plan(n_train: int = 20, seed: int = 7) -> TaskPlan:
    train = Split([_rec(i, "tr") for i in range(n_train)], Path("/train"))
    ev = Split([_rec(i, "ev") for i in range(3)], Path("/eval"))
    return TaskPlan(get_task("vqav2"), ev, train, [make_trial(train, 10, seed)])


def _cond(shots: int, demo: str = "real", query: str = "real") -> Condition:
    return Condition("vqav2", shots, 0, 7, demo, query)


def test_two_shot_context_is_openflamingo_string() -> None:
    plan = _plan()
    ctx, demo_ids = plan.context(_cond(2), plan.eval.records[0])
    demos = {d.id: d for d in plan.train.records}
    d0, d1 = (demos[i] for i in demo_ids)
    assert ctx == [ImageRef("/train", d0.image), f"Question:{d0.question} Short answer:{d0.answers[0]}<|endofchunk|>\n",
                   ImageRef("/train", d1.image), f"Question:{d1.question} Short answer:{d1.answers[0]}<|endofchunk|>\n",
                   ImageRef("/eval", "ev/0.png"), "Question:Q0? Short answer:"]
    assert plan.context(_cond(2), plan.eval.records[0]) == (ctx, demo_ids)  # a pure function of (seed, item)


def test_zero_shot_has_two_text_only_demos() -> None:
    plan = _plan()
    ctx, demo_ids = plan.context(_cond(0), plan.eval.records[1])
    assert len(demo_ids) == 2 and len(ctx) == 3
    assert ctx[0].count("<|endofchunk|>\n") == 2 and ctx[1] == ImageRef("/eval", "ev/1.png")


def test_image_conditions() -> None:
    plan = _plan()
    rec = plan.eval.records[2]
    real = [x for x in plan.context(_cond(4), rec)[0] if isinstance(x, ImageRef)]
    blank = [x for x in plan.context(_cond(4, "blank"), rec)[0] if isinstance(x, ImageRef)]
    shuffled = [x for x in plan.context(_cond(4, "shuffled"), rec)[0] if isinstance(x, ImageRef)]
    no_query = [x for x in plan.context(_cond(4, "real", "blank"), rec)[0] if isinstance(x, ImageRef)]
    assert blank == [BLANK] * 4 + [real[-1]]
    assert sorted(shuffled[:4]) == sorted(real[:4]) and all(a != b for a, b in zip(shuffled[:4], real[:4], strict=True))
    assert shuffled[-1] == real[-1]
    assert no_query == real[:4] + [BLANK]
    text_real = [x for x in plan.context(_cond(4), rec)[0] if isinstance(x, str)]
    assert [x for x in plan.context(_cond(4, "shuffled"), rec)[0] if isinstance(x, str)] == text_real


def test_derangement_moves_every_item() -> None:
    rng = random.Random(0)
    for n in range(2, 9):
        out = derangement(list(range(n)), rng)
        assert sorted(out) == list(range(n)) and all(i != v for i, v in enumerate(out))


def test_shots_larger_than_query_set() -> None:
    plan = _plan(n_train=5)
    config = EvalConfig(model="tiny", tasks=["vqav2"], shots=[0, 8], query_set_size=5)
    with pytest.raises(EvalError, match="8 shots need at least 8 demonstrations but the query set has 5"):
        check_shots(config, "vqav2", plan.trials)


def test_conditions_skip_blank_zero_shot() -> None:
    config = EvalConfig(model="tiny", tasks=["vqav2"], shots=[0, 4], trials=2, demo_images=["real", "blank"])
    got = [(c.shots, c.trial, c.seed, c.demo_images) for c in conditions(config, "vqav2")]
    assert got == [(0, 0, 42, "real"), (0, 1, 43, "real"), (4, 0, 42, "real"), (4, 1, 43, "real"),
                   (4, 0, 42, "blank"), (4, 1, 43, "blank")]
