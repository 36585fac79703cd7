"""VL-ICL tasks: scoring, demonstration selection, prompts and bad input.

Compared against VL-ICL's published rules as /work/shared/VL-ICL.md documents them, with its sources:
scoring from ``evals/eval.py`` (section 5: the shared truncation, exact match, ``\\d+`` for the operator
tasks, the "yes"-substring rule of matching_mi), selection from ``utils/ICL_utils.py::select_demonstration``
(section 2), prompts from ``utils/model_inference.py`` and ``get_task_instruction`` (section 3). The expected
values below are worked out by hand from those rules, not by running symdpo.
"""

from __future__ import annotations

import pytest
from vlicl_fixtures import write_all

from symdpo.data.errors import DataError
from symdpo.eval.config import EvalConfig
from symdpo.eval.errors import EvalError
from symdpo.eval.plan import conditions
from symdpo.eval.runner import prepare
from symdpo.eval.vlicl_data import FOLDERS, read_vlicl
from symdpo.eval.vlicl_scoring import score_one, truncate

# (dataset folder, raw prediction, gold answer, VL-ICL's score)
PARITY_CASES = [
    # textocr: whole-string, case-insensitive equality after truncation
    ("textocr", "STOP", "STOP", 1),
    ("textocr", "stop", "STOP", 1),
    ("textocr", "  Stop \n", "STOP", 1),  # stripped first
    ("textocr", "STOP sign", "STOP", 0),
    ("textocr", "STOP\nWhat text is shown", "STOP", 1),  # cut at the first newline
    ("textocr", "WWW.X.COM", "WWW.X.COM", 0),  # quirk: cut at the first "."
    ("textocr", "WWW.X.COM", "WWW", 1),
    ("textocr", "3.5", "3.5", 0),  # quirk: "3.5" -> "3"
    ("textocr", ".com", ".com", 1),  # a "." that is the first character does not cut
    ("textocr", "Cafe.\nmore", "Cafe.", 1),  # a newline cut wins: the period before it stays
    ("textocr", "dax .", "dax", 0),  # quirk: the space before the cut survives
    ("textocr", "", "STOP", 0),
    # open_mi: the made-up name exactly
    ("open_mi", "dax", "dax", 1),
    ("open_mi", "Dax", "dax", 1),
    ("open_mi", "dax.", "dax", 1),
    ("open_mi", "This is a dax", "dax", 0),
    ("open_mi", "dax\nThis is a", "dax", 1),
    ("open_mi", " blicket ", "blicket", 1),
    ("open_mi", "blickets", "blicket", 0),
    # clevr: int answer compared as str, no number extraction
    ("clevr", "3", 3, 1),
    ("clevr", "3.", 3, 1),
    ("clevr", "There are 3", 3, 0),
    ("clevr", "3 objects", 3, 0),
    ("clevr", "three", 3, 0),
    ("clevr", "10\n", 10, 1),
    ("clevr", "3.5", 3, 1),  # the "." cut turns 3.5 into 3
    # operator induction: the first \d+ of the truncated text
    ("operator_induction", "9", 9, 1),
    ("operator_induction", "The answer is 9", 9, 1),
    ("operator_induction", "3 + 4 = 7", 7, 0),  # scores as 3
    ("operator_induction", "3 + 4 = 7", 3, 1),
    ("operator_induction", "-5", -5, 0),  # quirk: a negative answer can never score
    ("operator_induction", "5", -5, 0),
    ("operator_induction", "no idea", 0, 0),  # no digit: "" != "0"
    ("operator_induction", "12.5", 12, 1),
    ("operator_induction", "0", 0, 1),
    ("operator_induction_interleaved", "21\n", 21, 1),
    ("operator_induction_interleaved", "x", 0, 0),
    ("operator_induction_interleaved", "Answer: 18", 18, 1),
    # matching_mi: yes-substring for gold yes; absence of yes for gold no
    ("matching_mi", "Yes", "Yes", 1),
    ("matching_mi", "yes, they match", "Yes", 1),
    ("matching_mi", "eyes", "Yes", 1),  # "yes" inside another word
    ("matching_mi", "No", "Yes", 0),
    ("matching_mi", "No", "No", 1),
    ("matching_mi", "", "No", 1),  # empty output counts as no
    ("matching_mi", "banana", "No", 1),  # so does garbage
    ("matching_mi", "yes", "No", 0),
    ("matching_mi", "No.\nYes", "No", 1),  # cut at the newline before "Yes"
    ("matching_mi", "no. yes", "No", 1),  # cut at the "."
]

