"""Command-line options whose defaults live in a pydantic config: unset (None) unless given, help showing the default.

A command passes only the options the user set (``given``) to its config, so each default is written once, on
the config's field; ``config_option`` shows that default in ``--help``, spelled as the option takes it.
"""

from __future__ import annotations

from typing import Any

import typer
from pydantic import BaseModel


def default_text(value: Any, flag: str) -> str:
    """Return a default as the command line spells it: lists comma-separated, dicts key=weight, flags by name."""
    if isinstance(value, bool):
        return flag if value else f"no-{flag}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
    return str(value)


def config_option(model: type[BaseModel], field: str, *param_decls: str, **kwargs: Any) -> Any:
    """Return a typer option that is None unless given, its help showing ``model``'s default for ``field``."""
    default = model.model_fields[field].get_default(call_default_factory=True)
    flag = param_decls[0].lstrip("-") if param_decls else field.replace("_", "-")
    shown = False if default is None or default in ("", [], {}) else default_text(default, flag)
    return typer.Option(None, *param_decls, show_default=shown, **kwargs)


def given(**values: Any) -> dict[str, Any]:
    """Return the options the user set (those not None), to pass to a config over its defaults."""
    return {name: value for name, value in values.items() if value is not None}
