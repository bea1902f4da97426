"""The ``vtrust`` command line.

Every command that produces results accepts ``--json`` and then prints exactly one JSON
object on stdout. Progress goes to stderr. Usage and input errors print one line on
stderr and exit with code 2; no traceback reaches the user.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

# Bit-identical training across runs needs MKL's conditional numerical reproducibility
# and a fixed thread count inside MKL. Both must be set before torch loads MKL, so the
# command line sets them first; a user's own settings win.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
os.environ.setdefault("MKL_DYNAMIC", "FALSE")

import click  # noqa: E402

from vtrust import progress  # noqa: E402
from vtrust.cli.app import cli  # noqa: E402
from vtrust.errors import VtrustError  # noqa: E402

__all__ = ["cli", "main"]


def _fail(message: str, code: int, as_json: bool = False) -> int:
    first_line = " ".join(str(message).split()) or "error"
    click.echo(f"vtrust: error: {first_line}", err=True)
    if as_json:  # a pipeline parses every outcome from stdout
        click.echo(json.dumps({"error": first_line, "exit_code": code}, sort_keys=True))
    return code


def run(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return its exit code (never raises). Exit codes: 0
    success, 1 a negative verdict (the command's own), 2 bad input, 3 internal error,
    130 interrupted; with ``--json``, a failure also prints ``{"error", "exit_code"}``."""
    args = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in args
    from vtrust import quick

    if progress.SETTING_ERROR:
        return _fail(progress.SETTING_ERROR, 2, as_json)
    if quick.enabled():  # a warning, not progress: shown even with -q
        click.echo(f"vtrust: warning: {quick.WARNING}", err=True)
    try:
        with progress.running():
            result = cli.main(args=args, prog_name="vtrust", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        return _fail(exc.format_message() + hint, 2, as_json)
    except click.ClickException as exc:
        return _fail(exc.format_message(), 2, as_json)
    except VtrustError as exc:
        return _fail(str(exc), 2, as_json)
    except (click.Abort, KeyboardInterrupt):
        return _fail("interrupted", 130)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if os.environ.get("VTRUST_DEBUG"):
            traceback.print_exc()
        return _fail(
            f"internal error: {type(exc).__name__}: {exc} (set VTRUST_DEBUG=1 for details)",
            3,
            as_json,
        )
    return result if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