# (folder, prediction, answer, fixes, score): each fix changes its one rule
FIX_CASES = [
    ("operator_induction", "-5", -5, {"signed-numbers"}, 1),
    ("operator_induction", "3 - 8 = -5", -5, {"signed-numbers"}, 0),  # still the first number
    ("operator_induction_interleaved", "-1", -1, {"signed-numbers"}, 1),
    ("matching_mi", "eyes", "Yes", {"strict-yes-no"}, 0),
    ("matching_mi", "", "No", {"strict-yes-no"}, 0),
    ("matching_mi", "No, different", "No", {"strict-yes-no"}, 1),
    ("matching_mi", "YES", "Yes", {"strict-yes-no"}, 1),
    ("textocr", "WWW.X.COM", "WWW.X.COM", {"keep-decimals"}, 1),
    ("textocr", "3.5", "3.5", {"keep-decimals"}, 1),
    ("textocr", "Cafe. It is", "Cafe", {"keep-decimals"}, 1),
    ("textocr", "dax .", "dax", {"strip-after-cut"}, 1),
    ("open_mi", "dax .", "dax", {"strip-after-cut", "keep-decimals"}, 1),
]


@pytest.mark.parametrize(("folder", "prediction", "answer", "expected"), PARITY_CASES)
def test_parity_scoring(folder, prediction, answer, expected) -> None:
    assert score_one(folder, prediction, answer) == expected


@pytest.mark.parametrize(("folder", "prediction", "answer", "fixes", "expected"), FIX_CASES)
def test_scoring_fixes(folder, prediction, answer, fixes, expected) -> None:
    assert score_one(folder, prediction, answer, fixes) == expected


def test_enough_cases_cover_each_task() -> None:
    assert len(PARITY_CASES) >= 40 and {c[0] for c in PARITY_CASES} == set(FOLDERS.values())
    assert truncate("  a.b\n") == "a"  # strip, then no newline left: the period cuts


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("vlicl"))


def _plan(data, task, shots, **kw):
    config = EvalConfig(model="tiny", tasks=[task], shots=shots, trials=2, paths={"vlicl_data": str(data)}, **kw)
    return config, prepare(config)[0]


def _contexts(data, task, shots, **kw):
    """Return (record, condition, demos, context) for every evaluated record and condition."""
    config, plan = _plan(data, task, shots, **kw)
    out = []
    for cond in conditions(config, task):
        for rec in plan.eval.records:
            trial = plan.trials[cond.trial]
            out.append((rec, cond, plan.demos(trial, rec, cond.shots), plan.context(cond, rec)[0]))
    return plan, out


def test_operator_demos_show_the_query_operator(data) -> None:
    for task in ("vlicl-operator", "vlicl-operator-interleaved"):
        plan, rows = _contexts(data, task, [4])
        support = {r.id: r for r in plan.train.records}
        for rec, _, demos, _ in rows:
            k = {"+": 0, "-": 1, "x": 2}[rec.operator]
            assert len(demos) == 4 and all(d.answer == support[d.id].answer[k] for d in demos)
            assert {d.id for d in demos} <= set(support)


def test_open_mi_episode_from_the_query_own_support(data) -> None:
    _, rows = _contexts(data, "vlicl-open-mi", [1, 5])
    for rec, cond, demos, ctx in rows:
        n = cond.shots
        assert len(demos) == 2 * n  # n per class
        classes = [d.answer for d in demos]
        first, second = classes[:2]
        assert rec.answer in (first, second) and first != second
        assert classes == [first, second] * n  # alternating A, B, A, B in one fixed order
        own = dict(rec.class_images)
        assert [d.image[0] for d in demos] == [own[c][i] for i in range(n) for c in (first, second)]
        assert all(d.question == "This is a" for d in demos)
        assert sum(not isinstance(x, str) for x in ctx) == 2 * n + 1  # VL-ICL: 2n+1 images


def test_open_mi_both_orders_occur(data) -> None:
    _, rows = _contexts(data, "vlicl-open-mi", [1])
    firsts = {(d[0].answer == r.answer) for r, _, d, _ in rows}
    assert len(rows) == 6 and firsts == {True, False}  # the coin flip goes both ways on 3 queries x 2 trials


