"""The ``spillover`` command line: one typer app; each sub-module adds its commands."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Measure and contain emergent misalignment from narrow refusal unlearning.",
)



@app.callback()
def _root() -> None:
    """Measure and contain emergent misalignment from narrow refusal unlearning."""


from . import generate  # noqa: E402,F401  (registers commands)
from . import concepts  # noqa: E402,F401
from . import report  # noqa: E402,F401
from . import compare  # noqa: E402,F401
from . import data  # noqa: E402,F401
from . import train  # noqa: E402,F401  (registers unlearn, finetune)
from . import judge  # noqa: E402,F401
from . import study  # noqa: E402,F401  (registers study, evaluate)


def main() -> None:
    """Entry point: user errors print one clear message and exit with status 2."""
    from ..io import InputError
    from ..models import ModelLoadError

    try:
        app()
    except (InputError, ModelLoadError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
