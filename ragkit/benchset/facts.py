"""Facts of a corpus, answer first: every candidate answer span of every chunk (ragkit.sftdata.spans),
with what a bench needs to relate them across chunks and documents.

A `Fact` is one span in one chunk: the answer, the sentence (or "row | column: value") it sits in,
that sentence with the answer masked (two facts with near-identical masked statements and different
values are a conflict; with the same value, a recurring fact), the number and unit when the answer
is a quantity (for computations), whether the sentence carries a condition (medium), and whether a
table cell's header row sits in an earlier chunk of the document (hard: it needs two chunks).

Documents are ordered by `doc_order`: the first date in the document's opening lines, else a
version or year in its file name or title. "Newer wins" needs that order; a pair of documents
without one yields no conflict item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..lang import detect_language, tokenize_for_search
from ..sftdata.filters import char_ngrams, plain_text
from ..sftdata.paraphrase import template_question
from ..sftdata.patterns import MONTHS
from ..sftdata.spans import GENERIC_HEAD, Span, candidate_spans, strip_paren

ASKABLE = {"value", "cell", "money", "percent", "quantity", "duration", "temperature", "date", "year", "phone",
           "email", "count", "name"}  # FAQ answers and lists are too long to score as bench answers
NUMERIC = {"value", "cell", "money", "percent", "quantity", "duration", "temperature", "count"}
_NUM = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\d])")
_CONDITION = {
    "en": re.compile(r"\b(?:if|when|after|before|unless|only|within|during|while|once|until|"
                     r"at least|at most|up to|in \w+ mode|for \w+ models?|except)\b", re.IGNORECASE),
    "zh": re.compile(r"如果|若|当|(?<![小及])时|(?<![售之然])后|之前|以前|仅|只有|以内|以上|以下|模式|期间|除|超过"),
}
MASK = "□"
QUALIFIER = re.compile(r"^(?:about|approximately|approx\.|around|roughly|up to|at least|at most|over|under|above|below|"
                        r"every|more than|less than|约|大约|每|最多|至少|超过|不超过|高于|低于)\s*", re.IGNORECASE)


@dataclass
class Fact:
    """One candidate answer in one chunk, and what relates it to the rest of the corpus."""

    answer: str
    kind: str
    lang: str
    source: str
    chunk_id: str
    title: str | None  # the document's title (questions are anchored to it)
    context: str  # the sentence, "key: value" line or "row | column: value" holding the answer
    marked: str  # the context with the answer marked, for the model
    question: str | None  # the rule-written question, when the rules can phrase one
    chunk_text: str
    start: int = 0  # offsets of the answer in the chunk text
    end: int = 0
    meta: dict = field(default_factory=dict)
    unit_index: int = 0  # which unit (sentence, table, line) of the chunk holds it
    conditional: bool = False
    split_header: bool = False
    number: float | None = None
    unit: str = ""
    decimals: int = 0

    @property
    def masked(self) -> str:
        return self.context.replace(self.answer, MASK, 1) if self.answer in self.context else self.context

    @property
    def statement(self) -> str:
        """What the fact says about what, value masked: a table cell is its row (and its column,
        unless the column names a product or is a generic "value"), a key-value line its key."""
        if self.kind == "cell":
            col = self.meta.get("col", "")
            plain = not _IDENT.search(col) and col.lower() not in GENERIC_HEAD
            return f"{self.meta.get('row', '')} {col if plain else ''} {MASK}"
        if self.kind == "value":
            return f"{self.meta.get('key', '')} {MASK}"
        return self.masked

    @property
    def key(self) -> str:
        return f"{self.chunk_id}:{self.answer}"


def answer_key(text: str) -> str:
    """An answer compared across chunks: lower-case, half-width, letters and digits only."""
    return "".join(ch for ch in plain_text(text) if ch.isalnum())


def parse_quantity(answer: str) -> tuple[float, str, int] | None:
    """(value, unit, decimals) of an answer holding exactly one number and a unit ("USD 24.99",
    "65 minutes", "2,599 元"); None for ranges, bare numbers, codes and dates."""
    nums = _NUM.findall(answer)
    if len(nums) != 1 or re.search(r"\d\s?(?:–|-|~|to|至|到)\s?\d", answer):
        return None
    unit = plain_text(QUALIFIER.sub("", _NUM.sub(" ", answer, count=1).strip())).strip(" .,:;")
    if not unit or re.search(r"\d", unit) or len(unit) > 20:
        return None
    raw = nums[0].replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    return value, unit, len(raw.split(".")[1]) if "." in raw else 0


def extract_facts(chunks, titles: dict[str, str]) -> list[Fact]:
    """Every askable fact of every chunk, in corpus order. Chunks of one document share table
    headers (a table cut by the chunker keeps its column names) and skip their overlap."""
    facts: list[Fact] = []
    covered: dict[str, int] = {}
    headers: dict[str, dict] = {}
    for chunk in chunks:
        lang = detect_language(chunk.text)
        skip = max(0, covered.get(chunk.source, 0) - chunk.start)
        covered[chunk.source] = max(covered.get(chunk.source, 0), chunk.end)
        spans = candidate_spans(chunk.text, lang, chunk.title, skip_before=skip,
                                headers=headers.setdefault(chunk.source, {}))
        for sp in spans:
            if sp.kind in ASKABLE:
                facts.append(_fact(sp, chunk, lang, titles.get(chunk.source)))
    return facts


def _fact(sp: Span, chunk, lang: str, title: str | None) -> Fact:
    answer = sp.answer
    if sp.kind in ("value", "cell") and strip_paren(answer):  # "40% (raised in firmware 2.1)" → "40%"
        answer = strip_paren(answer)
    f = Fact(answer, sp.kind, lang, chunk.source, chunk.chunk_id, title, sp.context, sp.marked,
             template_question(sp), chunk.text, sp.start, sp.end, dict(sp.meta), sp.unit)
    if sp.kind == "cell":
        f.split_header = sp.meta.get("col", "") not in chunk.text  # the header row is in an earlier chunk
    else:
        f.conditional = bool(_CONDITION[lang].search(sp.context.replace(sp.answer, " ")))
    if sp.kind in NUMERIC and (q := parse_quantity(sp.answer)):
        f.number, f.unit, f.decimals = q
    return f


# ------------------------------------------------------------------------------------------ documents
_DATE_EN = re.compile(rf"\b(\d{{4}})-(\d{{2}})(?:-(\d{{2}}))?\b|(?:(\d{{1,2}}) )?({MONTHS}) (?:\d{{1,2}}, )?(\d{{4}})")
_DATE_ZH = re.compile(r"(\d{4})\s?年\s?(\d{1,2})\s?月(?:\s?(\d{1,2})\s?日)?|(\d{4})-(\d{2})(?:-(\d{2}))?")
_MONTH_NO = {m: i for i, m in enumerate(MONTHS.split("|"), 1)}


def first_date(text: str) -> tuple[int, int, int] | None:
    """The first full date (year and month at least) in `text`, as (year, month, day)."""
    for m in _DATE_EN.finditer(text):
        if m.group(1):
            return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        return int(m.group(6)), _MONTH_NO[m.group(5)], int(m.group(4) or 0)
    for m in _DATE_ZH.finditer(text):
        g = m.groups()
        y, mo, d = (g[0], g[1], g[2]) if g[0] else (g[3], g[4], g[5])
        return int(y), int(mo), int(d or 0)
    return None


_DATE_LINE = re.compile(r"(?i)released|release date|effective|updated|published|edition|issued|valid from|as of|"
                        r"发布|生效|更新|版本|印发|执行")


def doc_order(source: str, text: str, title: str | None) -> tuple:
    """What orders a document in time: (its date, or None; a version or year in its name or title,
    or None). Its date is the first date on a line that says released / effective / updated /
    edition (发布, 生效, 更新 ...), else the first date in its opening 400 characters."""
    date = next((d for line in text.splitlines() if _DATE_LINE.search(line) and (d := first_date(line))), None)
    date = date or first_date(text[:400])
    name = f"{source} {title or ''}"
    v = re.search(r"(?<![\d.])(\d+(?:\.\d+)+)(?![\d.])", re.sub(r"\.(?:md|txt|html?|pdf|docx)\b", "", name))
    year = re.search(r"(?<!\d)((?:19|20)\d{2})(?!\d)", name)
    version = tuple(int(x) for x in v.group(1).split(".")) if v else ((int(year.group(1)),) if year else None)
    return date, version


def newer(a: tuple, b: tuple) -> int:
    """1 when document order `a` is newer than `b`, -1 when older, 0 when it cannot be told."""
    for i in (0, 1):
        if a[i] is not None and b[i] is not None and a[i] != b[i]:
            return 1 if a[i] > b[i] else -1
    return 0


# ------------------------------------------------------------------------------------------ relating facts
_IDENT = re.compile(r"[A-Za-z]+\d[\w.-]*|\d+[A-Za-z][\w-]*")  # model and error codes: M3, V7, E07, 2K


def subject_codes(f: Fact) -> frozenset[str]:
    """The product and error codes a statement is about: in its sentence and its document's title."""
    return frozenset(c.upper() for c in _IDENT.findall(f"{f.masked} {f.title or ''}"))


