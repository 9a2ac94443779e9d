"""The `ragkit` command line: a Click group over the library. No logic lives here.

Library errors (RagkitError) become one line on stderr and a non-zero exit; each command module
below registers its commands on `main` and imports the heavy library parts inside the command body,
so `ragkit --help` starts fast.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import RagkitError


class RagkitGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RagkitError as e:
            click.echo(f"Error: {as_option(ctx, e)}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; nothing already stored was changed.", err=True)
            ctx.exit(130)


def as_option(ctx: click.Context, e: RagkitError) -> str:
    """A settings error about a field the command has an option for names the option:
    "per_chunk: must be at least 1" reads "--per-chunk: must be at least 1" on the command line."""
    path = getattr(e, "path", "")
    name = ctx.invoked_subcommand
    command = ctx.command.get_command(ctx, name) if name and isinstance(ctx.command, click.Group) else None
    if not path or command is None or not str(e).startswith(path):
        return str(e)
    for param in command.params:
        if isinstance(param, click.Option) and param.name == path:
            return max(param.opts, key=len) + str(e)[len(path):]
    return str(e)


@click.group(cls=RagkitGroup)
@click.version_option(__version__, prog_name="ragkit")
def main() -> None:
    """Inject a domain's knowledge into an LLM by retrieval or LoRA fine-tuning, and measure which works."""


def echo_json(obj) -> None:
    import json

    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


# Command modules register themselves on `main` when imported.
from . import ask_cmds, eval_cmds, index_cmds, run_cmds, sft_data_cmds, train_cmds  # noqa: E402,F401
