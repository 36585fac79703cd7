"""Every command, used wrongly or given bad input, ends in one line saying what is wrong: never a traceback.

Compared against: click's own view of each command (its parameters, their types and whether they are
required), so a command added later is covered without editing this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from symdpo.cli import _expand_two_value_options, app, run_app

ROOT = Path(__file__).resolve().parents[1]


def _invoke(capsys, args: list[str]) -> tuple[int, str]:
    """Run ``symdpo ARGS`` in this process as main() does; return (exit status, stdout + stderr)."""
    with pytest.raises(SystemExit) as exc:
        run_app(app, _expand_two_value_options([str(a) for a in args]), "symdpo")
        raise SystemExit(0)
    out = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), out.out + out.err


def _commands() -> list:
    """Return (path, command) of every leaf command of the CLI."""
    found = []

    def walk(cmd, path: list[str]) -> None:
        if hasattr(cmd, "commands"):  # a group (typer 0.2x builds on its own copy of click: duck-typed)
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            found.append((path, cmd))

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = _commands()
IDS = [" ".join(p) for p, _ in COMMANDS]


def _assert_one_line_error(code: int, text: str, *named: str) -> str:
    assert code != 0 and "Traceback" not in text, text
    last = text.strip().splitlines()[-1]
    assert last.startswith("error: "), text
    for n in named:
        assert n in last, (n, last)
    return last


def test_every_command_is_covered():
    assert {"data build", "data inspect", "eval run", "eval symbols", "train dpo", "train sft", "infer", "demo",
            "model info", "model presets"} <= set(IDS)


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=IDS)
def test_unknown_option(capsys, path):
    code, text = _invoke(capsys, [*path, "--no-such-option"])
    last = _assert_one_line_error(code, text, "--no-such-option")
    assert "--help" in last  # what to do


def _having(test) -> list:
    """Return (command path, its first parameter passing ``test``) for every command that has one."""
    out = []
    for path, cmd in COMMANDS:
        params = [p for p in cmd.params if test(p)]
        if params:
            out.append(pytest.param(path, params[0], id=" ".join(path)))
    return out


def _takes_value(p) -> bool:
    return bool(p.opts) and p.opts[0].startswith("--") and not getattr(p, "is_flag", True) and p.nargs == 1


def _numeric(p) -> bool:
    kind = getattr(getattr(p, "type_descriptor", None), "annotation", None) or getattr(p, "type", None)
    return _takes_value(p) and (kind in (int, float) or getattr(kind, "name", "") in ("integer", "float"))


@pytest.mark.parametrize("path,param", _having(lambda p: p.required))
def test_missing_required(capsys, path, param):
    code, text = _invoke(capsys, path)
    _assert_one_line_error(code, text, "Missing")


@pytest.mark.parametrize("path,param", _having(_takes_value))
def test_option_without_its_value(capsys, path, param):
    flag = param.opts[0]
    code, text = _invoke(capsys, [*path, flag])
    _assert_one_line_error(code, text, flag)


@pytest.mark.parametrize("path,param", _having(_numeric))
def test_option_of_the_wrong_type(capsys, path, param):
    flag = param.opts[0]
    code, text = _invoke(capsys, [*path, flag, "ten"])
    _assert_one_line_error(code, text, flag, "valid")


@pytest.mark.parametrize("path", [["--help"], ["eval", "--help"], ["train", "dpo", "--help"]])
def test_plain_help_exits_zero(capsys, path):
    code, text = _invoke(capsys, path)
    assert code == 0 and "Usage" in text


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Return a 16-pair easy-VQA file (with its manifest) built through the CLI."""
    out = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    run_and_check = [*"data build --source easyvqa --max-records 16 --k-max 3 --out".split(), str(out)]
    run_app(app, run_and_check, "symdpo")  # returns on success
    assert out.is_file()
    return out


