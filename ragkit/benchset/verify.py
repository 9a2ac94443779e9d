"""The filters a drafted item passes before it enters the bench, each a named reason to drop it
(counted in the draft's summary, in the order they run):

    no_question      the model's text held no question (and the rules had none)
    unsupported      a gold answer (or a computation's operand) is not in its cited chunk, or the
                     recorded computation does not give the answer
    contains_answer  the question gives its answer away (for a conflict: any document's value; for a
                     computation: every operand, "extended from 12 to 18 months: by how much?")
    needs_context    the question points at a passage the reader does not have ("this table")
    garbled          an English question with its asking words where the answer was cut out of a
                     noun phrase ("The Dock Pro's how many L dust bag lasts about 60 days?")
    length           question or answer too short or too long (ragkit.sftdata.filters.LIMITS)
    two_asked        a question asking for two values joined by and/or ("低于多少度或高于多少度"): the
                     gold is one value
    ambiguous        a question about a table cell that names its row only by words another row of the
                     table shares ("the blade kit" beside two blade-kit rows)
    inconsistent     a model question asking for another kind of thing than the answer, or about
                     words none of the cited chunks use; a logic item's question that asks for no
                     difference, change or total ("What is the maximum slope?" for the 5% between
                     two slopes), or another item's question that does; a total's or a
                     comparison's question that names the documents instead of the things
    duplicate, near_duplicate   the same question as, or ≥ 0.8 alike to, one already in the bench
    closed_book      the base model answers it without the documents (only with the check on)

The SFT data filters (ragkit.sftdata.filters) are reused, so a bench item and a training pair are held
to the same rules.
"""

from __future__ import annotations

import re

from ..eval.metrics import contains_answer
from ..lang import tokenize_for_search
from ..sftdata import filters
from ..sftdata.paraphrase import clean_title
from .pools import Candidate, recompute

REASONS = ("no_question", "unsupported", "contains_answer", "needs_context", "garbled", "two_asked", "ambiguous", "length",
           "inconsistent",
           "duplicate", "near_duplicate", "closed_book")


def supported(c: Candidate) -> bool:
    """Every fact's answer stands in its chunk, and a computation gives the candidate's answer."""
    if not all(filters.supported(f.answer, f.chunk_text) for f in c.facts):
        return False
    return recompute(c) if c.compute else filters.supported(c.answer, c.facts[0].chunk_text)


def check(question: str, c: Candidate, writer: str, seen: filters.NearDupIndex) -> str | None:
    """The first reason to drop `question` for candidate `c`, or None when it passes."""
    if not question.strip():
        return "no_question"
    if not supported(c):
        return "unsupported"
    given = [c.answer] + ([f.answer for f in c.facts[1:]] if c.cell == "knowledge/hard" else [])
    if any(filters.contains_answer(question, a) for a in given):
        return "contains_answer"
    if c.compute and len(c.facts) >= 2 and all(filters.contains_answer(question, f.answer) for f in c.facts):
        return "contains_answer"  # it states every operand: nothing is left to find in the documents
    if filters.needs_context(question, c.lang):
        return "needs_context"
    if c.lang == "en" and _GARBLED.search(question):
        return "garbled"
    if _TWO_ASKED[c.lang].search(filters.strip_anchor(question)):
        return "two_asked"
    if any(names_shared_row(question, f) for f in c.facts):
        return "ambiguous"
    if not filters.length_ok(question, c.answer, c.lang):
        return "length"
    text = "\n".join(dict.fromkeys(f.chunk_text for f in c.facts))
    kind = c.facts[0].kind if not c.compute else "quantity"
    if writer == "model" and filters.inconsistent(question, kind, text, c.lang, c.answer):
        return "inconsistent"
    if bool(c.compute) != asks_computation(question, c.lang):
        return "inconsistent"
    if c.compute and (c.compute.get("total") or c.compute.get("compare")) \
            and any(f.title and clean_title(f.title) in question for f in c.facts):
        return "inconsistent"  # "what do 《X 使用说明》 and 《Y 公告》 cost together?": documents, not things
    hit = seen.match(filters.strip_anchor(question))
    return hit[0] if hit else None


def table_rows(text: str) -> list[str]:
    """The lines of a table in `text` (markdown, or a converted table's 'a | b' lines), header and
    separator lines excepted."""
    return [line for line in text.splitlines() if line.count("|") >= 1 and not set(line) <= set("|-: ")]


def names_shared_row(question: str, f) -> bool:
    """A question about the table cell `f` whose words from `f`'s row all stand in another row too
    ("What is the price of the blade kit?" for "Blade kit, 9 blades | M3 | 24.99" beside "Blade kit,
    12 blades | M5 | 29.99"): the reader cannot tell which row is asked about."""
    row = f.meta.get("row")
    if not row:
        return False
    lines = table_rows(f.chunk_text)
    own = next((line for line in lines if row in line), None)
    if own is None:
        return False
    named = words(filters.strip_anchor(question)) & words(own)  # numbers count: "9 blades" vs "12 blades"
    return bool(named) and any(named <= words(line) for line in lines if line != own)


def words(text: str) -> set[str]:
    return set(tokenize_for_search(text))


# two asking words joined by and/or: two values asked for ("低于多少度或高于多少度", "how many … and how many")
_TWO_ASKED = {
    "en": re.compile(r"\b(?:how (?:many|much|long)|what)\b[^?]*\b(?:and|or)\b[^?]*\b(?:how (?:many|much|long)|what)\b",
                     re.IGNORECASE),
    "zh": re.compile(r"(?:多少|几)[^，。？?]*?(?:或|和|及|还是)[^，。？?]*?(?:多少|几)"),
}

# an article or a possessive right before the asking words: the answer was cut out of a noun phrase
_GARBLED = re.compile(r"(?:\b(?:the|a|an)|'s)\s+(?:how (?:many|much|long)|what)\b", re.IGNORECASE)

_COMPUTATION = {
    "en": re.compile(r"\bby how (?:much|many)\b|\bhow (?:much|many) (?:more|less|fewer|longer|shorter|higher|lower|"
                     r"greater|larger|smaller|bigger|heavier|lighter|faster|slower|cheaper|dearer)\b|\bdifference\b|"
                     r"\bexceed|\bhow (?:much|many) [^?]{0,60}\bchange|"
                     r"\b(?:in total|altogether|combined|together)\b|\btotal (?:cost|price|amount)\b", re.IGNORECASE),
    "zh": re.compile(r"[多少]多少|相差|差多少|差距|差值|变化|增加了多少|减少了多少|提高了多少|降低了多少|缩短了多少|"
                     r"延长了多少|高出|贵多少|便宜多少|长多少|短多少|大多少|小多少|重多少|轻多少|"
                     r"一共|总共|合计|共计|总计|加起来|总价|共需|共要|共花"),
}


def asks_computation(question: str, lang: str) -> bool:
    """The question asks for a difference, a change or a total ("by how much", "多多少", "相差",
    "together", "一共")."""
    return bool(_COMPUTATION[lang].search(filters.strip_anchor(question)))


def known_closed_book(question: str, answers: list[str], pipeline) -> bool:
    """The base model answers the question right without any document (ragkit.Pipeline, closed
    book): such an item measures nothing the corpus adds. Costs one generation per item."""

    reply = pipeline.answer(question, closed_book=True)
    return bool(contains_answer(reply.answer, answers))
