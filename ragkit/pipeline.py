"""Retrieve + prompt + generate = Answer: the one place a RAG answer is assembled.

    from ragkit import Index, Pipeline
    from ragkit.generate import load_generator
    pipe = Pipeline(Index.open(".ragkit/demo-index"), load_generator("smollm2-135m"), k=5)
    print(pipe.answer("How long is the M3 warranty?").answer)

`ragkit ask` and every arm of `ragkit eval` call `Pipeline.answer`, so what the CLI shows is what
the bench measures. Negative rejection happens twice: before generation, when the best retrieved
chunk scores below `min_score` (hybrid scores are absolute, in [0, 1]) and holds no code the
question names (E03, V7: `retrieved_code`), and after it, when the
model says the passages lack the answer. Both give the same canonical "I don't know" answer with
`refused=True`. Passages given by the caller (`answer(..., passages=hits)`: a bench item's own
context, the eval's oracle arm) replace retrieval; no score threshold applies to them.

Between retrieval and the prompt, evidence selection (ragkit/evidence.py) keeps the sentences of
the k retrieved chunks that bear on the question, within `context_tokens` prompt tokens: the prompt
is what an answer costs on a CPU, and small models read a fact better from a few sentences. The
settings of this path (`AnswerSettings`) are shared by `ask`, `eval` and `serve`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from pydantic import Field

from .errors import ContextOverflow, UsageError
from .evidence import EXPLAIN_CONTEXT_FACTOR, asks_explanation, select_evidence
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
    REASON_LABELS,
    HeaderGuard,
    PromptPlan,
    answer_stop,
    build_prompt,
    cut_header_fragment,
    fixed_prefix,
    header_stops,
    with_conversation,
)
from .lang import detect_language
from .reason.kinds import asked_kind, fits_kind
from .reason.parse import RESULT_SLOT, Solution, parse_reasoning, solve
from .reason.route import needs_reasoning, sub_queries
from .settings import RetrievalSettings
from .types import Answer, Completion, Hit

# Calibrated by evals/refusal_calibration.py on the sample corpus (default ingest: all-MiniLM-L6-v2,
# ONNX int8, hybrid search): the 177 bench questions against 20 off-domain ones per language. The
# threshold is the highest that refuses at most 2% of answerable questions. English: answerable
# questions score their best chunk 0.20-0.61, off-domain ones 0.02-0.27; 0.20 refuses 1 of 90 and
# lets 2 of 20 off-domain questions through. Chinese leans on BM25 (the embedder is English), so
# scores run lower: answerable 0.12-0.61, off-domain 0.05-0.24; 0.15 refuses 1 of 87 and lets 2 of
# 20 through. The model's own "I don't know" is the second line of defence. Hybrid mode only: dense
# and BM25 scores live on other scales, so there the threshold is off unless one is given.
DEFAULT_MIN_SCORE = {"en": 0.20, "zh": 0.15}
# A question that names a code (E03, V7, M5) which a retrieved chunk holds word for word is about
# this corpus, whatever its score: the threshold is not applied to it (`retrieved_code`). On the
# sample bench this lets the 2 answerable questions the threshold refused through (E03 in Chinese,
# V7 in a long question) and none of the 40 off-domain ones, whose codes (M9, X1) the corpus lacks.
_CODE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{1,3}\d{1,4}[A-Za-z]?(?![A-Za-z0-9])")

# Prompt tokens of evidence shown by default (passage headers included), chosen by measurement
# against whole chunks (evals/answer_settings.py, evals/evidence_coverage.py; results in
# evals/results/answer-settings/): with the default model's fixed prompt it keeps a prompt near 300
# tokens.
DEFAULT_CONTEXT_TOKENS = 200
# Tokens the reasoning step may write (facts, one expression, the answer) before it is cut off.
REASON_MAX_TOKENS = 160
# Tokens of one line (the calculation, the answer) when the format is led line by line (_relabel).
RELABEL_LINE_TOKENS = 48
# When the model says the selected evidence lacks the answer, it is asked once more with this many
# of the retrieved chunks whole (the default before evidence selection): selection sometimes drops
# the sentence that answers, and a refusal from a few sentences is cheap to check. On the sample bench
# 5 of 177 questions were asked again and 1 was then answered right (evals/answer_settings.py;
# evals/results/answer-settings/sample.json); each such question reads ~900 prompt tokens more.
WHOLE_PASSAGES_ON_REFUSAL = 3
# A question routed to reasoning needs several facts (operands, or a fact about each thing it
# names), so its evidence budget is this many times context_tokens: the operands its notes name are
# shown far more often with more evidence (evals/evidence_coverage.py, `logic_operands_shown`, in
# evals/results/answer-settings/coverage-sample.json), and the other questions keep the small prompt.
REASON_CONTEXT_FACTOR = 1.5


class AnswerSettings(RetrievalSettings):
    """How a question is answered: the one home of these defaults for ask, eval and serve.

    `k` chunks are retrieved (candidate depth, RetrievalSettings); `context_tokens` of their best sentences go into
    the prompt (0: whole chunks, the top `passages` of them). `examples` is the number of worked
    examples in few-shot prompts. `reason` adds a facts-and-calculation step (`ragkit/reason/`)
    for questions that need one: `auto` decides per question.
    """

    min_score: float | None = Field(default=None, ge=0.0, le=1.0)
    passages: int | None = Field(default=None, ge=1)
    examples: int | None = Field(default=None, ge=0, le=3)
    context_tokens: int = Field(default=DEFAULT_CONTEXT_TOKENS, ge=0)
    reason: Literal["auto", "on", "off"] = "auto"


class Pipeline:
    """A retriever (an `Index`, or anything with `.search(query, k, mode)`) and a generator.

    Settings are `AnswerSettings` fields, given one by one (`k=3`) or as `settings=`; `None`
    keeps the default. With `context_tokens=0` the top `passages` chunks go into the prompt whole:
    by default the generator's `max_passages` hint (tiny models answer far better from one passage
    than from five, see ragkit/generate/__init__.py), else all k. Few-shot prompts hold 3 worked
    examples with passages (measured best) and 2 closed-book (what the SFT trainer's prompts hold).

    A Pipeline owns its generator: `close()` (or `with Pipeline(...) as pipe:`) frees the model.
    """

    def __init__(
        self,
        index,
        generator: Generator,
        *,
        settings: AnswerSettings | None = None,
        decoding: Decoding | None = None,
        k: int | None = None,
        mode: str | None = None,
        min_score: float | None = None,
        examples: int | None = None,
        passages: int | None = None,
        context_tokens: int | None = None,
        reason: str | None = None,
    ):
        given = dict(k=k, mode=mode, min_score=min_score, examples=examples, passages=passages,
                     context_tokens=context_tokens, reason=reason)
        base = settings.model_dump() if settings is not None else {}
        self.settings = AnswerSettings(**{**base, **{f: v for f, v in given.items() if v is not None}})
        st = self.settings
        self.index = index
        self.generator = generator
        self.k = st.k
        self.mode = st.mode
        self.decoding = decoding or Decoding()
        self.min_score = st.min_score  # None: the calibrated default for the question's language
        self.examples = st.examples
        self.context_tokens = st.context_tokens
        self.passages = st.passages or generator.max_passages or st.k
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

    def evidence(self, question: str, hits: list[Hit], lang: str | None = None, reason: bool = False) -> list[Hit]:
        """The passages shown for `question`: the best sentences of the top `passages` chunks within
        `context_tokens` (REASON_CONTEXT_FACTOR times that for the reasoning step, scored against
        each thing the question names; EXPLAIN_CONTEXT_FACTOR times for a question that asks for an
        explanation, ragkit.evidence.asks_explanation), or (context_tokens 0) those chunks whole."""
        if not self.context_tokens:
            return hits[: self.passages]
        parts = sub_queries(question, lang)
        factor = REASON_CONTEXT_FACTOR if reason else EXPLAIN_CONTEXT_FACTOR if asks_explanation(question, lang) else 1
        budget = round(self.context_tokens * factor)
        return select_evidence(question, hits[: self.passages], budget, self.generator.count_tokens,
                               parts=parts if len(parts) > 1 else ())

    def plan(self, question: str, hits: list[Hit] | None, lang: str, reason: bool = False,
             history: list[dict] | None = None, instructions: str | None = None) -> PromptPlan:
        """The prompt for `question`, trimmed to the context left after room for the answer.
        `history`/`instructions` (a conversation, chat style only) go in via with_conversation."""
        gen = self.generator
        render = gen.render_chat if gen.prompt_style == "chat" else None
        if render is not None and (history or instructions):
            def render(messages, _render=gen.render_chat):
                return _render(with_conversation(messages, history, instructions, lang))
        examples = self.examples if self.examples is not None else (DEFAULT_EXAMPLES if hits is None else RAG_EXAMPLES)
        keep_prefix = getattr(gen, "keep_prefix", None)  # optional: backends that can keep a read prefix
        if keep_prefix is not None:
            keep_prefix(fixed_prefix(gen.prompt_style, lang, hits is not None, render, examples, reason))
        room = max(self.decoding.max_tokens, REASON_MAX_TOKENS) if reason else self.decoding.max_tokens
        return build_prompt(
            question, hits, gen.prompt_style, lang, render, examples,
            count_tokens=gen.count_tokens, max_tokens=gen.context_length - room, reason=reason,
        )

    def close(self) -> None:
        """Free the generator's model (a no-op for backends that hold none)."""
        close = getattr(self.generator, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def answer(
        self,
        question: str,
        *,
        closed_book: bool = False,
        on_token: Callable[[str], None] | None = None,
        passages: list[Hit] | None = None,
        cancel: threading.Event | None = None,
        history: list[dict] | None = None,
        instructions: str | None = None,
        query: str | None = None,
    ) -> Answer:
        """Answer one question. `on_token` receives the answer text as it is generated.

        `history` (earlier {role, content} turns) and `instructions` (a system message) are a
        conversation's (ragkit/conversation.py); `question` is then its standalone form, or the
        follow-up as asked with `query`, the text retrieval and evidence selection use instead
        (`Rewrite.ask_and_search`).

        `passages` (non-empty) are the passages to answer from instead of retrieving: all of them go
        into the prompt (trimmed only to fit the context), whatever `closed_book` says. Setting
        `cancel` stops the answer (GenerationCancelled) while the prompt is read or at the next
        token."""
        if not question or not question.strip():
            raise UsageError('the question is empty; ask something, e.g. ragkit ask "How long is the warranty?"')
        question = question.strip()
        lang = detect_language(question)
        t0 = time.perf_counter()
        hits: list[Hit] | None = None
        retrieval_ms = 0.0
        shown: list[Hit] | None = None
        retrieved: list[Hit] = []  # the chunks evidence was selected from (none when passages are given)
        reason = False
        if passages:
            hits = shown = list(passages)
            reason = self.wants_reasoning(question, lang)
        elif not closed_book and self.index is not None:
            reason = self.wants_reasoning(question, lang)
            search = query.strip() if query and query.strip() else question
            hits = self.retrieve_parts(search, lang) if reason else self.retrieve(search)
            retrieval_ms = ms_since(t0)
            if not hits or (max(h.score for h in hits) < self.threshold(lang) and not retrieved_code(search, hits)):
                return self._refuse(question, lang, hits, "", t0, retrieval_ms, on_token)
            shown = self.evidence(search, hits, lang, reason)
            retrieved = hits
            if self.context_tokens:
                # The sources of the answer are the selected spans: [n] is sources[n-1], and a
                # citation points at the sentences the model read, not the whole chunk.
                hits = shown

        t_gen = time.perf_counter()
        solution = None
        one_generation = False  # else tokens and clocks of several generations make no one decode rate
        if reason and shown:
            plan, completion, solution = self._reason(question, shown, lang, cancel, (history, instructions))
            if solution is not None and solution.answer is not None:
                raw = solution.answer
                completion.first_token_ms = ms_since(t_gen)  # the answer is shown once it is computed
                if on_token is not None:
                    on_token(raw)
            else:  # no usable calculation: answer directly, as with reasoning off
                used, t_direct = completion, time.perf_counter()
                plan, completion, raw, hits, _ = self._direct_or_whole(question, shown, hits, retrieved, lang,
                                                                       on_token, cancel, (history, instructions))
                _charge(completion, used)
                _delay_first_token(completion, ms_since(t_gen, t_direct))
        else:
            plan, completion, raw, hits, retried = self._direct_or_whole(question, shown, hits, retrieved, lang,
                                                                         on_token, cancel, (history, instructions))
            one_generation = not retried
        gen_ms = ms_since(t_gen)
        reasoning = _reasoning_record(solution, reason)

        if is_refusal(raw):
            ans = self._refuse(question, lang, hits, plan.text, t0, retrieval_ms, None)
            ans.prompt_tokens, ans.completion_tokens = completion.prompt_tokens, completion.completion_tokens
            ans.timings.update(_gen_timings(completion, t_gen - t0, gen_ms, one_generation))
            ans.reasoning = reasoning
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
            timings={"retrieval_ms": retrieval_ms, **_gen_timings(completion, t_gen - t0, gen_ms, one_generation),
                     "total_ms": ms_since(t0)},
            backend=self.generator.backend,
            model=self.generator.model,
            reasoning=reasoning,
        )

    def _generate(self, prompt: str, decoding: Decoding, stream, cancel) -> Completion:
        if cancel is not None:
            return self.generator.generate(prompt, decoding, stream, cancel=cancel)
        return self.generator.generate(prompt, decoding, stream)

    def _direct(self, question, shown, lang, on_token, cancel,
                conversation=(None, None)) -> tuple[PromptPlan, Completion, str]:
        """The plain answer: one prompt, the answer streamed as it is generated."""
        plan = self.plan(question, shown, lang, history=conversation[0], instructions=conversation[1])
        stops = answer_stop(self.generator.prompt_style) + (header_stops() if plan.hits else [])
        decoding = self.decoding.with_stops(stops)
        guard = HeaderGuard(on_token) if on_token is not None and plan.hits else None
        completion = self._generate(plan.text, decoding, guard.feed if guard else _lstrip_stream(on_token), cancel)
        raw = cut_header_fragment(completion.text).strip() if plan.hits else completion.text.strip()
        if guard is not None:
            guard.finish(raw)
        return plan, completion, raw

    def _direct_or_whole(self, question, shown, hits, retrieved, lang, on_token, cancel, conversation):
        """The plain answer from the selected evidence; when the model says it lacks the answer, the
        plain answer from the top WHOLE_PASSAGES_ON_REFUSAL (at most `passages`) retrieved chunks
        whole, whose [n] then cite those chunks. Returns the plan, the completions' sum, the answer,
        the hits cited and whether it asked again. A refusal in other words than "I don't know" may have been streamed: then
        the retry streams nothing, and its answer replaces the streamed text at the end (as a
        canonical refusal does), rather than following it."""
        streamed: list[str] = []

        def first(piece: str) -> None:
            streamed.append(piece)
            on_token(piece)

        t0 = time.perf_counter()
        plan, completion, raw = self._direct(question, shown, lang, first if on_token else None, cancel, conversation)
        if not (is_refusal(raw) and self.context_tokens and retrieved):
            return plan, completion, raw, hits, False
        whole = retrieved[:min(WHOLE_PASSAGES_ON_REFUSAL, self.passages)]  # a tiny model's one passage stays one
        used, t_retry = completion, time.perf_counter()
        plan, completion, raw = self._direct(question, whole, lang, None if streamed else on_token, cancel,
                                             conversation)
        _charge(completion, used)
        _delay_first_token(completion, ms_since(t0, t_retry))
        return plan, completion, raw, whole, True

    def _reason(self, question, shown, lang, cancel, conversation=(None, None)):
        """The reasoning step: the model writes its facts, one expression and an answer; ragkit
        computes the expression (ragkit/reason/) and puts the value into the answer. An answer of
        another kind than the question asks for (ragkit.reason.kinds) is not used."""
        plan = self.plan(question, shown, lang, reason=True, history=conversation[0], instructions=conversation[1])
        decoding = replace(self.decoding, max_tokens=max(self.decoding.max_tokens, REASON_MAX_TOKENS))
        completion = self._generate(plan.text, decoding.with_stops(header_stops()), None, cancel)
        # The prompt ends with the first label ("Facts:"): the model's text continues it.
        said = cut_header_fragment(completion.text).strip()
        if is_refusal(said):
            return plan, completion, Solution(said, parse_reasoning(said))
        written = REASON_LABELS[lang][0] + " " + said
        if said and "calculation" not in parse_reasoning(written).labels:
            written = self._relabel(plan.text, completion, lang, cancel)
        solution = solve(written)
        kind = asked_kind(question, lang)
        if solution.answer is not None and not fits_kind(solution.answer, kind):
            # a price for "how long", a length for "which mower": a wrong expression, answered directly instead
            solution = replace(solution, answer=None, refused=f"the answer is not the {kind} the question asks for")
        return plan, completion, solution

    def _relabel(self, prompt: str, completion: Completion, lang: str, cancel) -> str:
        """The reasoning format, led line by line, for a model that wrote no calculation line: its
        first line of facts is kept, then ragkit writes "Calculation:" and "Answer:" and the model
        writes one line after each. The prompt grows by the model's own text, so the backend reads
        only the new tokens (llama.cpp reuses the matching start). `completion` is charged with them."""
        labels = REASON_LABELS[lang]
        facts = completion.text.lstrip("\n").split("\n", 1)[0]
        facts = facts[: slot.start()] if (slot := RESULT_SLOT.search(facts)) else facts  # the answer run in
        text = prompt + completion.text[: completion.text.index(facts) + len(facts)]
        lines = [labels[0] + " " + facts.strip()]
        for label in labels[1:]:
            text += "\n" + label
            step = self._generate(text, replace(self.decoding, max_tokens=RELABEL_LINE_TOKENS).with_stops(["\n"]),
                                  None, cancel)
            line = step.text.split("\n", 1)[0]
            text += line
            lines.append(label + " " + line.strip())
            _charge(completion, step, read_only=True)
        return "\n".join(lines)

    def wants_reasoning(self, question: str, lang: str) -> bool:
        """Whether this question gets the reasoning step: `reason` on, or auto and the question
        asks for a computation (ragkit.reason.route); only chat models that complete raw text
        (a server that applies the template itself cannot continue the reasoning format)."""
        mode = self.settings.reason
        if mode == "off" or self.generator.prompt_style != "chat" or self.generator.backend == "openai":
            return False
        return mode == "on" or needs_reasoning(question, lang)

    def retrieve_parts(self, question: str, lang: str) -> list[Hit]:
        """Candidates for a question that names several things: the question's own hits, then each
        part's (ragkit.reason.route.sub_queries), merged by chunk with its best score."""
        best: dict[str, Hit] = {h.chunk_id: h for h in self.retrieve(question)}
        for part in sub_queries(question, lang):
            if part == question:
                continue
            for h in self.index.search(part, k=self.k, mode=self.mode):
                if h.chunk_id not in best or h.score > best[h.chunk_id].score:
                    best[h.chunk_id] = h
        merged = sorted(best.values(), key=lambda h: -h.score)
        return [replace(h, rank=i) for i, h in enumerate(merged, 1)]

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


def retrieved_code(question: str, hits: list[Hit]) -> bool:
    """Whether a code the question names (letters and digits: E03, V7, M5) is in a retrieved chunk
    as a word of its own."""
    for code in set(_CODE.findall(question)):
        word = re.compile(rf"(?<![A-Za-z0-9]){re.escape(code)}(?![A-Za-z0-9])")
        if any(word.search(h.text) for h in hits):
            return True
    return False


def _charge(completion: Completion, earlier: Completion, read_only: bool = False) -> None:
    """Add `earlier`'s tokens to `completion`, for an answer that took several generations: its whole
    prompt, or (`read_only`, a prompt that continues the last one) only the tokens not reused."""
    completion.prompt_tokens += earlier.prompt_tokens - (earlier.cached_tokens if read_only else 0)
    completion.completion_tokens += earlier.completion_tokens


def _delay_first_token(completion: Completion, ms: float) -> None:
    """The answer that stands came from `completion`, which started `ms` after the answer's first
    generation: its first token is that much later than its own clock says."""
    if completion.first_token_ms is not None:
        completion.first_token_ms += ms


def _reasoning_record(solution: Solution | None, asked: bool) -> dict | None:
    """What `--json` shows of the reasoning step: the facts, the expression and its value, or why
    the calculator refused it (then the answer came from a direct prompt)."""
    if not asked:
        return None
    if solution is None:
        return {"used": False}
    return {"used": solution.answer is not None, **solution.as_dict()}


def _gen_timings(c, offset_s: float, gen_ms: float, one_generation: bool = True) -> dict:
    """first_token_ms counts from the question (retrieval and prompt building included) to the first
    token of the answer that stands (a computed answer: when it is computed; after a reasoning
    fallback or a whole-chunk retry: the first token of that generation);
    tokens_per_s is the decode rate after the first token, the figure users compare; None when
    fewer than 2 tokens came (one token has no decode time: n / gen_ms would be the prompt's rate),
    and for an answer that took several generations (their tokens and clocks do not make one rate)."""
    first = round(offset_s * 1000 + c.first_token_ms, 2) if c.first_token_ms is not None else None
    n = c.completion_tokens
    if one_generation and n > 1 and c.first_token_ms is not None and gen_ms > c.first_token_ms:
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
