"""`ragkit serve`: the OpenAI-compatible API and the page, over indexes and models loaded once."""

from __future__ import annotations

import click

from ..errors import UsageError
from .answer_options import decoding_options, model_options
from .group import main
from .options import RETRIEVAL, setting


@main.command()
@click.option("--index", "indexes", multiple=True, required=True, metavar="[NAME=]DIR",
              help="Index to serve (repeatable). Model id 'ragkit/NAME'; the first is also 'ragkit'.")
@model_options
@click.option("--backend-api-key", envvar="OPENAI_API_KEY", default=None, show_envvar=True,
              help="Key for --base-url (not this server's key).")
@setting("-k", "k", of=RETRIEVAL, type=int, help="Chunks retrieved when a request sets no k.")
@click.option("--temperature", type=float, default=0.0, show_default=True, help="Default when a request sets none.")
@click.option("--max-tokens", type=int, default=256, show_default=True, help="Default when a request sets none.")
@decoding_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--api-key", envvar="RAGKIT_API_KEY", default=None, show_envvar=True,
              help="Require 'Authorization: Bearer KEY' on every /v1/* route.")
@click.option("--max-body-bytes", default=1_048_576, show_default=True, type=click.IntRange(1, None),
              help="Larger request bodies get 413 before they are parsed.")
@click.option("--queue", default=32, show_default=True, type=click.IntRange(0, None),
              help="Requests that may wait per model behind the running one; more get 503 + Retry-After.")
@click.option("--max-question-chars", default=2000, show_default=True, type=click.IntRange(1, None),
              help="Longer questions get an OpenAI-style 400.")
@click.option("--max-messages", default=64, show_default=True, type=click.IntRange(1, None),
              help="Requests with more chat messages get a 400.")
@click.option("--max-k", default=20, show_default=True, type=click.IntRange(1, None),
              help="Largest k a request may ask for (extra_body.k); more gets a 400.")
@click.option("--cors-origin", default=None, help="Allow this one browser origin (no CORS by default).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True, help="uvicorn's log level.")
def serve(indexes, model, backend, adapter, base_url, backend_api_key, prompt_style, examples, n_ctx, k, passages,
          context_tokens, reason, mode, min_score, temperature, top_p, top_k, repetition_penalty, max_tokens, no_repeat_ngram, seed, stop,
          host, port, api_key,
          max_body_bytes, queue, max_question_chars, max_messages, max_k, cors_origin, log_level):
    """Serve indexes over an OpenAI-compatible API (/v1/chat/completions, /v1/retrieve) and a web page (/).

    Indexes and models load once, at start-up. One generation runs at a time per model; others wait
    in a bounded queue. See docs/serving.md for curl and openai-client examples.
    """
    from ..extras import require
    from ..generate import Decoding

    require("serve", "ragkit serve")
    from ..serve.openai_api import Limits
    from ..serve.startup import exposure_warning, load_generators, open_indexes, warm_up

    if k < 1 or k > max_k:
        raise UsageError(f"-k must lie between 1 and --max-k ({max_k})")
    try:
        decoding = Decoding(temperature=temperature, top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty,
                            max_tokens=max_tokens, no_repeat_ngram=no_repeat_ngram, seed=seed, stop=list(stop))
    except ValueError as e:
        raise UsageError(f"bad decoding option: {e}") from None
    api_key = api_key or None
    warning = exposure_warning(host, api_key)
    if warning:
        click.echo(warning, err=True)
    served_indexes = open_indexes(list(indexes))  # before the models: a missing index fails fast
    generators = load_generators(model, backend, adapter=adapter, base_url=base_url, n_ctx=n_ctx,
                                 prompt_style=prompt_style, api_key=backend_api_key)
    warm_up(served_indexes)

    import uvicorn

    from ..serve.app import Served, create_app

    served = Served(served_indexes, generators, k=k, mode=mode, decoding=decoding, min_score=min_score,
                    examples=examples, passages=passages, context_tokens=context_tokens, reason=reason,
                    limits=Limits(max_question_chars, max_messages, max_k, max_tokens=max(2048, max_tokens)),
                    queue=queue, api_key=api_key, max_body_bytes=max_body_bytes, cors_origin=cors_origin)
    app = create_app(served)
    names = ", ".join(f"ragkit/{n}" for n in served_indexes)
    models = ", ".join(sorted({g.model for g in generators.values()}))
    click.echo(f"Serving {names} with {models} on http://{host}:{port}/ (auth: {'on' if api_key else 'off'})", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
