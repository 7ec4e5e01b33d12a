"""The Typer application, and the one place where errors become exit codes."""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from fermion.errors import FermionError

EXIT_USAGE = 2  # bad input of any kind: the user can fix it and try again
EXIT_INTERNAL = 3


class FermionGroup(TyperGroup):
    """Turns a `FermionError` anywhere below into one line on stderr and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except FermionError as exc:
            _fail(str(exc), EXIT_USAGE)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except BrokenPipeError:  # the reader went away (`fermion ... | head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            raise typer.Exit(141) from None
        except Exception as exc:
            if os.environ.get("FERMION_DEBUG"):
                raise
            _fail(
                f"unexpected {type(exc).__name__}: {exc} (FERMION_DEBUG=1 shows where)",
                EXIT_INTERNAL,
            )


def _fail(message: str, code: int) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(first_line)}", markup=True
    )
    raise typer.Exit(code)


def new_app(help_text: str) -> typer.Typer:
    return typer.Typer(
        cls=FermionGroup,
        help=help_text,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