def test_matching_mi_alternates_same_and_diff(data) -> None:
    _, rows = _contexts(data, "vlicl-matching-mi", [2])
    for _, _, demos, ctx in rows:
        assert [d.answer for d in demos] == ["Yes", "No", "Yes", "No"]
        assert [d.id.rsplit("/", 1)[1] for d in demos] == ["same", "diff", "same", "diff"]
        assert sum(not isinstance(x, str) for x in ctx) == 4 * 2 + 2  # VL-ICL: 4n+2 images


def test_no_query_record_is_a_demonstration(data) -> None:
    for task in FOLDERS:
        shots = [0, 2]
        plan, rows = _contexts(data, task, shots)
        query_ids = {r.id for r in plan.eval.records}
        query_images = {p for r in plan.eval.records for p in r.image}
        for _, cond, demos, _ in rows:
            assert len(demos) == (0 if cond.shots == 0 else 2 * (2 if task in ("vlicl-open-mi", "vlicl-matching-mi") else 1))
            assert not {d.id for d in demos} & query_ids
            assert not {p for d in demos for p in d.image} & query_images


def test_prompt_is_vlicl_openflamingo_with_description(data) -> None:
    _, rows = _contexts(data, "vlicl-clevr", [0, 1], task_description="detailed")
    rec, _, _, zero = rows[0]
    assert zero[0] == ("The image contains objects of different shapes, colors, sizes and materials. The question "
                       "describes the attribute and its value. You need to find all objects within the image that "
                       "satisfy the condition. You should induce what operation to use according to the results of "
                       "the in-context examples and then calculate the result.\n")
    assert zero[2] == f"{rec.question}\nAnswer:" and len(zero) == 3  # 0 shots: the query alone
    _, _, (demo,), one = next(r for r in rows if r[1].shots == 1)
    assert one[2] == f"{demo.question}\nAnswer: {demo.answer}<|endofchunk|>"  # str() of the int answer
    _, rows = _contexts(data, "vlicl-clevr", [0])
    assert rows[0][3][0] == "\n"  # "nothing": the newline alone, as VL-ICL writes it


def test_blank_and_shuffled_multi_image_demos(data) -> None:
    config, plan = _plan(data, "vlicl-matching-mi", [1], demo_images=["real", "blank", "shuffled"])
    rec = plan.eval.records[0]
    by = {c.demo_images: plan.context(c, rec)[0] for c in conditions(config, "vlicl-matching-mi") if c.trial == 0}
    images = {k: [x for x in v if not isinstance(x, str)] for k, v in by.items()}
    assert [x.rel for x in images["blank"][:4]] == ["<blank>"] * 4 and images["blank"][4:] == images["real"][4:]
    assert images["shuffled"][:2] == images["real"][2:4] and images["shuffled"][2:4] == images["real"][:2]


def test_seeded_selection_is_per_item(data) -> None:
    _, first = _contexts(data, "vlicl-textocr", [2])
    _, again = _contexts(data, "vlicl-textocr", [2])
    assert [[d.id for d in r[2]] for r in first] == [[d.id for d in r[2]] for r in again]
    assert len({tuple(d.id for d in r[2]) for r in first}) > 1  # each item draws its own demonstrations


def test_bad_input_is_one_line(data, tmp_path) -> None:
    # the records are data: their reader (data.sources.vlicl, shared with `data build`) raises DataError
    with pytest.raises(DataError, match=r"query\.json: not found; --vlicl-data must be the VL-ICL folder"):
        read_vlicl(tmp_path, "vlicl-clevr", "query")
    bad = tmp_path / "clevr"
    bad.mkdir()
    (bad / "query.json").write_text('[\n  {"id": "a", "image": ["clevr/query/a.png"], "question": "q", "answer": 1},'
                                    '\n  {"id": "b", "question": "q", "answer": 2}\n]')
    with pytest.raises(DataError) as err:
        read_vlicl(tmp_path, "vlicl-clevr", "query")
    assert str(err.value) == (f"{bad / 'query.json'}: line 3 (record 1, id b): no field 'image' (a list of 1 image "
                              "path(s) relative to the VL-ICL folder)")
    with pytest.raises(EvalError, match="task vlicl-clevr needs --vlicl-data"):
        prepare(EvalConfig(model="tiny", tasks=["vlicl-clevr"], shots=[0], trials=1))
    with pytest.raises(EvalError, match="an open_mi query has 5 support images per class; use --shots up to 5"):
        _plan(data, "vlicl-open-mi", [8])
