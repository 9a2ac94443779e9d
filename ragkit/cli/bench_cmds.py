"""`ragkit bench draft`, `ragkit bench review`, `ragkit bench check-leakage` (library: ragkit.benchset);
`bench validate` lives with the index commands."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import SettingsError
from .group import echo_json
from .index_cmds import bench
from .options import setting
from .progress import TerminalProgress

DRAFT = "ragkit.benchset.draft:DraftConfig"


@bench.command("draft")
@click.option("--index", "index_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Index built by `ragkit ingest` from your documents.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Bench JSONL to write; OUT.draft.json (the summary) is written beside it.")
@setting("-n", "--n", of=DRAFT, type=int, help="Items to draft.")
@setting("--mix", of=DRAFT, help="Shares per kind: knowledge/easy, knowledge/medium, knowledge/hard, logic/simple, "
                                  "logic/complex, common (CELL=WEIGHT,...; weights are normalised).")
@setting("--writer", of=DRAFT, type=click.Choice(["model", "rules"]),
         help="Who writes the questions: model (rules as the fallback) or rules only (no model, fast).")
@click.option("-m", "--model", default=None,
              help="Model that writes the questions (bundled name, configured name or path). "
                   "[default: the bundled model for each language]")
@click.option("--backend", type=click.Choice(["llamacpp", "hf", "openai"]), default=None, help="Backend for --model.")
@click.option("--base-url", default=None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.")
@click.option("--n-ctx", type=int, default=None, help="Context window in tokens.")
@setting("--closed-book-check/--no-closed-book-check", of=DRAFT, name="closed_book_check",
         help="Drop items the model answers without the documents (one more generation per item).")
@setting("--seed", of=DRAFT, type=int, help="Seed for the order candidates are tried in.")
@click.option("--fresh", is_flag=True, help="Start over instead of continuing an interrupted draft.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def bench_draft(index_dir, out, n, mix, writer, model, backend, base_url, n_ctx, closed_book_check, seed, fresh,
                as_json):
    """Draft a bench from your own corpus: knowledge (easy, medium, hard), logic (simple, complex)
    and common questions, in the corpus's languages, every item "status": "draft".

    Answer first: a fact, a conflict between documents or a computation is picked from the index,
    then the question is written for it and checked (the answer is in the cited chunks, the question
    does not give it away, no near-duplicates). Re-running continues an interrupted draft. Then read
    the items with `ragkit bench review OUT`.
    """
    from ..benchset.draft import DraftConfig, draft_bench

    try:
        config = DraftConfig(n=n, mix=mix, writer=writer, model=model, backend=backend, base_url=base_url,
                             n_ctx=n_ctx, closed_book_check=closed_book_check, seed=seed)
    except SettingsError as e:  # name the option, not the field: "--mix: ..."
        path, text = e.path, str(e)
        raise SettingsError(f"--{path.replace('_', '-')}{text[len(path):]}" if path and text.startswith(path) else text,
                            path) from None
    s = draft_bench(index_dir, out, config, progress=TerminalProgress(), fresh=fresh)
    if as_json:
        echo_json(s.to_dict())
        return
    resumed = f" ({s.resumed} candidates from an earlier run)" if s.resumed else ""
    click.echo(f"{s.out}: {s.items} of {s.asked} items drafted in {s.seconds:.1f}s{resumed}")
    click.echo(f"  by kind: {_fmt(s.by_cell)}; by language: {_fmt(s.by_lang)}; written by: {_fmt(s.by_writer)}")
    click.echo(f"  dropped: {_fmt({k: v for k, v in s.dropped.items() if v}) or 'none'}; model calls {s.model_calls}"
               + (f", closed-book checks {s.closed_book_calls}" if s.closed_book_calls else ""))
    for note in s.notes:
        click.echo(f"  note: {note}", err=True)
    click.echo(f"Next: ragkit bench review {s.out}")


@bench.command("review")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--index", "index_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Index the bench was drafted from, for the source passages. [default: the one in FILE.draft.json]")
@click.option("--tui", is_flag=True, help="Review in the terminal (prompts) instead of a browser page.")
@click.option("--all", "all_items", is_flag=True, help="--tui: go through every item, not only the drafts.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="Port on 127.0.0.1.")
@click.option("--idle-minutes", default=60.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Stop the page after this long without a request.")
def bench_review(file, index_dir, tui, all_items, port, idle_minutes):
    """Accept, edit or reject each item of a bench, with its source passage highlighted.

    A page on http://127.0.0.1:PORT/ (keys: a accept, e edit, r reject, d back to draft, j/k
    next/previous, n next draft), or prompts with --tui. Each decision is written back to FILE at
    once (atomically). `ragkit eval` then answers the accepted items only.
    """
    from ..benchset.records import read_records
    from ..benchset.review import load_passages, review_in_terminal, serve_review

    records = read_records(file)
    index_dir = index_dir or _drafted_from(file)
    index = None
    if index_dir:
        from ..index import Index

        index = Index.open(index_dir)
    else:
        click.echo("No index given or recorded: items show without their passages (use --index DIR).", err=True)
    passages = load_passages(records, index)
    if tui:
        counts = review_in_terminal(file, passages, ask=click.prompt, echo=click.echo, all_items=all_items)
        click.echo(f"{file}: {_fmt(counts)}")
        return
    serve_review(file, passages, port=port, idle_minutes=idle_minutes,
                 on_start=lambda url: click.echo(f"Reviewing {file} ({len(records)} items) on {url}  (Ctrl+C stops)",
                                                 err=True))


def _drafted_from(file: str) -> str | None:
    summary = Path(file).with_name(Path(file).name + ".draft.json")
    if summary.is_file():
        index = json.loads(summary.read_text(encoding="utf-8")).get("index")
        return index if index and Path(index).is_dir() else None
    return None


@bench.command("check-leakage")
@click.argument("bench_file", type=click.Path(exists=True, dir_okay=False))
@click.argument("sft_data", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print every item's nearest training question as JSON.")
def bench_check_leakage(bench_file, sft_data, as_json):
    """Report the nearest training question for each bench item, and the items whose question leaked
    into the SFT data (exit code 1 when any did). Facts may be shared; questions may not."""
    from ..benchset.leakage import check_leakage

    report = check_leakage(bench_file, sft_data)
    if as_json:
        echo_json(report)
    else:
        for r in report["items"]:
            if r["leak"]:
                click.echo(f"LEAK {r['id']}: {r['question']}\n     ~ {r['nearest']} (Jaccard {r['jaccard']})")
        closest = sorted(report["items"], key=lambda r: -r["jaccard"])[:3]
        click.echo(f"{report['leaks']} of {len(report['items'])} bench items leak into {report['training_questions']} "
                   f"training questions; closest: " + "; ".join(f"{r['id']} {r['jaccard']}" for r in closest))
    if report["leaks"]:
        raise SystemExit(1)


def _fmt(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())
