"""RAFT examples (`build-sft-data --recipe raft`): each QA pair read from passages, as `ask` reads.

Retrieval-augmented fine-tuning (Zhang et al. 2024) trains on the task the tuned model meets at
answer time: a question with its oracle chunk among distractors. Per QA pair (the same pairs the
`qa` recipe writes, from the same work file):

- the passages are the oracle chunk and `distractors` others, never from the oracle's source: the
  index's own top hits for the question (`negatives: hard`) or chunks drawn at random (`random`);
- the oracle is left out of a share `1 - oracle_share` of the examples, and the order is shuffled,
  both drawn from `seed`;
- the target quotes the sentence that holds the answer with its passage number, then gives the
  answer in the bench's short form (`evidence_answer`; an answer that is most of its sentence, a
  FAQ entry, is given once with the number). Without the oracle it is the answer alone
  (`without_oracle: answer`, the paper's recipe: the model also memorises) or the refusal
  (`refuse`).

The prompt is never written here: `render_example` hands the passages to `Pipeline.plan`, the call
`ask` makes for given passages, so whatever the answer path does to passages (template, `[n]`
numbering, trimming to the context, evidence selection) the training prompt does too. The target
is made from the passages as the plan shows them: an oracle trimmed away counts as left out.

Each row carries its parts under `ragkit_raft` (question, language, passages, oracle id, answer);
`ragkit train` renders every row again with the base model's tokenizer and `max_len` as context
(ragkit.sft.data), while the row's own system/instruction/output fields are the plan rendered as
chat messages, untrimmed, for LLaMA-Factory.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

from ..errors import ContextOverflow
from ..generate.base import Decoding
from ..generate.prompts import REFUSAL, format_target
from ..pipeline import Pipeline
from ..types import Hit

RAFT_KEY = "ragkit_raft"  # the row field holding an example's parts
SEARCH_MODE = "hybrid"  # how hard negatives are found: the eval's and ask's default mode
ANSWER_ROOM = 96  # tokens the plan leaves for the target when rendering for training
_EVIDENCE = {"en": ("Evidence", ": ", "Answer: "), "zh": ("依据", "：", "答案：")}
_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s*|\n+")


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
    q = f"“{quote}”" if lang == "zh" else f'"{quote}"'
    return f"{label} [{n}]{colon}{q} {ans}{answer}" if lang == "en" else f"{label} [{n}]{colon}{q}{ans}{answer}"


def final_answer(text: str) -> str:
    """The answer part of a reply in the evidence form ("Evidence [2]: "..." Answer: 2 years" → "2
    years"; "" when the reply stopped before its answer); any other reply unchanged. The eval scores
    this part, so that a quoted sentence, which holds the answer by construction, earns nothing by
    itself."""
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
    """The part of a Generator that `Pipeline.plan` reads (style, chat template, token counter,
    context length): lets training and data building render exactly the prompt `ask` sends."""

    backend = "raft"
    model = "raft"
    max_passages = None

    def __init__(self, prompt_style: str, render_chat: Callable[[list[dict]], str] | None,
                 count_tokens: Callable[[str], int], context_length: int):
        self.prompt_style = prompt_style
        self.render_chat = render_chat
        self.count_tokens = count_tokens
        self.context_length = context_length


def passages_of(meta: dict) -> list[Hit]:
    """The example's passages as the hits the pipeline is given (numbered in their shuffled order)."""
    return [Hit(i, p["chunk_id"], p["source"], 1.0, p["text"], p.get("page"), p.get("start", 0), p.get("end", 0),
                p.get("title")) for i, p in enumerate(meta["passages"], 1)]


def render_example(meta: dict, reader: PromptReader, room: int = ANSWER_ROOM):
    """(PromptPlan, target text, oracle number or None): the prompt `Pipeline.answer(question,
    passages=...)` would send through `reader`, and the target for the passages it kept."""
    pipe = Pipeline(None, reader, decoding=Decoding(max_tokens=room))
    plan = pipe.plan(meta["question"], passages_of(meta), meta["lang"])
    target, n = raft_target(plan.hits, meta)
    return plan, target, n


def chat_messages_of(meta: dict) -> tuple[list[dict], str]:
    """(system and user messages, target) of an example, untrimmed: the plan rendered as chat
    messages (what LLaMA-Factory gets; it applies the model's template to them)."""
    reader = PromptReader("chat", lambda m: json.dumps(m, ensure_ascii=False), lambda s: 0, 1 << 30)
    plan, target, _ = render_example(meta, reader)
    return json.loads(plan.text), target


def training_pair(meta: dict, style: str, render_chat, count_tokens, max_len: int) -> tuple[str, str] | None:
    """(prompt, target text) for `ragkit train`: the plan with `max_len` tokens as context; None
    when not even the question fits."""
    reader = PromptReader(style, render_chat if style == "chat" else None, count_tokens, max_len)
    try:
        plan, target, _ = render_example(meta, reader, min(ANSWER_ROOM, max_len // 4))
    except ContextOverflow:
        return None
    return plan.text, format_target(target, style, meta["lang"])


# ---------------------------------------------------------------------------- choosing passages


def passage_dict(c) -> dict:
    return {"chunk_id": c.chunk_id, "source": c.source, "page": c.page, "start": c.start, "end": c.end,
            "title": c.title, "text": c.text}


class DistractorPicker:
    """Distractors for a question: the index's top hits from other sources (hard) or random
    chunks from other sources; hard ones run short on a small index and are topped up at random."""

    def __init__(self, index, chunks: list, kind: str, rng: random.Random):
        self.index, self.chunks, self.kind, self.rng = index, chunks, kind, rng
        self.counts = {"hard": 0, "random": 0}

    def pick(self, question: str, oracle, n: int) -> list[dict]:
        picked: list = []
        if self.kind == "hard" and n:
            for h in self.index.search(question, k=n + 8, mode=SEARCH_MODE):
                if h.source != oracle.source and all(p.chunk_id != h.chunk_id for p in picked):
                    picked.append(h)
                if len(picked) == n:
                    break
            self.counts["hard"] += len(picked)
        others = [c for c in self.chunks if c.source != oracle.source]
        pool = [c for c in others if all(p.chunk_id != c.chunk_id for p in picked)]
        extra = self.rng.sample(pool, min(n - len(picked), len(pool)))
        self.counts["random"] += len(extra)
        return [passage_dict(c) for c in picked + extra]


def raft_examples(rows, chunks_by_id: dict, picker: DistractorPicker, config, rng: random.Random):
    """(row id, meta, provenance) per (id, question, answer, provenance) QA row whose chunk is in
    the index: its passages drawn and shuffled, the oracle kept with probability oracle_share."""
    out = []
    for rid, question, answer, prov in rows:
        oracle = chunks_by_id.get(prov.get("chunk_id"))
        if oracle is None:
            continue
        passages = picker.pick(question, oracle, config.distractors)
        keep = rng.random() < config.oracle_share
        if keep:
            passages.append(passage_dict(oracle))
        rng.shuffle(passages)
        meta = {"question": question, "lang": prov["language"], "answer": answer, "passages": passages,
                "oracle": oracle.chunk_id if keep else None, "without_oracle": config.without_oracle,
                "quote_chars": config.quote_chars}
        out.append((f"{rid}-r", meta, {**prov, "recipe": "raft", "oracle_in_context": keep,
                                        "distractors": [p["chunk_id"] for p in passages if p["chunk_id"] != oracle.chunk_id]}))
    return out


def raft_record(fmt: str, rid: str, meta: dict) -> dict:
    """One output row: the chat messages and target in `fmt`, with the parts under RAFT_KEY."""
    messages, target = chat_messages_of(meta)
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    user = next(m["content"] for m in messages if m["role"] == "user")
    if fmt == "alpaca":
        rec = {"id": rid, "system": system, "instruction": user, "input": "", "output": target}
    elif fmt == "sharegpt":
        rec = {"id": rid, "conversations": [{"from": "system", "value": system}, {"from": "human", "value": user},
                                            {"from": "gpt", "value": target}]}
    else:
        rec = {"id": rid, "messages": [*messages, {"role": "assistant", "content": target}]}
    return {**rec, RAFT_KEY: meta}


def raft_dataset_entry(entry: dict) -> dict:
    """formats.dataset_info_entry for a RAFT file: the system prompt is a column (alpaca) or a
    turn (sharegpt) too."""
    entry = json.loads(json.dumps(entry))
    if entry["formatting"] == "alpaca":
        entry["columns"]["system"] = "system"
    else:
        entry["tags"]["system_tag"] = "system"
    return entry


def write_raft_outputs(records, out, fmt: str, summary, index, chunks: list, config, *, guard=None, mix=None,
                       mix_ratio: float = 0.0) -> None:
    """The `raft` recipe's last step: the direct QA rows (leakage guard applied, as for `qa`) as
    RAFT examples, general rows mixed in as they are (closed-book, any context of their own kept in
    their question), written in `fmt` with dataset_info.json and the provenance sidecar."""
    from .formats import build_rows, dataset_info_entry, mix_rows, read_general, to_record, write_rows

    rng = random.Random(config.seed)
    rows = build_rows(records, ("direct",), summary, guard)  # the bench's short answers only
    if set(config.tasks) - {"direct"}:
        summary.notes.append("recipe raft: only direct questions become RAFT examples (explain and list rows are not)")
    picker = DistractorPicker(index, chunks, config.negatives, rng)
    examples = raft_examples(rows, {c.chunk_id: c for c in chunks}, picker, config, rng)
    out_rows = [(raft_record(fmt, rid, meta), prov) for rid, meta, prov in examples]
    with_oracle = sum(1 for _, _, prov in examples if prov["oracle_in_context"])
    summary.rows["raft"] = len(out_rows)
    summary.raft = {"examples": len(out_rows), "with_oracle": with_oracle, "distractors": dict(picker.counts),
                    "negatives": config.negatives, "without_oracle": config.without_oracle}
    if mix:
        general = read_general(mix)
        extra = mix_rows(out_rows, general, mix_ratio, str(mix), config.seed)
        summary.rows["general"] = len(extra)
        out_rows += [(to_record(fmt, rid, q, a), prov) for rid, q, a, prov in extra]
    rng.shuffle(out_rows)
    write_rows(out_rows, out, raft_dataset_entry(dataset_info_entry(fmt, out.name)), summary)
