"""What kind of value a question asks for, and whether an answer is one.

Why: the reasoning step composes its answer from the calculator's value, so a wrong expression
gives a confident number of the wrong kind: a price for "how long does a 2-pack last", a length for
"which mower covers 2,000 m²", a number of months for "until when". A direct answer reads the
passage instead of computing, and gets such questions right more often. So a computed answer whose
kind does not fit the question's is not used; the question is answered directly instead
(Pipeline.answer). The cues are general (question words, units, date forms), both languages.
"""

from __future__ import annotations

import re

# "which mower", "哪款割草机": the answer names a thing (a model, a code, a plan), not a quantity
_ASKS_NAME = {
    "en": re.compile(r"\bwhich (?:\w+ ){0,2}(?:model|mower|robot|vacuum|product|code|plan|version)s?\b"
                     r"|\bwhat (?:model|error code|code|product)\b", re.IGNORECASE),
    "zh": re.compile(r"哪(?:一)?款|哪(?:一)?(?:个|种)(?:型号|产品|故障代码|代码|版本|套餐|机型)|什么型号|什么代码"),
}
_ASKS_DATE = {
    "en": re.compile(r"\b(?:what|which) date\b|\bon what day\b|\buntil (?:what|when)\b|\bby when\b|^\s*when\b"
                     r"|\buntil what\b", re.IGNORECASE),
    "zh": re.compile(r"哪天|哪一天|几号|几月几日|什么时候|何时|哪一年哪个月|到什么时候|截止到?哪"),
}
_ASKS_SPAN = {
    "en": re.compile(r"\bhow long\b|\bhow many (?:minutes|hours|days|weeks|months|years)\b", re.IGNORECASE),
    "zh": re.compile(r"多久|多长时间|几个月|几天|多少天|几分钟|多少分钟|几小时|多少小时|几年|多少个月"),
}
_DATE = re.compile(r"\d{4}\s*年|\d{1,2}\s*月\s*\d{1,2}\s*[日号]|\d{4}-\d{1,2}-\d{1,2}"
                   r"|\b(?:January|February|March|April|May|June|July|August|September|October|November|December)\b",
                   re.IGNORECASE)
_SPAN = re.compile(r"\d[\d,.]*\s*(?:(?:working |business |calendar )?(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|"
                   r"weeks?|months?|years?)|秒|分钟|小时|个?工作日|天|周|个月|月|年)"
                   r"|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|eighteen|twenty)\s+"
                   r"(?:minutes?|hours?|days?|weeks?|months?|years?)\b|[一两二三四五六七八九十]+\s*(?:个月|年|天|周)",
                   re.IGNORECASE)
_FIRST_CLAUSE = re.compile(r"[。；;]|\.\s|，?根据")
_NUMBER_ONLY = re.compile(r"^[\s$¥€£]*-?\d[\d,.]*\s*[^\s\d\[]{0,6}\s*(?:\[\d+\]\s*)*[。.]?$")


def asked_kind(question: str, lang: str) -> str | None:
    """"name", "date" or "span" when the question asks for one of them, else None (any value)."""
    lang = "zh" if lang == "zh" else "en"
    if _ASKS_NAME[lang].search(question):
        return "name"
    if _ASKS_DATE[lang].search(question):
        return "date"
    if _ASKS_SPAN[lang].search(question):
        return "span"
    return None


def fits_kind(answer: str, kind: str | None) -> bool:
    """Whether `answer` can be the kind of value asked for: a name is more than a number with a
    unit, a date has a year, a month name or a day of a month, a span a number of time units."""
    if kind is None:
        return True
    answer = _FIRST_CLAUSE.split(answer, 1)[0]  # "18 个月。根据资料 [1]，2025 年 1 月 1 日…": the answer, not its gloss
    if kind == "name":
        return not _NUMBER_ONLY.match(answer)
    if kind == "date":
        return bool(_DATE.search(answer))
    return bool(_SPAN.search(answer))
