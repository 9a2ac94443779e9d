"""A RAFT example as the answer path shows it: its prompt, its target, and the answer part of a reply.

RAFT (retrieval-augmented fine-tuning, Zhang et al. 2024) trains on the task a tuned model meets at
answer time: a question with its oracle chunk among distractors. This module is what the three
places that meet such an example share, so that none of them writes a prompt of its own:

- `ragkit build-sft-data --recipe raft` (ragkit/sftdata/raft.py) draws the passages and writes rows;
- `ragkit train` (ragkit/train/data.py) renders each row again with the base model's tokenizer;
- `ragkit eval` scores a RAFT reply on its answer part (`final_answer`).

The prompt is never written here either: `render_example` hands the example's passages to the
`Pipeline` as if retrieval had returned them, in their shuffled order and with equal scores, and
takes what `Pipeline.answer` would send: the top `passages` chunks (the model's `max_passages`, else
k), evidence selection within `context_tokens` (ragkit/evidence.py, which orders the passages by
their best sentence as it does for `ask`), the rag template, `[n]` numbering and trimming to the
context. The AnswerSettings that shape it (k, passages, context_tokens, examples) travel with the
example (`prompt` in its parts), so that training renders the prompt eval will send. The reasoning
step (`reason`) is not trained: every example is the direct prompt, which is also what the answer
path falls back to when a calculation fails.

The target is made from the passages as the plan shows them: it quotes the sentence that holds the
answer with its passage number, then gives the short answer (`evidence_answer`); an oracle that
evidence selection or trimming left without its answer counts as left out, and the target is then
the answer alone or the refusal (`without_oracle`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from .errors import ContextOverflow
from .generate.base import Decoding
from .generate.prompts import REFUSAL, format_target
from .pipeline import AnswerSettings, Pipeline
from .types import Hit

RAFT_KEY = "ragkit_raft"  # the row field holding an example's parts
PROMPT_FIELDS = ("k", "passages", "context_tokens", "examples")  # the AnswerSettings that shape a rag prompt
ANSWER_ROOM = 96  # tokens the plan leaves for the target when rendering for training
_EVIDENCE = {"en": ("Evidence", ": ", "Answer: "), "zh": ("依据", "：", "答案：")}
_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;…])\s*|\n+")


def prompt_settings(settings: AnswerSettings) -> dict:
    """The part of `settings` that decides a rag prompt, as an example carries it."""
    return {f: getattr(settings, f) for f in PROMPT_FIELDS}


def estimate_tokens(text: str) -> int:
    """A token count without a tokenizer (4 UTF-8 bytes a token): for the rows written for other
    trainers (LLaMA-Factory), whose model ragkit does not load; `ragkit train` counts exactly."""
    return len(text.encode("utf-8")) // 4 + 1


# ---------------------------------------------------------------------------- the target


def quote_around(text: str, answer: str, max_chars: int) -> str | None:
    """The sentence of `text` that holds `answer`, cut to about `max_chars` around it; None when
    the answer is not in the text."""
    at = text.find(answer)
    if at < 0:
        at = text.lower().find(answer.lower())
    if at < 0 or not answer.strip():
        return None
    start, end = 0, len(text)
    for m in _SENTENCE_END.finditer(text):
        if m.end() <= at:
            start = m.end()
        elif m.start() >= at + len(answer):
            end = m.start()
            break
    quote = " ".join(text[start:end].split())
    if len(quote) <= max_chars:
        return quote
    rel = " ".join(text[start:at].split())  # where the answer sits in the collapsed quote
    a0 = len(rel) + (1 if rel and text[at - 1].isspace() else 0)
    lo = max(0, min(a0 - (max_chars - len(answer)) // 2, len(quote) - max_chars))
    cut = quote[lo: lo + max_chars].strip()
    return ("…" if lo > 0 else "") + cut + ("…" if lo + max_chars < len(quote) else "")


def evidence_answer(n: int, quote: str, answer: str, lang: str) -> str:
    """One line: the quoted evidence with its passage number, then the short answer."""
    label, colon, ans = _EVIDENCE[lang]
    if lang == "zh":
        return f"{label} [{n}]{colon}“{quote}”{ans}{answer}"
    return f'{label} [{n}]{colon}"{quote}" {ans}{answer}'


def final_answer(text: str) -> str:
    """The answer part of a reply in the evidence form ('Evidence [2]: "..." Answer: 2 years' → "2
    years"; "" when the reply stopped before its answer); any other reply unchanged. The eval
    scores this part, so that a quoted sentence, which holds the answer by construction, earns
    nothing by itself."""
    stripped = text.lstrip()
    for label, _colon, ans in _EVIDENCE.values():
        if stripped.startswith(f"{label} ["):
            cut = stripped.rfind(ans.strip())
            return stripped[cut + len(ans.strip()):].strip() if cut > 0 else ""
    return text


def raft_target(shown: list[Hit] | None, meta: dict) -> tuple[str, int | None]:
    """(target text, the oracle's number in the prompt or None) for the passages as shown."""
    lang, answer = meta["lang"], meta["answer"]
    for n, h in enumerate(shown or [], 1):
        if meta.get("oracle") and h.chunk_id == meta["oracle"]:
            quote = quote_around(h.text, answer, meta["quote_chars"])
            if quote and len(answer) >= 0.8 * len(quote):  # the answer is the evidence (a FAQ entry): cite it
                return f"{answer} [{n}]", n
            if quote:
                return evidence_answer(n, quote, answer, lang), n
    return (REFUSAL[lang] if meta.get("without_oracle") == "refuse" else answer), None


# ---------------------------------------------------------------------------- the prompt, via Pipeline


class PromptReader:
    """The part of a Generator that `Pipeline` reads to build a prompt (style, chat template,
    token counter, context length, passage hint): training and data building render through it
    exactly the prompt `ask` sends to that model."""

    backend = "raft"
    model = "raft"

    def __init__(self, prompt_style: str, render_chat: Callable[[list[dict]], str] | None,
                 count_tokens: Callable[[str], int], context_length: int, max_passages: int | None = None):
        self.prompt_style = prompt_style
        self.render_chat = render_chat
        self.count_tokens = count_tokens
        self.context_length = context_length
        self.max_passages = max_passages


def passages_of(meta: dict) -> list[Hit]:
    """The example's passages as the hits retrieval would hand the pipeline (its shuffled order,
    equal scores, so that only the question decides what evidence selection keeps)."""
    return [Hit(i, p["chunk_id"], p["source"], 1.0, p["text"], p.get("page"), p.get("start", 0), p.get("end", 0),
                p.get("title")) for i, p in enumerate(meta["passages"], 1)]


def render_example(meta: dict, reader: PromptReader, room: int = ANSWER_ROOM):
    """(PromptPlan, target text, oracle number or None): the prompt `Pipeline.answer(question)`
    would send through `reader` when retrieval returns the example's passages, and the target for
    the passages it shows."""
    settings = AnswerSettings(**meta.get("prompt", {}))
    pipe = Pipeline(None, reader, settings=settings, decoding=Decoding(max_tokens=room))
    shown = pipe.evidence(meta["question"], passages_of(meta))
    plan = pipe.plan(meta["question"], shown, meta["lang"])
    target, n = raft_target(plan.hits, meta)
    return plan, target, n


def chat_messages_of(meta: dict) -> tuple[list[dict], str]:
    """(system and user messages, target) of an example: the plan rendered as chat messages (what
    LLaMA-Factory gets; it applies the model's template to them), evidence counted by
    `estimate_tokens`."""
    reader = PromptReader("chat", lambda m: json.dumps(m, ensure_ascii=False), estimate_tokens, 1 << 30)
    plan, target, _ = render_example(meta, reader)
    return json.loads(plan.text), target


def training_pair(meta: dict, style: str, render_chat, count_tokens, max_len: int,
                  max_passages: int | None = None) -> tuple[str, str] | None:
    """(prompt, target text) for `ragkit train`: the plan with `max_len` tokens as the context and
    the base model's tokenizer counting; None when not even the question fits."""
    reader = PromptReader(style, render_chat if style == "chat" else None, count_tokens, max_len, max_passages)
    try:
        plan, target, _ = render_example(meta, reader, min(ANSWER_ROOM, max_len // 4))
    except ContextOverflow:
        return None
    return plan.text, format_target(target, style, meta["lang"])