def same_subject(a: Fact, b: Fact) -> bool:
    """Two statements about the same thing: their codes (M3, V7, E07) agree."""
    return subject_codes(a) == subject_codes(b)


def topic_words(text: str) -> set[str]:
    """The words of a statement that say what it is about (numbers and one-letter words out)."""

    return {w for w in tokenize_for_search(text) if not re.fullmatch(r"[\d.,]+", w) and (len(w) > 1 or not w.isascii())}


def word_jaccard(a: str, b: str) -> float:
    wa, wb = topic_words(a), topic_words(b)
    return len(wa & wb) / len(wa | wb) if wa and wb else 0.0


class StatementIndex:
    """Facts by the n-grams of their masked statements: near-identical statements found quickly."""

    def __init__(self, facts: list[Fact]):
        self.facts = facts
        self.grams = [char_ngrams(f.statement) for f in facts]
        self.postings: dict[str, list[int]] = {}
        for i, g in enumerate(self.grams):
            for gram in g:
                self.postings.setdefault(gram, []).append(i)

    def similar(self, i: int, threshold: float, limit: int = 30) -> list[tuple[int, float]]:
        """(index, Jaccard) of the facts whose masked statement is at least `threshold` alike."""
        from collections import Counter

        g = self.grams[i]
        shared = Counter(j for gram in g for j in self.postings.get(gram, ()) if j != i)
        out = []
        for j, n in shared.most_common(limit):
            sim = n / (len(g) + len(self.grams[j]) - n)
            if sim >= threshold:
                out.append((j, sim))
        return out
