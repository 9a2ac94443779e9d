"""Quality filters for generated QA pairs, and the character n-gram similarity they share.

Each filter is a plain function that answers "drop this pair?" for one reason, so the summary of
`ragkit build-sft-data` can count drops per reason (FILTERS lists them in the order they run):

- unsupported      the answer is not in the source chunk (verbatim, or ≥ 80% of its words)
- contains_answer  the question gives its own answer away
- needs_context    the question only makes sense next to the chunk ("this passage", "上文", "It ...")
- length           question or answer too short or too long (LIMITS)
- inconsistent     a model-written question that asks for another kind of thing than the answer
                   (a "who" question for a percentage) or talks about words the chunk never uses
- duplicate        the same question (after normalising case, width, spaces, punctuation)
- near_duplicate   character n-gram Jaccard ≥ NEAR_DUP (0.8) with a question kept earlier
- bench_leak       near-duplicate of a bench question: Jaccard ≥ LEAK_JACCARD (0.5), or ≥ 80% of the
                   bench question's n-grams inside a generated one at most twice as long
                   (LEAK_CONTAINMENT); checked with and without the document anchor, against the
                   bench question and every form in its `fingerprints` (a drafted bench records
                   each question written for an item, so an edited item still guards its first
                   wording). Deliberately loose: "割草高度" vs "割草宽度" counts as a leak, and
                   losing such a pair costs little

N-grams are character 3-grams for English and 2-grams for Chinese (a Chinese character carries
about as much as three Latin letters), over the normalised text with spaces and punctuation out.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

from ..errors import UsageError
from ..lang import has_cjk, tokenize_for_search
from .spans import strip_paren, value_kind

FILTERS = ("unsupported", "contains_answer", "needs_context", "length", "inconsistent", "duplicate",
           "near_duplicate", "bench_leak")
NEAR_DUP = 0.8
LEAK_JACCARD = 0.5
LEAK_CONTAINMENT = 0.8
# (min, max) characters: questions, short answers, long outputs (explain/list/FAQ answers).
LIMITS = {
    "en": {"question": (12, 260), "answer": (1, 320), "long": (10, 900)},
    "zh": {"question": (5, 120), "answer": (1, 160), "long": (4, 450)},
}


def plain_text(text: str) -> str:
    """Lower-case, half-width, markdown-free, single-spaced text for comparing questions (not
    ragkit.eval.metrics.normalize, which also drops articles and punctuation to score answers)."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"[*_`]", "", t)
    return " ".join(t.split())


def _squash(text: str) -> str:
    """Normalised text with every space and punctuation mark removed ("1,500 m²" → "1500m2")."""
    return "".join(ch for ch in plain_text(text) if ch.isalnum())


def char_ngrams(text: str, n: int | None = None) -> set[str]:
    s = _squash(text) if has_cjk(text) else re.sub(r"[^\w ]", "", plain_text(text))
    n = n or (2 if has_cjk(text) else 3)
    if len(s) <= n:
        return {s} if s else set()
    return {s[i : i + n] for i in range(len(s) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


# ------------------------------------------------------------------------------------------ filters
def content_words(text: str) -> set[str]:
    """The words of `text` that carry meaning (jieba words for Chinese, no one-letter ASCII words)."""
    return {w for w in tokenize_for_search(text) if len(w) > 1 or not w.isascii()}


def supported(answer: str, source: str) -> bool:
    """The answer appears in the source chunk: verbatim after normalising, else ≥ 80% of its words."""
    if _squash(answer) and _squash(answer) in _squash(source):
        return True
    words = content_words(answer)
    return bool(words) and len(words & content_words(source)) / len(words) >= 0.8


def _answer_parts(answer: str) -> list[str]:
    """The answer and its main parts ("USD 199 / CNY 1,299" → both prices), for leak checks."""
    parts = [answer] + re.split(r"\s*(?:/|、|;|；|，|,\s(?=\D)| and | or |和|或)\s*", answer)
    return [p for p in dict.fromkeys(parts) if (len(_squash(p)) >= 2 or _squash(p).isdigit()) and re.search(r"\w", p)]


_SHORT_QUANTITY = re.compile(r"(\d[\d,.]*)\s*([A-Za-z%]{1,2})")


def contains_answer(question: str, answer: str) -> bool:
    """The question gives the answer (or one of its parts) away."""
    q = _squash(question)
    for part in _answer_parts(answer):
        p = _squash(part)
        if not p:
            continue
        if p.isdigit():  # a bare number counts only as a whole number: "3" is not in "E03"
            if re.search(rf"(?<![\d.,]){re.escape(part.strip())}(?![\d.,]|\s*(?:th|st|nd|rd)\b)", plain_text(question)):
                return True
        elif (m := _SHORT_QUANTITY.fullmatch(part.strip())):  # "3 L", "5%": too short to squash, but a quantity
            if re.search(rf"(?<![\w.,]){re.escape(m[1])}\s*{re.escape(m[2])}(?!\w)", plain_text(question), re.I):
                return True
        elif p in q and (len(p) >= 3 or not p.isascii()):
            return True
    return False


_DEICTIC_EN = re.compile(
    r"\b(?:this|the above|the following|that|the given|the previous)\s+(?:passage|text|document|section|"
    r"paragraph|table|chapter|article|excerpt|context|manual|page|list|sentence|chart|guide|policy|notice|"
    r"firmware|update|version|release|device|product|model)\b|"
    r"\b(?:above|below|mentioned|aforementioned)\s+(?:passage|text|table|section)\b|\baccording to the (?:text|passage)\b|"
    r"\b(?:passage|text|table|section|paragraph|list)\s+(?:above|below)\b",
    re.IGNORECASE,
)
_DEICTIC_ZH = re.compile(r"本文|上文|下文|上表|下表|本节|本段|本章|这段|该段|文中|原文|材料中|资料中|上述|如上|如下|"
                         r"(?<![及或])以上(?!版本)|本(?:说明|手册|政策|指南|公告|文档|版本|固件|产品|条款|协议)|该(?:产品|型号|固件|版本)")
_PRONOUN_START = re.compile(r"^(?:it|its|they|their|this|these|those|he|she|we|you)\b(?!\s+(?:is|takes)\s+\w+\s+to)",
                            re.IGNORECASE)
_PRONOUN_START_ZH = re.compile(r"^(?:它|它们|其|该|此|这|那|他|她)")


def needs_context(question: str, lang: str) -> bool:
    """The question points at the source ("this passage", "上表") or opens with a pronoun whose
    referent was in the chunk ("It resumes after how many minutes?")."""
    core = strip_anchor(question)
    if lang == "zh":
        return bool(_DEICTIC_ZH.search(question) or _PRONOUN_START_ZH.match(core))
    return bool(_DEICTIC_EN.search(question) or _PRONOUN_START.match(core))


def length_ok(question: str, answer: str, lang: str, long_answer: bool = False) -> bool:
    lim = LIMITS[lang]
    qmin, qmax = lim["question"]
    amin, amax = lim["long" if long_answer else "answer"]
    return qmin <= len(question) <= qmax and amin <= len(answer) <= amax


# What a question word asks for, by span kind: a model question asking "who" for a date is wrong.
_ASKS_EN = [
    (re.compile(r"\bwho(?:m|se)?\b", re.IGNORECASE), {"name", "value", "cell", "term", "faq"}),
    (re.compile(r"\bwhat is the name\b|\bwhat is it called\b", re.IGNORECASE), {"name", "value", "cell", "term", "faq"}),
    (re.compile(r"\bwhen\b|\bwhat (?:date|year|month|day)\b|\bwhich (?:date|year|month|day)\b", re.IGNORECASE),
     {"date", "year", "value", "cell", "faq"}),
    # a price column's cell is often a bare number ("24.99"): a quantity
    (re.compile(r"\bhow (?:much|expensive)\b|\bwhat (?:is the )?(?:price|cost|fee)\b", re.IGNORECASE),
     {"money", "quantity", "value", "cell", "faq"}),
    (re.compile(r"\bhow (?:long|many|often|high|large|big|far|heavy|steep|wide|fast|low|tall)\b|"
                r"\bwhat (?:percentage|temperature|range|size)\b", re.IGNORECASE),
     {"duration", "quantity", "count", "percent", "temperature", "value", "cell", "faq"}),
]
_ASKS_ZH = [
    (re.compile(r"谁"), {"name", "value", "cell", "term", "faq"}),
    (re.compile(r"叫什么|名称是|名字是"), {"name", "value", "cell", "term", "faq"}),
    (re.compile(r"什么时候|何时|哪一?年|哪一?天|几月|几号|哪个月|日期"), {"date", "year", "value", "cell", "faq"}),
    (re.compile(r"多少钱|价格|售价|费用"), {"money", "quantity", "value", "cell", "faq"}),
    (re.compile(r"多少|几|多久|多长|多大|多高|多远"),
     {"duration", "quantity", "count", "percent", "temperature", "money", "phone", "value", "cell", "faq"}),
]


# a product or part code as a whole answer: "M3", "V7", "KM3-B09", "M3 / M5"
_CODES = re.compile(r"[A-Za-z]{1,4}-?[A-Za-z]?\d{1,4}[A-Za-z]?(?:\s*(?:/|,|、|和|and)\s*[A-Za-z]{1,4}-?[A-Za-z]?\d{1,4}[A-Za-z]?)*")


def inconsistent(question: str, kind: str, source: str, lang: str, answer: str = "") -> bool:
    """For model-written questions: the question word does not fit the answer's kind, or fewer
    than 60% of the question's content words occur in the chunk (it talks about something else).
    A table cell or value that is a code ("M3") is of kind "code", which no price, time or amount
    question asks for ("What is the price of the blade kit?" with the gold "M3" from the Fits column)."""
    if kind in ("cell", "value") and answer:  # "895 g" in a table cell is still a quantity
        kind = value_kind(strip_paren(answer), lang) if value_kind(strip_paren(answer), lang) != "value" else kind
        if _CODES.fullmatch(strip_paren(answer).strip()):
            kind = "code"
    rules = _ASKS_ZH if lang == "zh" else _ASKS_EN
    core = strip_anchor(question)
    for rx, kinds in rules:
        if rx.search(core):
            if kind not in kinds:
                return True
            break
    words = content_words(core) - _QUESTION_WORDS
    if not words:
        return True
    return len(words & content_words(source)) / len(words) < 0.6


_QUESTION_WORDS = {"what", "which", "who", "whom", "whose", "when", "where", "why", "how", "much", "many", "long", "often", "does", "did", "do", "is", "are", "was", "were", "can", "could", "should", "would", "will", "must", "high", "large", "什么", "哪个", "哪些", "哪一", "多少", "几", "谁", "何时", "怎么", "如何", "是否", "吗", "呢", "请问"}


def looks_like_question(text: str, lang: str) -> bool:
    t = text.strip()
    if lang == "zh":
        return t.endswith(("？", "?")) and has_cjk(t)
    return t.endswith("?") and len(t.split()) >= 3 and not has_cjk(t)


# ------------------------------------------------------------------------------------------ anchors
_ANCHOR = re.compile(r"^(?:according to|as stated in|based on|in) [“\"][^”\"]+[”\"], |^(?:根据|按照|在)?《[^》]+》(?:中|里|的说明)?[，,]?",
                     re.IGNORECASE)


def strip_anchor(question: str) -> str:
    """The question without its leading document anchor ('According to "X", ' / '根据《X》，')."""
    q = _ANCHOR.sub("", question.strip(), count=1)
    return q[:1].upper() + q[1:] if q and q[0].isascii() else q


# ------------------------------------------------------------------------------------------ duplicates
class NearDupIndex:
    """Questions kept so far; `match` finds an exact or near duplicate (Jaccard ≥ threshold)."""

    def __init__(self, threshold: float = NEAR_DUP):
        self.threshold = threshold
        self.exact: dict[str, int] = {}
        self.grams: list[set[str]] = []
        self.postings: dict[str, list[int]] = {}

    def match(self, text: str) -> tuple[str, int] | None:
        """("duplicate" | "near_duplicate", index of the earlier question), or None."""
        key = _squash(text)
        if key in self.exact:
            return "duplicate", self.exact[key]
        g = char_ngrams(text)
        shared = Counter(i for gram in g for i in self.postings.get(gram, ()))
        for i, n in shared.most_common(20):
            if n / (len(g) + len(self.grams[i]) - n) >= self.threshold:
                return "near_duplicate", i
        return None

    def add(self, text: str) -> int:
        i = len(self.grams)
        g = char_ngrams(text)
        self.grams.append(g)
        self.exact.setdefault(_squash(text), i)
        for gram in g:
            self.postings.setdefault(gram, []).append(i)
        return i


class BenchGuard:
    """Bench questions a generated question must not resemble (the leakage guard)."""

    def __init__(self, questions: list[str], jaccard_min: float = LEAK_JACCARD, containment_min: float = LEAK_CONTAINMENT):
        self.questions = questions
        self.grams = [char_ngrams(q) for q in questions]
        self.jaccard_min = jaccard_min
        self.containment_min = containment_min

    @classmethod
    def from_file(cls, path: str | Path) -> BenchGuard:
        """Questions from a bench JSONL (`question`), or any JSONL of `instruction`/`messages` rows."""
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"--exclude-bench file {path} does not exist")
        questions = []
        for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise UsageError(f"{path}:{n} is not valid JSON; --exclude-bench takes a bench JSONL file") from None
            q = rec.get("question") or rec.get("instruction") if isinstance(rec, dict) else None
            if isinstance(q, str) and q.strip():
                questions.append(q.strip())
            forms = rec.get("fingerprints") if isinstance(rec, dict) else None
            if isinstance(forms, list):
                questions.extend(f for f in forms if isinstance(f, str) and f.strip())
        if not questions:
            raise UsageError(f"{path} holds no questions (expected a 'question' field per line)")
        return cls(questions)

    def leak(self, question: str) -> str | None:
        """The bench question this one nearly duplicates, or None. The anchor-free form is checked
        too, so 'According to "X", <bench question>' is still caught."""
        for text in dict.fromkeys([question, strip_anchor(question)]):
            g = char_ngrams(text)
            for bq, bg in zip(self.questions, self.grams):
                if self.is_leak(*leak_scores(g, bg)):
                    return bq
        return None

    def is_leak(self, jaccard_score: float, containment: float, longer: bool) -> bool:
        # Most of the bench question inside a not much longer one: "<bench question> (E07)?"
        return jaccard_score >= self.jaccard_min or (containment >= self.containment_min and not longer)


def leak_scores(g: set[str], bench: set[str]) -> tuple[float, float, bool]:
    """(Jaccard, share of the bench question's n-grams inside the other, whether the other is
    more than twice as long) of two n-gram sets: what BenchGuard and `bench check-leakage` judge."""
    inter = len(g & bench)
    if not inter:
        return 0.0, 0.0, len(g) > 2 * len(bench)
    return inter / (len(g) + len(bench) - inter), inter / len(bench), len(g) > 2 * len(bench)
