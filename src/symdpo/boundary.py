"""The CLI's one error boundary: every failure a user can meet ends as one stderr line and an exit status.

How an exception reads is ``symdpo.errors.describe``; here, where it is caught: each command group of every
layer (`GuardedGroup`), and a whole command line (`run_app`, for ``symdpo`` and ``python -m symdpo.train.cli``).
Exit status 1, 2 for a usage error, 130 for Ctrl-C; ``SYMDPO_DEBUG=1`` lets the traceback through.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
import typer
from typer.core import TyperGroup

from symdpo.errors import UsageError, debugging, describe

# typer 0.2x raises its own copy of click's exceptions (typer._click); older typer raises click's
try:
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover - depends on the installed typer
    _typer_click = click.exceptions
_EXITS = (click.exceptions.Exit, typer.Exit)
_USAGE = (click.ClickException, _typer_click.ClickException)
_ABORTS = (click.exceptions.Abort, typer.Abort)
_CLICKS_OWN = _USAGE + _EXITS + _ABORTS  # click reports these itself


class GuardedGroup(TyperGroup):
    """A typer command group whose sub-commands' errors end as one stderr line and an exit status."""

    def invoke(self, ctx: Any) -> Any:
        """Run the sub-command; an error is printed as one line and raised as SystemExit(1, 2 or 130)."""
        if debugging():
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except _CLICKS_OWN:
            raise
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        except Exception as e:  # noqa: BLE001 - the boundary: anything left becomes one line
            print(f"error: {describe(e)}", file=sys.stderr)
            raise SystemExit(2 if isinstance(e, UsageError) else 1) from None


def run_guarded(fn: Callable[[], Any]) -> None:
    """Run ``fn``; on an error print one line on stderr and exit 1 (2: a usage error, 130: Ctrl-C)."""
    if debugging():
        fn()
        return
    try:
        fn()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the boundary: anything left becomes one line
        print(f"error: {describe(e)}", file=sys.stderr)
        sys.exit(2 if isinstance(e, UsageError) else 1)


def run_app(typer_app: typer.Typer, argv: list[str], prog_name: str) -> None:
    """Run a typer app on ``argv`` and exit with its status; usage and user errors are one line on stderr."""

    def call() -> None:
        try:
            # standalone_mode=False: click returns a sub-command's typer.Exit code instead of exiting
            code = typer_app(args=argv, prog_name=prog_name, standalone_mode=False)
        except _EXITS as e:
            sys.exit(e.exit_code)
        except _USAGE as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # `symdpo` alone, `symdpo eval`: the help is the answer
                e.show()
            else:  # a wrong command, option or value: one line, never a traceback
                print(f"error: {' '.join(e.format_message().split())} ({prog_name} --help lists the commands and "
                      "options)", file=sys.stderr)
            sys.exit(e.exit_code)
        except _ABORTS:  # click turns Ctrl-C into Abort
            print("error: interrupted", file=sys.stderr)
            sys.exit(130)
        if isinstance(code, int) and code:
            sys.exit(code)

    run_guarded(call)
