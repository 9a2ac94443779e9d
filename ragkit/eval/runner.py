"""`ragkit eval`: run the bench through each arm, score every answer, write items.jsonl and the report.

The arms and what each reads are one table (ragkit.eval.arms); answering them is answering.py.
An item with its own `context` is answered from it by every arm, without retrieval. With a general
bench (`general_bench`), every arm also answers it: retention and forgetting (ragkit.eval.retention).

Each item's question decides its language, and the language picks the model (`models`, default
models.default_llm: Qwen2.5-Coder-1.5B where installed, else the language's tiny model). The
tuned model of a language is `tuned_models[lang]` (a merged model) or the base model with `adapters[lang]`; "*"
stands for every language. A sft arm runs on the items whose language has a tuned model; with
none it is skipped with a note.

Resuming: every finished item is appended to OUT/items.jsonl with a key (answering.py), and a
re-run reuses the rows whose key matches.

    from ragkit.eval.runner import EvalConfig, run_eval
    report = run_eval(EvalConfig(bench="data/bench/sample.jsonl", index=".ragkit/demo-index", out="out"))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .. import generate
from ..errors import UsageError
from ..index import Index
from ..lang import detect_language
from ..progress import NullProgress, Progress
from ..types import BenchItem
from . import metrics
from .answering import answer_arms, index_version, judge_rows, oracle_chooser, write_items
from .arms import ARMS, plan_arms, tuned_arms
from .bench import load_bench, reviewed_items
from .charts import write_charts
from .config import EvalConfig, config_dict, select_items
from .report import build_report, retrieval_breakdown, write_report
from .retention import retention_report, run_retention
from .retrieval import evaluate_retrieval


def run_retrieval(items: list[BenchItem], index, config: EvalConfig, progress) -> tuple[dict, list[dict]]:
    progress.stage("retrieval", len(items))
    agg, rows = evaluate_retrieval(
        items, lambda q: index.search(q, k=10, mode=config.mode),
        answer_in=lambda answers, ctx: bool(metrics.contains_answer(ctx, answers)),
        context_k=config.k, on_item=progress.advance,
    )
    progress.done()
    for item, r in zip(items, rows):
        gold = set(item.sources)
        r["first_relevant"] = next((i for i, s in enumerate(r["retrieved"], 1) if s in gold), None)
    agg.update(retrieval_breakdown(rows))
    return agg, rows


def run_eval(
    config: EvalConfig,
    *,
    load_generator: Callable | None = None,
    index=None,
    progress: Progress | None = None,
    retrieval_only: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the eval described by `config`; write OUT/{items.jsonl, report.json, report.md, *.png}.

    `load_generator` (default ragkit.generate.load_generator) and `index` may be injected (tests).
    """

    progress = progress or NullProgress()
    log = log or (lambda msg: None)
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; eval writes a folder of results there: choose a new or existing folder")
    out.mkdir(parents=True, exist_ok=True)
    all_items, review_note = reviewed_items(load_bench(config.bench))
    if review_note:
        log(review_note)
    items = select_items(all_items, config.limit)
    arms = [] if retrieval_only else list(config.arms)
    if index is None and config.index:
        index = Index.open(config.index)
    if load_generator is None:
        load_generator = generate.load_generator
    retrieval, ret_rows = ({}, [])
    searched = [it for it in items if not it.context]  # items with their own passages retrieve nothing
    if index is not None and searched:
        retrieval, ret_rows = run_retrieval(searched, index, config, progress)
        with (out / "retrieval_items.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in ret_rows)

    langs = {it.id: detect_language(it.question) for it in items}
    plan, skipped, notes = plan_arms(config, arms, langs)
    if review_note:
        notes.insert(0, review_note)
    items_path = out / "items.jsonl"
    gold = any(ARMS[a].passages == "gold" for a in plan)
    oracle = oracle_chooser(index, items, config.mode) if gold and index is not None else None
    rows_by_arm, reused = answer_arms(config, plan, items, langs, index, load_generator, progress, items_path, oracle)
    if reused:
        log(f"Reused {reused} finished item(s) from {items_path}")
    if n_blind := sum(1 for r in rows_by_arm.get("oracle", []) if not r.get("sources")):
        notes.append(f"oracle: {n_blind} item(s) have no chunk of their gold sources in the index and were "
                     "answered closed-book")

    if config.judge and rows_by_arm:
        judge_rows(config, rows_by_arm, items, load_generator, progress, items_path)
    errors = {a: sum(1 for r in rs if r.get("error")) for a, rs in rows_by_arm.items()}
    for a, n in errors.items():
        if n:
            notes.append(f"{a}: {n} item(s) failed (prompt too long) and count as wrong; see items.jsonl")

    write_items(items_path, [r for rs in rows_by_arm.values() for r in rs])
    cfg = config_dict(config, len(items), len(all_items))
    cfg["index_version"] = index_version(index)
    cfg["tuned_arms"] = tuned_arms(plan)
    report = build_report(retrieval, rows_by_arm, cfg, skipped, notes, n_boot=config.n_boot, seed=config.seed)
    if config.general_bench and rows_by_arm:
        general_rows = run_retention(config, list(rows_by_arm), index, load_generator, progress, out, log,
                                     report["notes"])
        report.update(retention_report(general_rows, n_boot=config.n_boot, seed=config.seed))
    charts = write_charts(report, out)
    write_report(out, report, charts)
    return report


