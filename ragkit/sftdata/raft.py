"""The `raft` recipe of `build-sft-data`: each QA pair read from passages, as `ask` reads.

Per QA pair (the same pairs the `qa` recipe writes, from the same work file; direct questions
only, the bench's short answers):

- the passages are the oracle chunk and `distractors` others, never from the oracle's source: the
  index's own top hits for the question (`negatives: hard`) or chunks drawn at random (`random`);
  hard ones run short on a small index and are topped up at random;
- the oracle is left out of a share `1 - oracle_share` of the examples, and the order is shuffled,
  both drawn from `seed`;
- prompt and target come from ragkit/raft.py (the prompt `Pipeline.answer` would send for those
  passages under the given AnswerSettings, evidence selection included).

Each row carries its parts under `ragkit_raft` (question, language, passages, oracle id, answer,
the prompt settings); `ragkit train` renders every row again with the base model's tokenizer,
while the row's own system/instruction/output fields are the plan rendered as chat messages for
LLaMA-Factory. General rows mixed in (`--mix`) are written as they are: closed-book, any context
of their own kept in their question.
"""

from __future__ import annotations

import json
import random

from ..raft import RAFT_KEY, chat_messages_of, prompt_settings
from .formats import build_rows, dataset_info_entry, mix_rows, read_general, to_record, write_rows

SEARCH_MODE = "hybrid"  # how hard negatives are found: the mode ask and eval search with by default


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
        pool = [c for c in self.chunks if c.source != oracle.source and all(p.chunk_id != c.chunk_id for p in picked)]
        extra = self.rng.sample(pool, min(n - len(picked), len(pool)))
        self.counts["random"] += len(extra)
        return [passage_dict(c) for c in picked + extra]


def raft_examples(rows, chunks_by_id: dict, picker: DistractorPicker, config, rng: random.Random,
                  prompt: dict | None = None):
    """(row id, parts, provenance) per (id, question, answer, provenance) QA row whose chunk is in
    the index: its passages drawn and shuffled, the oracle kept with probability oracle_share;
    `prompt` is the AnswerSettings part that shapes the prompt (prompt_settings)."""
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
                "quote_chars": config.quote_chars, "prompt": dict(prompt or {})}
        distractors = [p["chunk_id"] for p in passages if p["chunk_id"] != oracle.chunk_id]
        out.append((f"{rid}-r", meta, {**prov, "recipe": "raft", "oracle_in_context": keep,
                                        "distractors": distractors}))
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


def write_raft_outputs(records, out, fmt: str, summary, index, chunks: list, config, answer_settings, *,
                       guard=None, mix=None, mix_ratio: float = 0.0) -> None:
    """The `raft` recipe's last step: the direct QA rows (leakage guard applied, as for `qa`) as
    RAFT examples whose prompt follows `answer_settings`, general rows mixed in as they are, written
    in `fmt` with dataset_info.json and the provenance sidecar."""
    rng = random.Random(config.seed)
    rows = build_rows(records, ("direct",), summary, guard)  # the bench's short answers only
    if set(config.tasks) - {"direct"}:
        summary.notes.append("recipe raft: only direct questions become RAFT examples (explain and list rows are not)")
    picker = DistractorPicker(index, chunks, config.negatives, rng)
    examples = raft_examples(rows, {c.chunk_id: c for c in chunks}, picker, config, rng,
                             prompt_settings(answer_settings))
    out_rows = [(raft_record(fmt, rid, meta), prov) for rid, meta, prov in examples]
    with_oracle = sum(1 for _, _, prov in examples if prov["oracle_in_context"])
    summary.rows["raft"] = len(out_rows)
    summary.raft = {"examples": len(out_rows), "with_oracle": with_oracle, "distractors": dict(picker.counts),
                    "negatives": config.negatives, "without_oracle": config.without_oracle,
                    "prompt": prompt_settings(answer_settings)}
    if mix:
        general = read_general(mix)
        extra = mix_rows(out_rows, general, mix_ratio, str(mix), config.seed)
        summary.rows["general"] = len(extra)
        if len(extra) > len(general):
            summary.notes.append(f"--mix file has {len(general)} rows; repeated to reach ratio {mix_ratio}")
        out_rows += [(to_record(fmt, rid, q, a), prov) for rid, q, a, prov in extra]
    rng.shuffle(out_rows)
    write_rows(out_rows, out, raft_dataset_entry(dataset_info_entry(fmt, out.name)), summary)
