"""Evidence selection: the sentences of the retrieved chunks that bear on the question, within a
token budget, between retrieval and the prompt.

Why: on a CPU the cost of an answer is the prompt (llama.cpp reads a 1.5B model's prompt at tens of
tokens a second on two cores, and generating a short answer costs little), and most of a prompt of
whole chunks is text the answer does not use; a small model also reads a fact, and does arithmetic
on it, better from a few sentences than from several hundred tokens of loosely related text.
The default budget was chosen by measurement (evals/answer_settings.py for accuracy,
evals/evidence_coverage.py for how often the answer survives selection; results in
evals/results/answer-settings/).

How: every retrieved chunk is split into sentences (Chinese and English sentence ends, and line
breaks, so a table row or list item is a sentence) with their character offsets. Each sentence is
scored lexically against the question (idf-weighted share of the question's words it holds, words
from `lang.tokenize_for_search`, jieba for Chinese, English words cut to their first five letters
so that "weigh" meets "Weight" and "charge" meets "charging"; a table row carries its header's
words, an FAQ answer its question's), plus a share of its neighbours'
scores (the fact often sits in the sentence after the one that names the subject), blended with
its chunk's retrieval score; a question that asks for an explanation (`asks_explanation`: what
something means, what to do) gets a larger budget from the Pipeline; a question that names several
things ("the M3 and the Care+ plan") is scored part by part (`parts`, from ragkit.reason.route.sub_queries), a sentence keeping its best
match, so each thing's fact can win a place. The best sentences are kept while they fit `budget` tokens, a new
passage's header ("[2] (source: …)") counted in; a kept table row brings its table's header row
(a price without its column names is a bare number); a sentence already kept from an
overlapping chunk or a repeated paragraph is not kept twice. A chunk's kept sentences form one passage:
touching ones are one span of the document, others are joined by " … ". Its `start` and `end` are
those of the first and last kept sentence, so an `[n]` citation maps to its source, page and the
selected span. Passages are ordered by their best sentence, so [1] is the most relevant.

`budget=None` (context_tokens 0) gives the whole chunks, as before this module existed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .lang import tokenize_for_search
from .types import Hit

# A sentence ends after 。！？；… or . ! ? ; followed by a space, or at a line break; closing quotes
# and brackets stay with the sentence they close.
_SENTENCE_END = re.compile(r"(?:[。！？；…]+[”’」』）)]*|[.!?;]+[\"')\]]*(?=\s)|\n)\s*")

STEM = 5  # English words are compared by their first letters (truncation stemming)
GAP = " … "  # between the non-touching kept sentences of one chunk
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


# A question that asks what something means, what to do, or what to use or avoid wants an
# explanation: a sentence or two, often an FAQ's answer after its question, rather than one value.
# Such questions get EXPLAIN_CONTEXT_FACTOR times the evidence budget (Pipeline.evidence): at 300
# tokens instead of 200 for every question the sample bench's common questions gained 13.9 points
# while its value questions lost 8.1 (evals/results/answer-settings/sample300.json), so only this
# kind gets more; the rule flags 15 of its 177 questions, and 11 of 100 CMRC trial questions
# (results of the rule in evals/results/answer-settings/sample.json and cmrc.json).
_EXPLAIN = {
    "en": re.compile(r"\bwhat (?:does|do|did) .{1,60}? mean\b|\bwhat (?:is|are) .{1,40}? for\b"
                     r"|\bwhat (?:should|must|can|do|shall) (?:i|you|we|one)\b|\bhow (?:do|should|can|to) (?:i|you|we)\b"
                     r"|\bhow to\b|\bwhere (?:do|can|should) (?:i|you|we) find\b|\bwhy\b|\bwhat happens\b",
                     re.IGNORECASE),
    "zh": re.compile(r"什么意思|啥意思|怎么回事|怎么理解|如何理解|什么故障|什么问题|怎么办|怎么处理|如何处理|"
                     r"怎么做|怎么弄|怎样|如何|为什么|应该用什么|该用什么|不能用什么|在哪里?(?:找|看)"),
}
EXPLAIN_CONTEXT_FACTOR = 1.5


def asks_explanation(question: str, lang: str) -> bool:
    """Whether `question` asks for an explanation rather than a value (see _EXPLAIN)."""
    return bool(_EXPLAIN["zh" if lang == "zh" else "en"].search(question))


# Words that ask rather than say ("how long", 多长时间): they match FAQ questions, not answers.
ASKING = frozenset("""long much many often does mean 多长时间 多长 多久 多大 多高 多重 多远 多少钱 几个 几天 几档
    哪个 哪些 哪里 哪天 什么 为什么 怎么 怎么办 如何 是否 是不是""".split())


def terms(text: str) -> set[str]:
    """The words a sentence is matched by: search tokens, Latin words cut to STEM letters."""
    return {w[:STEM] if w.isascii() and w.isalpha() else w for w in tokenize_for_search(text)}


def is_faq_question(text: str) -> bool:
    """A line that asks ("**What does E07 mean?**", "### 5. 下雨天能割草吗？"): an FAQ's question."""
    return text.strip().strip("*#").strip().endswith(("?", "？"))


