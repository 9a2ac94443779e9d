"""`ragkit eval`: retrieval metrics on a bench (answer arms are added by the eval module)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import echo_json, main
from .progress import TqdmProgress


@main.command("eval")
@click.option("--bench", "bench_file", required=True, type=click.Path())
@click.option("--index", "index_dir", required=True, type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path())
@click.option("--retrieval-only", is_flag=True, help="Measure retrieval only (no generation).")
@click.option("--mode", type=click.Choice(["dense", "bm25", "hybrid"]), default="hybrid", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(bench_file, index_dir, out_dir, retrieval_only, mode, as_json):
    """Evaluate retrieval (and, with arms, answers) on a bench set; writes OUT/report.json."""
    from ..eval.bench import load_bench
    from ..eval.retrieval import evaluate_retrieval
    from ..index.store import Index

    items = load_bench(bench_file)
    index = Index.open(index_dir)
    bar = TqdmProgress()
    bar.stage("retrieval", len(items))
    agg, rows = evaluate_retrieval(items, lambda q: index.search(q, k=10, mode=mode), on_item=bar.advance)
    bar.done()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {"retrieval": agg, "config": {"bench": str(bench_file), "index": str(index_dir), "mode": mode}}
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    with (out / "retrieval_items.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    if as_json:
        echo_json(report)
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in agg.items()))
        click.echo(f"Report written to {out / 'report.json'}")
