"""load_config: YAML + dotted overrides, strict validation, readable one-line-per-error messages."""

from typing import Literal

import pytest
from pydantic import BaseModel

from symdpo.config import ConfigError, StrictModel, load_config, parse_value


class Optim(StrictModel):
    lr: float = 5e-6
    weight_decay: float = 0.0


class Loss(StrictModel):
    beta: float = 0.1
    type: Literal["sigmoid", "ipo"] = "sigmoid"


class Data(StrictModel):
    path: str
    shots: list[int] = [4, 8]


class Recipe(StrictModel):
    seed: int = 0
    optim: Optim = Optim()
    loss: Loss = Loss()
    data: Data
    model: dict[str, str] = {}


YAML = """\
# launch: symdpo train dpo configs/test.yaml
seed: 3
optim:
  lr: 1e-5
data:
  path: pairs.jsonl
"""


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(YAML)
    return path


def test_loads_yaml_with_defaults(cfg_file):
    cfg = load_config(cfg_file, [], Recipe)
    assert cfg.seed == 3 and cfg.optim.lr == 1e-5 and cfg.data.path == "pairs.jsonl"
    assert cfg.loss == Loss() and cfg.data.shots == [4, 8]


def test_dotted_overrides(cfg_file):
    cfg = load_config(cfg_file, ["optim.lr=2e-5", "data.path=foo.jsonl", "loss.beta=0.2", "model.preset=tiny",
                                 "data.shots=[0, 16]", "loss.type=ipo", "data.shots.1=32"], Recipe)
    assert cfg.optim.lr == 2e-5 and isinstance(cfg.optim.lr, float)
    assert (cfg.data.path, cfg.loss.beta, cfg.model, cfg.data.shots) == ("foo.jsonl", 0.2, {"preset": "tiny"}, [0, 32])
    assert cfg.loss.type == "ipo"


def test_override_fills_an_empty_section(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("data:\n  path: x\nloss:\n")  # `loss:` alone is null: an error unless something fills it
    with pytest.raises(ConfigError, match="loss: Input should be a valid dictionary"):
        load_config(path, [], Recipe)
    assert load_config(path, ["loss.beta=0.5"], Recipe).loss.beta == 0.5


def test_values_parse_as_yaml():
    assert parse_value("1e-5") == 1e-5 and parse_value("-3E2") == -300.0 and type(parse_value("7")) is int
    assert parse_value("true") is True and parse_value("null") is None and parse_value("v1.2") == "v1.2"
    assert type(parse_value("1e5")) is float and parse_value("1.5") == 1.5 and parse_value("1_000") == 1000


def test_errors_name_file_and_dotted_key_one_line_each(cfg_file):
    with pytest.raises(ConfigError) as e:
        load_config(cfg_file, ["optim.lrr=1", "loss.beta=high", "data.shots=[1, x]"], Recipe)
    lines = str(e.value).splitlines()
    assert lines[0] == "invalid config (3 errors):"
    assert all(line.startswith(f"{cfg_file}: ") for line in lines[1:])
    body = "\n".join(lines[1:])
    assert f"{cfg_file}: optim.lrr: unknown key [override optim.lrr=1]" in body
    assert "loss.beta: Input should be a valid number" in body and "'high'" in body
    assert "data.shots.1: Input should be a valid integer" in body


def test_unknown_key_in_file_and_missing_required(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: 1e-5\n  momentum: 0.9\ndata:\n  path: ???\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, [], Recipe)
    message = str(e.value)
    assert f"{path}: optim.momentum: unknown key" in message
    assert f"{path}: data.path: required key is missing" in message


def test_bad_override_and_unreadable_file(cfg_file, tmp_path):
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        load_config(cfg_file, ["optim.lr"], Recipe)
    with pytest.raises(ConfigError, match="seed is not a mapping"):
        load_config(cfg_file, ["seed.x=1"], Recipe)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml", [], Recipe)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "list.yaml", [], Recipe)


def test_models_must_forbid_extra_keys(cfg_file):
    class Lax(BaseModel):  # would silently drop a misspelled key
        lr: float = 1.0

    class Outer(StrictModel):
        optim: Lax | None = None

    with pytest.raises(TypeError, match="Lax"):
        load_config(cfg_file, [], Outer)
