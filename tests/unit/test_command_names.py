"""Every command a message or a docstring names exists: renamed commands leave no stale advice
behind (`'ragkit sft export-gguf'` in an error once sent users to a command that is not there)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click

from ragkit.cli import main

ROOT = Path(__file__).resolve().parents[2] / "ragkit"
# In a message, a command follows a quote or an instruction ("run ragkit ingest", "use it with:
# ragkit ask"); "a ragkit index" and "this ragkit reads" are prose.
NAMED = re.compile(r"(?:^|[`'\"]|\b(?:with|with:|run|use|try|see|then)\s)ragkit ([a-z][a-z0-9-]*)(?: ([a-z][a-z0-9-]*))?")
QUOTED = re.compile(r"[`']ragkit ([a-z][a-z0-9-]*)(?: ([a-z][a-z0-9-]*))?")


def _strings(node: ast.AST):
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            yield n.value


def _named_commands():
    """(file:line, command words) for every command named in a raise statement's message, and every
    quoted `ragkit ...` anywhere in the package (docstrings, comments, help text)."""
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for n in ast.walk(ast.parse(text)):
            if isinstance(n, ast.Raise) and n.exc is not None:
                for s in _strings(n.exc):
                    for m in NAMED.finditer(s):
                        yield f"{path.name}:{n.lineno}", m.groups()
        for lineno, line in enumerate(text.splitlines(), 1):
            for m in QUOTED.finditer(line):
                yield f"{path.name}:{lineno}", m.groups()


def test_every_named_command_exists():
    ctx = click.Context(main)
    found, stale = 0, []
    for where, (name, sub) in _named_commands():
        found += 1
        cmd = main.get_command(ctx, name)
        if cmd is None:
            stale.append(f"{where}: ragkit {name}")
        elif isinstance(cmd, click.Group) and cmd.get_command(ctx, sub or "") is None:
            stale.append(f"{where}: ragkit {name} {sub}")
    assert found > 40  # the scan sees the package's messages
    assert not stale, stale


def test_the_scan_catches_a_stale_name():
    tree = ast.parse("raise UsageError(f\"export it with 'ragkit sft export-gguf' first\")")
    assert [m.groups() for s in _strings(tree) for m in NAMED.finditer(s)] == [("sft", "export-gguf")]
    assert main.get_command(click.Context(main), "sft") is None
