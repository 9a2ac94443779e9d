"""The `ragkit` Click group (`main`) and the CLI's one error boundary.

The one error boundary: a library error (RagkitError) or a bad command line (a missing option, a
path that does not exist, a value of the wrong type) becomes one sentence on stderr and a
non-zero exit; with --json the same error is a JSON object on stdout instead, with the same exit
code:

    {"error": {"message": "...", "type": "SettingsError", "exit_code": 2}}

Exit codes: 0 done; 1 a library error (a model, a backend, an index); 2 bad input (a flag, a
value, a file or directory that does not exist, a settings file); 3 ingest finished but skipped
files it could not read; 130 interrupted.
"""

from __future__ import annotations

import json
import sys

import click

from .. import __version__
from ..errors import RagkitError


class RagkitGroup(click.Group):
    def format_commands(self, ctx: click.Context, formatter) -> None:
        """The command list with each command's whole first sentence, wrapped, never cut with '...'
        (Click cuts a short help at the terminal width)."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        args = [*getattr(ctx, "_protected_args", []), *ctx.args]
        as_json = "--json" in args[1:]
        try:
            return super().invoke(ctx)
        except RagkitError as e:
            fail(ctx, as_option(ctx, e), type(e).__name__, e.exit_code, as_json)
        except click.UsageError as e:  # click's own: a missing option, a bad value, a missing path
            fail(ctx, e.format_message(), "UsageError", e.exit_code, as_json)
        except KeyboardInterrupt:
            fail(ctx, "Interrupted; nothing already stored was changed.", "Interrupted", 130, as_json)


def fail(ctx: click.Context, message: str, kind: str, exit_code: int, as_json: bool):
    """Report one error: a line on stderr, or with --json an error object on stdout."""
    if as_json:
        echo_json({"error": {"message": message, "type": kind, "exit_code": exit_code}})
    else:
        click.echo(f"Error: {message}", err=True)
    ctx.exit(exit_code)


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
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