def _bad_inputs(tmp: Path, built: Path) -> dict[str, tuple[list[str], tuple[str, ...]]]:
    """Return {case: (args, words the error line must contain)} for the bad inputs users met."""
    a_file = tmp / "a-file.txt"
    a_file.write_text("x")
    empty = tmp / "empty.jsonl"
    empty.write_text("")
    binary = tmp / "binary.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))  # an image saved as .jsonl
    no_symbols = tmp / "no-symbols.txt"
    no_symbols.write_text("# none yet\n")
    train_dir = tmp / "train-run"
    (train_dir / "checkpoints").mkdir(parents=True)
    (train_dir / "run.json").write_text("{}")
    moved = tmp / "moved.jsonl"  # records whose manifest points at an image folder that is not there
    moved.write_text(built.read_text())
    manifest = json.loads(Path(f"{built}.manifest.json").read_text())
    manifest["source"]["image_root"] = str(tmp / "gone")
    Path(f"{moved}.manifest.json").write_text(json.dumps(manifest))
    build = ["data", "build", "--source", "easyvqa", "--max-records", "4"]
    run = ["eval", "run", "--model", "tiny", "--task", "easyvqa", "--shots", "0", "--num-samples", "2",
           "--trials", "1", "--no-progress"]
    train = ["train", "dpo", "--config", ROOT / "configs/tiny_dpo.yaml", f"output_dir={tmp / 'run'}",
             "logging.progress=false"]
    return {
        "regex": ([*build, "--out", tmp / "x.jsonl", "--question-regex", "("], ("--question-regex", "(")),
        "regex matching nothing": ([*build, "--out", tmp / "y.jsonl", "--question-regex", "^zzz"],
                                   ("no records", "--question-regex")),
        "out is a directory": ([*build, "--out", tmp], ("--out", "directory")),
        "out is not jsonl/parquet": ([*build, "--out", tmp / "x.csv"], ("--out", ".jsonl")),
        "k-min named as its option": ([*build, "--out", tmp / "x.jsonl", "--k-min", "0"], ("--k-min",)),
        "inspect an empty file": (["data", "inspect", empty], ("empty",)),
        "inspect with missing images": (["data", "inspect", moved], ("images", "gone")),
        "inspect a directory": (["data", "inspect", tmp], ("directory",)),
        "inspect a binary file": (["data", "inspect", binary], (f"{binary}:1", "UTF-8")),
        "empty symbols file": ([*build, "--out", tmp / "x.jsonl", "--symbols-file", no_symbols,
                                "--no-builtin-symbols"], (str(no_symbols), "--symbols-file", "0 usable symbols")),
        "eval hf-dataset path not there": ([*run, "--task", "vqav2", "--out", tmp / "e4", "--hf-dataset",
                                            "./no-such-dataset"], ("./no-such-dataset", "no such folder or file")),
        "eval out is a file": ([*run, "--out", a_file], ("--out", "is a file")),
        "eval out is a training run": ([*run, "--out", train_dir], ("--out", "training run")),
        "dtype": ([*run, "--out", tmp / "e1", "--dtype", "float17"], ("--dtype", "float17")),
        "device": ([*run, "--out", tmp / "e2", "--device", "cuda:99"], ("--device",)),
        "bad shots": ([*run, "--out", tmp / "e3", "--shots", "4,x"], ("--shots",)),
        "symbol probes demo images": (["eval", "symbols", "--model", "tiny", "--probes", built, "--demo-images",
                                       "foo"], ("--demo-images", "foo")),
        "symbol probes empty": (["eval", "symbols", "--model", "tiny", "--probes", empty], ("no probe records",)),
        "training data missing": ([*train, f"data.path={tmp / 'nope.jsonl'}"], ("nope.jsonl", "data.path")),
        "training data a directory": ([*train, f"data.path={tmp}"], ("directory", "data.path")),
        "resume what is not there": ([*train, f"data.path={built}", "--resume"], ("--resume", "does not exist")),
        "unknown config key": ([*train, f"data.path={built}", "optim.lrr=1"], ("optim.lrr", "unknown key")),
        "infer with an unknown model": (["infer", "--model", "no-such-model", "--query", a_file, "q?"],
                                        ("no-such-model",)),
        "model info of an unknown model": (["model", "info", "no-such-model"], ("no-such-model",)),
    }


CASE_NAMES = ["regex", "regex matching nothing", "out is a directory", "out is not jsonl/parquet",
              "k-min named as its option", "inspect an empty file", "inspect with missing images",
              "inspect a directory", "inspect a binary file", "empty symbols file",
              "eval hf-dataset path not there", "eval out is a file", "eval out is a training run", "dtype", "device",
              "bad shots", "symbol probes demo images", "symbol probes empty", "training data missing",
              "training data a directory", "resume what is not there", "unknown config key",
              "infer with an unknown model", "model info of an unknown model"]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input_is_one_line(capsys, tmp_path, built, case):
    cases = _bad_inputs(tmp_path, built)
    assert set(cases) == set(CASE_NAMES)
    args, named = cases[case]
    code, text = _invoke(capsys, args)
    last = _assert_one_line_error(code, text, *named)
    assert "pydantic.dev" not in last
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "y.jsonl").exists()  # nothing half-written


def test_debug_variable_shows_the_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMDPO_DEBUG", "1")
    with pytest.raises(Exception) as exc:  # noqa: PT011 - whichever error the data layer raises, unconverted
        run_app(app, ["data", "inspect", str(tmp_path / "absent.jsonl")], "symdpo")
    assert "absent.jsonl" in str(exc.value)
