"""`ragkit run` and `ragkit report` on a sweep (ragkit.experiment.sweep): the parts of those two
commands that only a file with a `sweep:` block, or its runs/<name>/ directory, reaches."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .group import echo_json
from .progress import TerminalProgress


def run_sweep_cmd(pipeline, overrides, how, runs_dir, check, cells, as_json) -> None:
    from ..experiment.sweep import load_sweep, run_sweep

    if how:
        raise UsageError(f"--{how} does not apply to a sweep: it always continues RUNS_DIR/<name>/; "
                         "delete that folder (or give another --runs-dir) to start over")
    sweep = load_sweep(pipeline, overrides)
    names = [c.strip() for c in cells.split(",") if c.strip()] if cells else None
    chosen = sweep.select(names)
    if check:
        design = {c.name: {"set": c.set, "config": c.config.to_dict()} for c in chosen}
        if as_json:
            echo_json({"name": sweep.name, "cells": design})
        else:
            for c in chosen:
                own = ", ".join(f"{k}={v}" for k, v in c.set.items()) or "the base settings"
                click.echo(f"{c.name}: {own}")
            click.echo(f"{len(chosen)} cell(s), each valid; `ragkit run {pipeline} --check --json` prints them in full")
        return
    result = run_sweep(sweep, runs_dir, cells=names, progress=TerminalProgress(),
                       log=lambda m: click.echo(m, err=True))
    if as_json:
        echo_json(result)
        return
    for name, s in result["cells"].items():
        arms = " ".join(f"{a}={_pct(x['accuracy'])}" for a, x in s["arms"].items())
        ret = " ".join(f"{a}={_pct(x['accuracy'])}" for a, x in (s.get("retention") or {}).items())
        click.echo(f"{name}: {arms}" + (f" | retention {ret}" if ret else ""))
    click.echo(f"Sweep directory: {result['sweep_dir']} (`ragkit report {result['sweep_dir']}` for the table and chart)")


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def sweep_target(run: str, runs_dir: str) -> Path | None:
    """The sweep directory `run` names (the directory itself, or the sweep file), or None."""
    from ..experiment.sweep import DESIGN, is_sweep, sweep_name

    p = Path(run)
    if p.is_dir() and (p / DESIGN).is_file():
        return p
    if p.is_file() and p.suffix in (".yaml", ".yml") and is_sweep(p):
        d = Path(runs_dir) / sweep_name(p)
        if not (d / DESIGN).is_file():
            raise UsageError(f"{run} has not been run under {runs_dir} yet; `ragkit run {run}` first")
        return d
    return None


def report_sweep_cmd(root: Path, as_json: bool) -> None:
    from ..experiment.sweep_report import sweep_report, write_sweep_report

    report = sweep_report(root)
    files = write_sweep_report(root, report)
    if as_json:
        echo_json(report)
        return
    click.echo((root / "sweep.md").read_text(encoding="utf-8"), nl=False)
    click.echo(f"Written: {', '.join(files)}", err=True)
