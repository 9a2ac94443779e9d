"""`ragkit eval` (retrieval metrics and answer arms on a bench) and `ragkit report` (show or compare runs)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .group import echo_json, main
from .options import EVAL, help_defaults, model_defaults, setting
from .progress import TerminalProgress
from .sweep_cmds import report_sweep_cmd, sweep_target


@main.command("eval")
@click.option("--bench", "bench_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Bench JSONL file.")
@click.option("--index", "index_dir", type=click.Path(), help="Index directory (needed by rag arms and retrieval metrics).")
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Output directory (re-use it to resume).")
@setting("--arms", of=EVAL, help="Comma-separated arms: closed_book, rag, sft, sft_rag, oracle (rag given "
         "the gold chunks), raft_rag.")
@click.option("--retrieval-only", is_flag=True, help="Measure retrieval only (no generation).")
@help_defaults("--model", "models", multiple=True, values=model_defaults,
               help="Base model for every language, or LANG=MODEL (repeatable). [default: {default_model}]")
@click.option("--adapter", "adapters", multiple=True,
              help="LoRA adapter for the sft arms, or LANG=PATH (repeatable). Without one the sft arms are skipped.")
@click.option("--raft-adapter", "raft_adapters", multiple=True,
              help="LoRA adapter trained on RAFT data (build-sft-data --recipe raft) for the raft_rag arm, or LANG=PATH.")
@click.option("--tuned-model", "tuned_models", multiple=True,
              help="A merged fine-tuned model for the sft arms, or LANG=MODEL (instead of --adapter).")
@click.option("--backend", type=click.Choice(["llamacpp", "hf", "openai"]), default=None,
              help="Every arm's backend. [default: llamacpp for a .gguf model, hf for a directory or a PEFT "
                   "adapter, openai with --base-url]")
@click.option("--base-url", default=None, help="OpenAI-compatible server URL (openai backend).")
@click.option("--n-ctx", type=int, default=None, help="Context length to load models with.")
@setting("-k", "k", of=EVAL, type=int, help="Chunks retrieved per question (rag arms).")
@setting("--context-tokens", of=EVAL, type=click.IntRange(0, None),
         help="Prompt tokens of evidence: the best sentences of the retrieved chunks; 0 shows whole chunks.")
@setting("--reason", of=EVAL, type=click.Choice(["auto", "on", "off"]),
         help="A facts-and-calculation step for questions that need arithmetic or dates; auto decides per question.")
@setting("--mode", of=EVAL, type=click.Choice(["dense", "bm25", "hybrid"]), help="Retrieval: dense vectors, BM25 keywords, or both fused.")
@click.option("--min-score", type=float, default=None, help="Refuse when the best chunk scores below this (rag arms). "
              "[default: the calibrated threshold in hybrid mode (as ragkit ask), else none]")
@setting("--max-tokens", of=EVAL, type=int, help="Answer length limit, every arm (the same default as ragkit run).")
@setting("--temperature", of=EVAL, type=float, help="0 = greedy (reproducible).")
@click.option("--limit", type=int, default=None, help="Only the first N items (taken across categories).")
@click.option("--judge", default=None, help="LLM judge as BACKEND/MODEL, e.g. llamacpp/gemma3-270m.")
@setting("--seed", of=EVAL, type=int, help="Seed for sampling and the bootstrap.")
@setting("--general-bench", of=EVAL, type=click.Path(exists=True, dir_okay=False),
         help="A second bench of general items every arm also answers: retention and forgetting in the report.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json to stdout.")
def eval_cmd(bench_file, index_dir, out_dir, arms, retrieval_only, models, adapters, raft_adapters, tuned_models, backend,
             base_url, n_ctx, k, context_tokens, reason, mode, min_score, max_tokens, temperature, limit, judge, seed, general_bench,
             as_json):
    """Evaluate retrieval and answers on a bench; writes OUT/report.{json,md}, items.jsonl and charts.

    Every arm shares the bench, prompts, decoding and k, so differences come from the knowledge
    source: closed_book (base model), rag (base + retrieval), sft (tuned), sft_rag (tuned + retrieval).
    Re-running with the same settings and --out reuses finished items.
    """
    from ..eval.config import EvalConfig, parse_lang_map
    from ..eval.runner import run_eval

    if retrieval_only and not index_dir:
        raise UsageError("--retrieval-only needs --index DIR")
    arm_list = [a.strip() for a in arms.split(",") if a.strip()]
    if retrieval_only:
        arm_list = []
    config = EvalConfig(  # a bad value raises SettingsError: one sentence, exit code 2
        bench=bench_file, out=out_dir, index=index_dir, arms=arm_list,
        models=parse_lang_map(models, "model"), adapters=parse_lang_map(adapters, "adapter"),
        raft_adapters=parse_lang_map(raft_adapters, "raft-adapter"),
        tuned_models=parse_lang_map(tuned_models, "tuned-model"), backend=backend, base_url=base_url,
        n_ctx=n_ctx, k=k, context_tokens=context_tokens, reason=reason, mode=mode, min_score=min_score, max_tokens=max_tokens, temperature=temperature,
        limit=limit, judge=judge, seed=seed, general_bench=general_bench,
    )
    report = run_eval(config, progress=TerminalProgress(), retrieval_only=retrieval_only,
                      log=lambda m: click.echo(m, err=True))
    if as_json:
        echo_json(report)
        return
    ret = report["retrieval"]
    if ret:
        keys = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer_in_context", "n")
        click.echo(" ".join(f"{k}={ret[k]}" for k in keys if k in ret))
    if report["arms"]:
        from ..eval.report import arms_table, breakdown_table

        click.echo("\n".join(arms_table(report)))
        click.echo("\n".join(breakdown_table(report, "by_category")))
    if report.get("retention"):
        from ..eval.report import retention_tables

        click.echo("\n".join(retention_tables(report)))
    for arm, why in report["skipped_arms"].items():
        click.echo(f"Skipped {arm}: {why}", err=True)
    for note in report["notes"]:
        click.echo(f"Note: {note}", err=True)
    click.echo(f"Report written to {Path(out_dir) / 'report.json'} (and report.md)")


@main.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(),
              help="Where `ragkit run` put a sweep given by its file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def report_cmd(runs, runs_dir, as_json):
    """Show one eval run's tables, or compare two runs side by side (B − A).

    RUNS are eval output directories (or report.json files); a `ragkit run` directory works too.
    A sweep (its runs/<name>/ directory or its pipeline file) gets its cells side by side, written
    to sweep.md, sweep.json and sweep.png in the sweep directory.
    """
    from ..eval.report import compare, load_report, render_comparison, render_markdown

    if len(runs) == 1 and (root := sweep_target(runs[0], runs_dir)) is not None:
        return report_sweep_cmd(root, as_json)
    if len(runs) > 2:
        raise UsageError("give one run to show or two runs to compare")
    reports = [load_report(_report_path(r)) for r in runs]
    if len(reports) == 1:
        if as_json:
            echo_json(reports[0])
        else:
            click.echo(render_markdown(reports[0]))
        return
    cmp = compare(*reports)
    if as_json:
        echo_json({"a": runs[0], "b": runs[1], **cmp})
    else:
        click.echo(render_comparison(cmp, runs[0], runs[1]))


def _report_path(run: str) -> Path:
    """An eval directory, a report.json, or a `ragkit run` directory (its report is under eval/)."""
    p = Path(run)
    if p.is_dir() and not (p / "report.json").exists() and (p / "eval" / "report.json").exists():
        return p / "eval"
    return p
