"""Retrieve + prompt + generate = Answer: the one place a RAG answer is assembled.

    from ragkit import Index, Pipeline
    from ragkit.generate import load_generator
    pipe = Pipeline(Index.open(".ragkit/demo-index"), load_generator("smollm2-135m"), k=5)
    print(pipe.answer("How long is the M3 warranty?").answer)

`ragkit ask` and every arm of `ragkit eval` call `Pipeline.answer`, so what the CLI shows is what
the bench measures. Negative rejection happens twice: before generation, when the best retrieved
chunk scores below `min_score` (hybrid scores are absolute, in [0, 1]), and after it, when the
model says the passages lack the answer. Both give the same canonical "I don't know" answer with
`refused=True`. Passages given by the caller (`answer(..., passages=hits)`: a bench item's own
context, the eval's oracle arm) replace retrieval; no score threshold applies to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import ContextOverflow, UsageError
from .generate.base import Decoding, Generator, ms_since
from .generate.citations import (
    drop_unknown_citations,
    infer_citations,
    is_refusal,
    parse_citations,
    refusal_text,
    to_citations,
)
from .generate.prompts import (
    DEFAULT_EXAMPLES,
    RAG_EXAMPLES,
    HeaderGuard,
    PromptPlan,
    answer_stop,
    build_prompt,
    cut_header_fragment,
    header_stops,
    with_conversation,
)
from .lang import detect_language
from .types import Answer, Hit

# Calibrated by evals/refusal_calibration.py on the sample corpus (default ingest: all-MiniLM-L6-v2,
# ONNX int8, hybrid search): the 177 bench questions against 20 off-domain ones per language. The
# threshold is the highest that refuses at most 2% of answerable questions. English: answerable
# questions score their best chunk 0.20-0.61, off-domain ones 0.02-0.27; 0.20 refuses 1 of 90 and
# lets 2 of 20 off-domain questions through. Chinese leans on BM25 (the embedder is English), so
# scores run lower: answerable 0.12-0.61, off-domain 0.05-0.24; 0.15 refuses 1 of 87 and lets 2 of
# 20 through. The model's own "I don't know" is the second line of defence. Hybrid mode only: dense
# and BM25 scores live on other scales, so there the threshold is off unless one is given.
DEFAULT_MIN_SCORE = {"en": 0.20, "zh": 0.15}


class Pipeline:
    """A retriever (an `Index`, or anything with `.search(query, k, mode)`) and a generator.

    `k` chunks are retrieved (and reported as sources); the top `passages` of them go into the
    prompt: by default the generator's `max_passages` hint (tiny models answer far better from
    one passage than from five, see ragkit/generate/__init__.py), else all k. `examples` is the
    number of worked examples in few-shot prompts; by default 3 with passages (measured best) and
    2 closed-book (what the SFT trainer's prompts hold, so that they match).
    """

    def __init__(
        self,
        index,
        generator: Generator,
        *,
        k: int = 5,
        mode: str = "hybrid",
        decoding: Decoding | None = None,
        min_score: float | None = None,
        examples: int | None = None,
        passages: int | None = None,
    ):
        if k < 1:
            raise UsageError("-k must be at least 1")
        if passages is not None and passages < 1:
            raise UsageError("passages (--passages) must be at least 1")
        if min_score is not None and not 0.0 <= min_score <= 1.0:
            raise UsageError("min_score (--min-score) must lie in [0, 1]")
        self.index = index
        self.generator = generator
        self.k = k
        self.mode = mode
        self.decoding = decoding or Decoding()
        self.min_score = min_score  # None: the calibrated default for the question's language
        self.examples = examples
        self.passages = passages or getattr(generator, "max_passages", None) or k
        if generator.context_length - self.decoding.max_tokens < 16:
            raise ContextOverflow(
                f"max_tokens {self.decoding.max_tokens} (--max-tokens) leaves no room for a prompt in the model's "
                f"{generator.context_length}-token context; lower max_tokens or raise n_ctx (--n-ctx)"
            )

    def threshold(self, lang: str) -> float:
        """The retrieval score below which the pipeline answers "I don't know" unasked."""
        if self.min_score is not None:
            return self.min_score
        return DEFAULT_MIN_SCORE.get(lang, min(DEFAULT_MIN_SCORE.values())) if self.mode == "hybrid" else 0.0

    def retrieve(self, question: str) -> list[Hit]:
        return list(self.index.search(question, k=self.k, mode=self.mode))

    def plan(self, question: str, hits: list[Hit] | None, lang: str, history: list[dict] | None = None,
             instructions: str | None = None) -> PromptPlan:
        """The prompt for `question`, trimmed to the context left after room for the answer.
        `history`/`instructions` (a conversation, chat style only) go in via with_conversation."""
        gen = self.generator
        render = gen.render_chat
        if history or instructions:
            def render(messages, _render=gen.render_chat):
                return _render(with_conversation(messages, history, instructions, lang))
        return build_prompt(
            question, hits, gen.prompt_style, lang,
            render if gen.prompt_style == "chat" else None,
            self.examples if self.examples is not None else (DEFAULT_EXAMPLES if hits is None else RAG_EXAMPLES),
            count_tokens=gen.count_tokens, max_tokens=gen.context_length - self.decoding.max_tokens,
        )

    def answer(
        self,
        question: str,
        *,
        closed_book: bool = False,
        on_token: Callable[[str], None] | None = None,
        passages: list[Hit] | None = None,
        history: list[dict] | None = None,
        instructions: str | None = None,
    ) -> Answer:
        """Answer one question. `on_token` receives the answer text as it is generated.

        `history` (earlier {role, content} turns) and `instructions` (a system message) are a
        conversation's (ragkit/conversation.py); `question` is then its standalone form.

        `passages` (non-empty) are the passages to answer from instead of retrieving: all of them go
        into the prompt (trimmed only to fit the context), whatever `closed_book` says."""
        if not question or not question.strip():
            raise UsageError('the question is empty; ask something, e.g. ragkit ask "How long is the warranty?"')
        question = question.strip()
        lang = detect_language(question)
        t0 = time.perf_counter()
        hits: list[Hit] | None = None
        retrieval_ms = 0.0
        shown: list[Hit] | None = None
        if passages:
            hits = shown = list(passages)
        elif not closed_book and self.index is not None:
            hits = self.retrieve(question)
            retrieval_ms = ms_since(t0)
            if not hits or max(h.score for h in hits) < self.threshold(lang):
                return self._refuse(question, lang, hits, "", t0, retrieval_ms, on_token)
            shown = hits[: self.passages]

        plan = self.plan(question, shown, lang, history, instructions)
        stops = answer_stop(self.generator.prompt_style) + (header_stops() if plan.hits else [])
        decoding = self.decoding.with_stops(stops)
        guard = HeaderGuard(on_token) if on_token is not None and plan.hits else None
        t_gen = time.perf_counter()
        completion = self.generator.generate(plan.text, decoding, guard.feed if guard else _lstrip_stream(on_token))
        gen_ms = ms_since(t_gen)
        raw = cut_header_fragment(completion.text).strip() if plan.hits else completion.text.strip()
        if guard is not None:
            guard.finish(raw)

        if is_refusal(raw):
            ans = self._refuse(question, lang, hits, plan.text, t0, retrieval_ms, None)
            ans.prompt_tokens, ans.completion_tokens = completion.prompt_tokens, completion.completion_tokens
            ans.timings.update(_gen_timings(completion, t_gen - t0, gen_ms))
            return ans

        citations = []
        text = drop_unknown_citations(raw, len(plan.hits)) if plan.hits else raw
        if plan.hits:
            numbers = parse_citations(raw, len(plan.hits))
            if not numbers:
                # The model answered without markers: cite the passage that holds the answer.
                numbers = infer_citations(raw, plan.hits)
                if numbers:
                    text = text + " " + "".join(f"[{n}]" for n in numbers)
            citations = to_citations(numbers, hits)
        return Answer(
            question=question,
            answer=text,
            citations=citations,
            hits=hits or [],
            prompt=plan.text,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            timings={"retrieval_ms": retrieval_ms, **_gen_timings(completion, t_gen - t0, gen_ms), "total_ms": ms_since(t0)},
            backend=self.generator.backend,
            model=self.generator.model,
        )

    def _refuse(self, question, lang, hits, prompt, t0, retrieval_ms, on_token) -> Answer:
        text = refusal_text(lang)
        if on_token is not None:
            on_token(text)
        return Answer(
            question=question,
            answer=text,
            citations=[],
            hits=hits or [],
            prompt=prompt,
            prompt_tokens=0,
            completion_tokens=0,
            timings={"retrieval_ms": retrieval_ms, "first_token_ms": None, "total_ms": ms_since(t0), "tokens_per_s": 0.0},
            backend=self.generator.backend,
            model=self.generator.model,
            refused=True,
        )


def _gen_timings(c, offset_s: float, gen_ms: float) -> dict:
    """first_token_ms counts from the question (retrieval and prompt building included);
    tokens_per_s is the decode rate after the first token, the figure users compare; None when
    fewer than 2 tokens came (one token has no decode time: n / gen_ms would be the prompt's rate)."""
    first = round(offset_s * 1000 + c.first_token_ms, 2) if c.first_token_ms is not None else None
    n = c.completion_tokens
    if n > 1 and c.first_token_ms is not None and gen_ms > c.first_token_ms:
        rate = round((n - 1) / ((gen_ms - c.first_token_ms) / 1000), 2)
    else:
        rate = None
    return {"first_token_ms": first, "tokens_per_s": rate}


def _lstrip_stream(on_token: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Drop the whitespace a completion starts with ("Answer: 17:00" generates " 17:00")."""
    if on_token is None:
        return None
    started = False

    def emit(piece: str) -> None:
        nonlocal started
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
        if piece:
            on_token(piece)

    return emit
