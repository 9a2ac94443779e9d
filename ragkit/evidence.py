"""Evidence selection: the sentences of the retrieved chunks that bear on the question, within a
token budget, between retrieval and the prompt.

Why: on a CPU the cost of an answer is the prompt (llama.cpp reads a 1.5B model's prompt at tens of
tokens a second on two cores, and generating a short answer costs little), and most of a prompt of
whole chunks is text the answer does not use; a small model also reads a fact, and does arithmetic
on it, better from a few sentences than from several hundred tokens of loosely related text.
The budget that keeps accuracy was chosen by measurement (evals/context_budget.py, results in
evals/results/context-budget/).

How: every retrieved chunk is split into sentences (Chinese and English sentence ends, and line
breaks, so a table row or list item is a sentence) with their character offsets. Each sentence is
scored lexically against the question (idf-weighted share of the question's words it holds, words
from `lang.tokenize_for_search`: jieba for Chinese), plus a share of its neighbours' scores (the
fact often sits in the sentence after the one that names the subject), blended with its chunk's
retrieval score. The best sentences are kept while they fit `budget` tokens; a chunk's kept
sentences that touch form one passage whose text is exactly `document[start:end]`, so an `[n]`
citation still maps to its source, page and the selected span. Passages are ordered by their best
sentence, so [1] is the most relevant.

`budget=None` (context_tokens 0) gives the whole chunks, as before this module existed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from .lang import tokenize_for_search
from .types import Hit

# A sentence ends after 。！？；… or . ! ? ; followed by a space, or at a line break; closing quotes
# and brackets stay with the sentence they close.
_SENTENCE_END = re.compile(r"(?:[。！？；…]+[”’」』）)]*|[.!?;]+[\"')\]]*(?=\s)|\n)\s*")

NEIGHBOUR_WEIGHT = 0.5  # a sentence earns this share of its best neighbour's lexical score
CHUNK_WEIGHT = 0.3  # the chunk's retrieval score (normalised to the best hit) in the blend


@dataclass
class Sentence:
    hit: int  # index of the hit it came from
    index: int  # position within that hit
    start: int  # offsets in the hit's text
    end: int
    text: str
    score: float = 0.0
    tokens: int = 0


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of `text`, whitespace trimmed, none empty."""
    spans, pos = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((pos, m.end()))
        pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text)))
    out = []
    for s, e in spans:
        piece = text[s:e]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece.rstrip())
        if trail > lead:
            out.append((s + lead, s + trail))
    return out


def _idf(docs: list[set[str]]) -> Callable[[str], float]:
    n = len(docs)
    df = Counter(w for d in docs for w in d)
    return lambda w: math.log(1 + (n - df.get(w, 0) + 0.5) / (df.get(w, 0) + 0.5))


def score_sentences(question: str, hits: list[Hit]) -> list[Sentence]:
    """Every sentence of `hits`, scored against `question` (see the module docstring)."""
    sentences = [
        Sentence(i, j, s, e, h.text[s:e])
        for i, h in enumerate(hits)
        for j, (s, e) in enumerate(split_sentences(h.text))
    ]
    if not sentences:
        return []
    words = [set(tokenize_for_search(s.text)) for s in sentences]
    idf = _idf(words)
    q_words = set(tokenize_for_search(question))
    total = sum(idf(w) for w in q_words) or 1.0
    lexical = [sum(idf(w) for w in q_words & ws) / total for ws in words]
    best_hit = max((h.score for h in hits), default=0.0)
    for k, s in enumerate(sentences):
        neighbours = [lexical[n] for n in (k - 1, k + 1)
                      if 0 <= n < len(sentences) and sentences[n].hit == s.hit]
        window = lexical[k] + NEIGHBOUR_WEIGHT * max(neighbours, default=0.0)
        chunk = hits[s.hit].score / best_hit if best_hit > 0 else 0.0
        s.score = (1 - CHUNK_WEIGHT) * window + CHUNK_WEIGHT * chunk
    return sentences


def select_evidence(
    question: str,
    hits: list[Hit],
    budget: int | None,
    count_tokens: Callable[[str], int],
) -> list[Hit]:
    """The passages to show for `question`: the best sentences of `hits` within `budget` tokens.

    Each returned Hit is a span of one retrieved chunk (its `text`, `start` and `end` narrowed to
    the kept sentences; source, page, chunk id and score kept), best first. The top
    sentence is always kept, even alone over the budget. `budget=None` returns `hits` unchanged.
    """
    if budget is None or not hits:
        return list(hits)
    sentences = score_sentences(question, hits)
    if not sentences:
        return list(hits)
    ranked = sorted(sentences, key=lambda s: (-s.score, s.hit, s.index))
    kept: list[Sentence] = []
    used = 0
    for s in ranked:
        s.tokens = count_tokens(s.text)
        if kept and used + s.tokens > budget:
            continue
        kept.append(s)
        used += s.tokens
    return passages_from(kept, hits)


def passages_from(kept: list[Sentence], hits: list[Hit]) -> list[Hit]:
    """One Hit per run of touching kept sentences of a chunk, the run with the best sentence first
    (a model reads [1] first, and most often answers from it)."""
    kept = sorted(kept, key=lambda s: (s.hit, s.index))
    runs: list[list[Sentence]] = []
    for s in kept:
        if runs and runs[-1][-1].hit == s.hit and runs[-1][-1].index == s.index - 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    runs.sort(key=lambda run: -max(s.score for s in run))
    out = []
    for run in runs:
        h = hits[run[0].hit]
        s, e = run[0].start, run[-1].end
        out.append(replace(h, rank=len(out) + 1, text=h.text[s:e], start=h.start + s, end=h.start + e))
    return out
