"""`ragkit build-sft-data`: QA pairs for LoRA SFT from an index (library: ragkit.sftdata.qa)."""

from __future__ import annotations

import click

from ..errors import UsageError
from .group import echo_json, main
from .options import ANSWER, SFT_DATA, setting
from .progress import TerminalProgress


@main.command("build-sft-data")
@click.option("--index", "index_dir", required=True, type=click.Path(), help="Index built by `ragkit ingest`.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output JSONL; OUT.provenance.jsonl and dataset_info.json are written beside it.")
@click.option("--format", "fmt", type=click.Choice(["alpaca", "sharegpt", "messages"]), default="alpaca",
              show_default=True, help="Output format: alpaca (instruction/input/output), sharegpt or messages.")
@setting("--per-chunk", of=SFT_DATA, type=int, help="Answer spans (QA pairs) to try per chunk.")
@setting("--paraphrases", of=SFT_DATA, type=int, help="Rephrasings to add for each kept question.")
@setting("--method", of=SFT_DATA, type=click.Choice(["template", "hybrid", "model"]),
         help="Who writes questions. template: rules from the text's structure (no model; with the "
                   "bundled 135M/270M models this measured far better). hybrid: rules, plus the model for "
                   "spans the rules cannot phrase and for --model-paraphrases. model: the model writes every "
                   "question (for a strong --model or --base-url).")
@setting("--model-paraphrases", of=SFT_DATA, type=int, help="hybrid/model: how many of the --paraphrases to ask the model for (rules write the rest).")
@setting("--tasks", of=SFT_DATA, help="Instruction phrasings to emit: direct questions, 'explain' requests, 'list' requests.")
@click.option("--mix", type=click.Path(exists=True, dir_okay=False), default=None,
              help="General instruction data (alpaca/sharegpt/messages JSONL) to mix in against forgetting.")
@click.option("--mix-ratio", type=float, default=None,
              help="Share of the output rows taken from --mix. [default: 0.1 with --mix]")
@click.option("--exclude-bench", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Bench JSONL: drop generated questions that nearly duplicate a bench question.")
@click.option("-m", "--model", default=None,
              help="Generator model (bundled name, configured name or path). [default: the bundled model "
                   "for each chunk's language]")
@click.option("--backend", type=click.Choice(["llamacpp", "hf", "openai"]), default=None,
              help="Backend to run the model with. [default: llamacpp for a .gguf file, hf for a directory, openai with --base-url]")
@click.option("--base-url", default=None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.")
@click.option("--n-ctx", type=int, default=None, help="Context window in tokens.")
@click.option("--limit-chunks", type=int, default=None, help="Only the first N chunks (a quick look).")
@setting("--seed", of=SFT_DATA, type=int, help="Seed for shuffling and mixing.")
@setting("--recipe", of=SFT_DATA, type=click.Choice(["qa", "raft"]),
         help="qa: closed-book QA pairs. raft: each pair read from its oracle chunk among distractors, with "
              "the prompt `ask` sends and a quoted-evidence target (docs/raft.md).")
@setting("--distractors", of=SFT_DATA, type=click.IntRange(0, 10), help="raft: passages besides the oracle, from other sources.")
@setting("--oracle-share", of=SFT_DATA, type=float, help="raft: share of examples whose passages hold the oracle.")
@setting("--negatives", of=SFT_DATA, type=click.Choice(["hard", "random"]),
         help="raft: distractors are the index's top hits for the question (hard) or random chunks.")
@setting("--without-oracle", of=SFT_DATA, type=click.Choice(["answer", "refuse"]),
         help="raft: the target when the oracle is left out: the answer alone, or the refusal.")
@setting("--quote-chars", of=SFT_DATA, type=int, help="raft: longest evidence quote in a target, in characters.")
@setting("--context-tokens", of=ANSWER, type=click.IntRange(0, None),
         help="raft: prompt tokens of evidence, as for ask and eval (give eval's value); 0 shows whole chunks.")
@click.option("--fresh", is_flag=True, help="Start over instead of continuing an interrupted run.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def build_sft_data_cmd(index_dir, out, fmt, per_chunk, paraphrases, method, model_paraphrases, tasks, mix,
                       mix_ratio, exclude_bench, model, backend, base_url, n_ctx, limit_chunks, seed, recipe,
                       distractors, oracle_share, negatives, without_oracle, quote_chars, context_tokens, fresh,
                       as_json):
    """Generate question-answer pairs from every chunk of an index for LoRA fine-tuning.

    Answer first: facts are picked from each chunk (numbers with units, dates, table cells,
    defined values, list items, FAQ entries), then a question is written for each, anchored to
    its document, filtered and rephrased. Re-running with the same settings continues an
    interrupted run.
    """
    from ..pipeline import AnswerSettings
    from ..sftdata.qa import SFTDataConfig, build_sft_data

    config = SFTDataConfig(  # a bad value raises SettingsError: one sentence, exit code 2
        per_chunk=per_chunk, paraphrases=paraphrases, method=method, tasks=tasks, model=model, backend=backend,
        base_url=base_url, n_ctx=n_ctx, model_paraphrases=model_paraphrases, limit_chunks=limit_chunks,
        seed=seed, recipe=recipe, distractors=distractors, oracle_share=oracle_share, negatives=negatives,
        without_oracle=without_oracle, quote_chars=quote_chars,
    )
    answer_settings = AnswerSettings(context_tokens=context_tokens)
    if mix is None and mix_ratio is not None:
        raise UsageError("--mix-ratio needs --mix FILE")
    mix_ratio = 0.1 if mix_ratio is None else mix_ratio
    summary = build_sft_data(index_dir, out, config, fmt=fmt, mix=mix, mix_ratio=mix_ratio,
                             exclude_bench=exclude_bench, progress=TerminalProgress(), fresh=fresh,
                             answer_settings=answer_settings)
    if as_json:
        echo_json(summary.to_dict())
        return
    s = summary
    resumed = f" ({s.chunks_resumed} from an earlier run)" if s.chunks_resumed else ""
    click.echo(f"{s.out}: {s.kept} QA pairs kept from {s.chunks_seen}/{s.chunks_total} chunks{resumed} "
               f"in {s.seconds:.1f}s")
    click.echo(f"  spans {s.spans}, questions written {s.generated}, model calls {s.model_calls}; "
               f"kept by writer: {_fmt(s.kept_by_writer)}; by language: {_fmt(s.kept_by_lang)}")
    click.echo(f"  rephrasings: {s.paraphrases_kept} kept of {s.paraphrases_generated} tried; dropped: "
               f"{_fmt({k: v for k, v in s.paraphrases_dropped.items() if v}) or 'none'}")
    click.echo(f"  dropped: {_fmt({k: v for k, v in s.dropped.items() if v}) or 'none'}")
    click.echo(f"  rows: {_fmt(s.rows)}")
    if s.raft:
        click.echo(f"  raft: {s.raft['with_oracle']} of {s.raft['examples']} examples hold the oracle; "
                   f"distractors: {_fmt(s.raft['distractors'])}")
    click.echo(f"  files: {s.files.get('data')}, {s.files.get('provenance')}, {s.files.get('dataset_info')}")
    for note in s.notes:
        click.echo(f"  note: {note}", err=True)


def _fmt(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())
