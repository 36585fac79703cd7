"""Recipe configs: a YAML file plus dotted `key=value` overrides, validated by pydantic models forbidding extras."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from symdpo.errors import SymdpoError

M = TypeVar("M", bound=BaseModel)
REQUIRED = "???"  # a value to fill in (DPO repo convention): treated as absent, so pydantic reports it missing


class ConfigError(SymdpoError):
    """A config file or override that cannot be read or does not validate; one line per problem."""


class StrictModel(BaseModel):
    """Base for recipe config sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-5` as a float (PyYAML's YAML 1.1 rules want `1.0e-5`)."""


# only the forms YAML 1.1 misses (an exponent without a dot); SafeLoader's own resolvers handle the rest
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?\d[\d_]*(?:\.[\d_]*)?[eE][-+]?\d+$"), list("-+0123456789")
)


def parse_value(text: str) -> Any:
    """Return an override's value parsed as YAML (`1e-5` -> float, `[1, 2]` -> list, `foo.jsonl` -> str)."""
    return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set `a.b.c=value` in the nested dict `data` in place, creating missing mappings on the way."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r}: expected dotted.key=value")
    *parents, leaf = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parents):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            if node.get(part) is None:  # absent, or a `section:` left empty in the YAML
                node[part] = {}
            node = node[part]
        else:
            raise ConfigError(f"override {override!r}: {'.'.join(parents[:i])} is not a mapping")
    if isinstance(node, list) and leaf.isdigit() and int(leaf) < len(node):
        node[int(leaf)] = parse_value(text)
    elif isinstance(node, dict):
        node[leaf] = parse_value(text)
    else:
        raise ConfigError(f"override {override!r}: {'.'.join(parents)} is not a mapping")


def _drop_required(node: Any) -> Any:
    # "???" placeholders become absent keys, so a missing value is reported as missing, not as ill-typed
    if isinstance(node, dict):
        return {k: _drop_required(v) for k, v in node.items() if v != REQUIRED}
    if isinstance(node, list):
        return [_drop_required(v) for v in node]
    return node


def _lax_models(model_cls: type[BaseModel], seen: set[type] | None = None) -> list[str]:
    """Return the names of config models reachable from `model_cls` that would silently accept unknown keys."""
    seen = set() if seen is None else seen
    if model_cls in seen:
        return []
    seen.add(model_cls)
    lax = [] if model_cls.model_config.get("extra") == "forbid" else [model_cls.__name__]
    for field in model_cls.model_fields.values():
        stack = [field.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                lax += _lax_models(tp, seen)
            stack.extend(typing.get_args(tp))
    return lax


def _describe(error: dict[str, Any], overridden: dict[str, str]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing (set it in the file or with key=value)"
    else:
        got = repr(error["input"])
        message = f"{error['msg']} (got {got if len(got) <= 80 else got[:77] + '...'})"
    source = next((f" [override {o}]" for k, o in overridden.items() if key == k or key.startswith(k + ".")), "")
    return f"{key}: {message}{source}"


def load_config(path: str | Path, overrides: list[str], model_cls: type[M]) -> M:
    """Return `model_cls` validated from the YAML file at `path` with dotted `key=value` overrides applied."""
    path = Path(path)
    lax = _lax_models(model_cls)
    if lax:  # a typo in a YAML key must fail, so every section has to forbid extras
        raise TypeError(f"config models must set extra='forbid' (use StrictModel): {', '.join(lax)}")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader) or {}  # _Loader is a SafeLoader
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read config: {e}".replace("\n", " ")) from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    overridden = {}
    for override in overrides:
        try:
            apply_override(data, override)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
        overridden[override.partition("=")[0].strip()] = override
    try:
        return model_cls.model_validate(_drop_required(data))
    except ValidationError as e:
        lines = [f"{path}: {_describe(err, overridden)}" for err in e.errors()]
        raise ConfigError(f"invalid config ({len(lines)} error{'s' * (len(lines) > 1)}):\n" + "\n".join(lines)) from None
