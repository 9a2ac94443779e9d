"""`ragkit run PIPELINE.yaml`: a whole experiment (ingest → SFT data → train → eval → report).

The command keeps its name and the files their folder (pipelines/); in the library the thing is an
experiment (ragkit.experiment), so that "pipeline" means only the answer path, ragkit.Pipeline."""

from __future__ import annotations

import click

from ..errors import UsageError
from .group import echo_json, main
from .progress import TerminalProgress
from .sweep_cmds import run_sweep_cmd


@main.command("run")
@click.argument("pipeline", type=click.Path(exists=True, dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a setting, e.g. --set eval.limit=20 --set train.options.epochs=1 (repeatable).")
@click.option("--resume", "how", flag_value="resume", help="Continue the latest run of this pipeline, even if "
              "settings changed (changed steps are redone).")
@click.option("--new", "how", flag_value="new", help="Start a new run directory even if an identical run exists.")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(), help="Where run directories go.")
@click.option("--check", is_flag=True, help="Only load and validate the pipeline; print the resolved config.")
@click.option("--cells", default=None, metavar="A,B", help="A sweep: run only these cells (comma-separated names).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary and report as JSON.")
def run_cmd(pipeline, overrides, how, runs_dir, check, cells, as_json):
    """Run PIPELINE (a pipelines/*.yaml file): each step that is not already up to date.

    Outputs go to RUNS_DIR/<name>-<timestamp>/. Re-running the same pipeline with the same
    settings continues its latest run (finished steps and eval items are reused); changed
    settings start a new run unless --resume is given.

    A file with a `sweep:` block runs each of its cells (docs/experiments.md, "Sweeps") in RUNS_DIR/<name>/,
    sharing the steps cells have in common; running it again continues it.
    """
    from ..eval.report import arms_table, breakdown_table
    from ..experiment import load_experiment, run_experiment
    from ..experiment.sweep import is_sweep

    if is_sweep(pipeline):
        return run_sweep_cmd(pipeline, overrides, how, runs_dir, check, cells, as_json)
    if cells:
        raise UsageError(f"--cells is for a sweep; {pipeline} has no sweep: block")
    cfg = load_experiment(pipeline, overrides)
    if check:
        import yaml

        if as_json:
            echo_json(cfg.to_dict())
        else:
            click.echo(yaml.safe_dump(cfg.to_dict(), allow_unicode=True, sort_keys=False), nl=False)
        return
    result = run_experiment(cfg, runs_dir, how=how or "auto", progress=TerminalProgress(),
                          log=lambda m: click.echo(m, err=True))
    if as_json:
        echo_json(result)
        return
    report = result["report"]
    ret = report.get("retrieval") or {}
    if ret:
        click.echo("Retrieval: " + " ".join(f"{k}={ret[k]}" for k in
                                            ("recall@1", "recall@5", "recall@10", "mrr@10", "answer_in_context")
                                            if k in ret))
    if report["arms"]:
        click.echo("\n".join(arms_table(report)))
        click.echo("")
        click.echo("\n".join(breakdown_table(report, "by_category")))
    for arm, why in report.get("skipped_arms", {}).items():
        click.echo(f"Skipped {arm}: {why}", err=True)
    for note in report.get("notes", []):
        click.echo(f"Note: {note}", err=True)
    click.echo(f"Run directory: {result['run_dir']} (report.md, eval/report.json, eval/items.jsonl)")
