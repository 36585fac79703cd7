"""The ``symdpo`` command: data, train, eval, infer, demo and model sub-commands.

Errors a user can fix (a missing file, a malformed checkpoint or config, an unknown preset) are printed as
one line, without a traceback, and exit with status 1.
"""

from __future__ import annotations

import sys

import click
import typer

from symdpo.models.cli import app as model_app

app = typer.Typer(help="SymDPO: make multimodal models use the images in their in-context demonstrations.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(model_app, name="model")


@app.command()
def demo() -> None:
    """Run the embedded end-to-end demo (easy-VQA, tiny Flamingo, CPU)."""
    typer.echo("symdpo demo: not yet available. The embedded end-to-end demo (data -> SymDPO training -> "
               "evaluation on easy-VQA) is still being built; see the README's Status table.")


def _user_errors() -> tuple[type[BaseException], ...]:
    from symdpo.config import ConfigError
    from symdpo.models.flamingo.checkpoints import CheckpointError
    from symdpo.models.presets import UnknownModelError

    return (ConfigError, CheckpointError, UnknownModelError, FileNotFoundError, ValueError)


def main() -> None:
    """Run the CLI, turning user errors into one-line messages."""
    try:
        app(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
