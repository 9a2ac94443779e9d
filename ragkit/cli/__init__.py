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
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; nothing already stored was changed.", err=True)
            ctx.exit(130)


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
from . import ask_cmds, eval_cmds, index_cmds, run_cmds, serve_cmds, sft_data_cmds, train_cmds  # noqa: E402,F401