def is_table_row(text: str) -> bool:
    """A line of a table: cells between at least two '|' (markdown, or a converted HTML table)."""
    return text.count("|") >= 2


def _idf(docs: list[set[str]]) -> Callable[[str], float]:
    n = len(docs)
    df = Counter(w for d in docs for w in d)
    return lambda w: math.log(1 + (n - df.get(w, 0) + 0.5) / (df.get(w, 0) + 0.5))


def score_sentences(question: str, hits: list[Hit], parts: Sequence[str] = ()) -> list[Sentence]:
    """Every sentence of `hits`, scored against `question` (see the module docstring); with `parts`
    (one query per thing the question names) a sentence scores its best match against any of them."""
    sentences = [
        Sentence(i, j, s, e, h.text[s:e])
        for i, h in enumerate(hits)
        for j, (s, e) in enumerate(split_sentences(h.text))
    ]
    if not sentences:
        return []
    words = [terms(s.text) for s in sentences]
    by_place = {(s.hit, s.index): s for s in sentences}
    own = list(words)
    for k, s in enumerate(sentences):
        header = table_header(s, by_place)
        if header:  # a table cell means what its column header says
            words[k] = words[k] | terms(header[0].text)
        elif k and sentences[k - 1].hit == s.hit and is_faq_question(sentences[k - 1].text):
            words[k] = words[k] | own[k - 1]  # an FAQ's answer is about what its question asks
    idf = _idf(words)
    lexical = [0.0] * len(sentences)
    for query in dict.fromkeys([question, *parts]):
        q_words = terms(query) - ASKING
        total = sum(idf(w) for w in q_words) or 1.0
        lexical = [max(best, sum(idf(w) for w in q_words & ws) / total) for best, ws in zip(lexical, words)]
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
    parts: Sequence[str] = (),
) -> list[Hit]:
    """The passages to show for `question`: the best sentences of `hits` within `budget` tokens.

    Each returned Hit is a span of one retrieved chunk (its `text`, `start` and `end` narrowed to
    the kept sentences; source, page, chunk id and score kept), best first. The top
    sentence is always kept, even alone over the budget. A sentence whose text is already kept
    (overlapping chunks, a paragraph repeated in two documents) is not kept twice. `parts`: see
    score_sentences. `budget=None` returns `hits` unchanged.
    """
    if budget is None or not hits:
        return list(hits)
    sentences = score_sentences(question, hits, parts)
    if not sentences:
        return list(hits)
    ranked = sorted(sentences, key=lambda s: (-s.score, s.hit, s.index))
    headers = [count_tokens(f"[{len(hits)}] (source: {h.source})\n") for h in hits]
    by_place = {(s.hit, s.index): s for s in sentences}
    kept: dict[tuple[int, int], Sentence] = {}
    said: set[str] = set()  # the kept sentences' texts, whitespace-normalised
    used = 0
    for s in ranked:
        text = " ".join(s.text.split())
        if (s.hit, s.index) in kept or text in said:
            continue
        group = [s, *table_header(s, by_place)]
        group = [g for g in group if (g.hit, g.index) not in kept]
        cost = sum(count_tokens(g.text) for g in group)
        if not any(h == s.hit for h, _ in kept):
            cost += headers[s.hit]  # the first sentence of a chunk also costs its passage header
        if kept and used + cost > budget:
            continue
        kept.update({(g.hit, g.index): g for g in group})
        said.add(text)
        used += cost
    return passages_from(list(kept.values()), hits)


def table_header(s: Sentence, by_place: dict[tuple[int, int], Sentence]) -> list[Sentence]:
    """The header row (the first row of the table in the chunk) and its |---| rule, for a row
    sentence; a chunk that starts inside a table gives its first row in the chunk instead."""
    if not is_table_row(s.text):
        return []
    first = s.index
    while (s.hit, first - 1) in by_place and is_table_row(by_place[(s.hit, first - 1)].text):
        first -= 1
    if first == s.index or _is_rule(s.text):
        return []
    header, rule = by_place[(s.hit, first)], by_place.get((s.hit, first + 1))
    if rule is not None and _is_rule(rule.text):
        return [header, rule] if first + 1 < s.index else [header]
    return [header]


def _is_rule(text: str) -> bool:
    return set(text) <= set("|-: ")


def passages_from(kept: list[Sentence], hits: list[Hit]) -> list[Hit]:
    """One Hit per chunk with kept sentences, the chunk with the best sentence first (a model reads
    [1] first, and most often answers from it). Touching sentences stay one span of the text;
    others are joined by GAP."""
    chunks: dict[int, list[Sentence]] = {}
    for s in sorted(kept, key=lambda s: (s.hit, s.index)):
        chunks.setdefault(s.hit, []).append(s)
    order = sorted(chunks, key=lambda i: -max(s.score for s in chunks[i]))
    out = []
    for i in order:
        h, run = hits[i], chunks[i]
        pieces, start = [], run[0].start
        for a, b in zip(run, run[1:]):
            if b.index != a.index + 1:
                pieces.append(h.text[start:a.end])
                start = b.start
        pieces.append(h.text[start:run[-1].end])
        out.append(replace(h, rank=len(out) + 1, text=GAP.join(pieces), start=h.start + run[0].start,
                           end=h.start + run[-1].end))
    return out
