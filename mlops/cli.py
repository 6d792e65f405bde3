"""`mlops`: one subcommand per lifecycle stage, as dvc.yaml and the DAG call them.

Every subcommand reads params.yaml through the strict settings loader, and
every problem a user can fix ends as one line on stderr with exit status 2,
not as a traceback. A candidate the gate rejected is an outcome, not an
error: `mlops promote` and `mlops retrain-on-drift` print the verdict and the
next step and end with exit status 3 (docs: reference/exit-status.md).

This module is the entry point: the `mlops` group, its --params, and how an
error becomes an exit status. The subcommands live in modules of their own,
registered here: mlops/cli_stages.py (the `dvc.yaml` stages),
mlops/cli_operations.py (promotion, batch scoring, the registry and params
groups, the drift-triggered retrain) and mlops/cli_feedback.py (the
`feedback` and `keys` groups).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mlops import cli_operations, cli_stages
from mlops.cli_feedback import feedback, keys
from mlops.core.environment import apply_defaults, environment
from mlops.core.errors import REJECTED_EXIT, USER_ERROR_EXIT, GateRejected, MlopsError
from mlops.core.settings import DEFAULT_PARAMS

PathArg = click.Path(path_type=Path)


@click.group()
@click.option("--params", "params_path", type=PathArg, default=DEFAULT_PARAMS, show_default=True,
              help="The params file to read settings from.")
@click.pass_context
def cli(ctx: click.Context, params_path: Path) -> None:
    """The text-classification lifecycle, one stage per subcommand."""
    apply_defaults(Path.cwd())
    ctx.obj = params_path


for command in (*cli_stages.COMMANDS, *cli_operations.COMMANDS, feedback, keys):
    cli.add_command(command)


def report_exit(code: int, error: str | None) -> None:
    """Tell a driver that asked (MLOPS_EXIT_FILE) how this command ended."""
    target = environment().exit_file
    if target is not None:
        target.write_text(json.dumps({"exit": code, "error": error}), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    code, message = 0, None
    try:
        cli.main(args=argv, prog_name="mlops", standalone_mode=False)
    except GateRejected as verdict:  # an outcome: the verdict on stdout, no "error:"
        code, message = REJECTED_EXIT, str(verdict) or "rejected by the gate"
        if str(verdict):
            click.echo(message)
    except MlopsError as error:
        code, message = getattr(error, "exit_code", USER_ERROR_EXIT), f"error: {error}"
        click.echo(message, err=True)
    except click.exceptions.Abort:
        code = 130
    except click.ClickException as error:
        error.show()
        code, message = error.exit_code, f"error: {error.format_message()}"
    except BaseException as error:
        report_exit(1, f"{type(error).__name__}: {error}")
        raise
    report_exit(code, message)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
