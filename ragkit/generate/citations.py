"""From a generated answer to citations and refusals.

The prompt asks the model to cite passage numbers ([1], [2]); `parse_citations` reads them back
and `to_citations` maps them to source, page and character span. Small models often answer
correctly without the markers, so `infer_citations` falls back to the passage that holds the
answer's words. `is_refusal` recognises a model saying the context lacks the answer, in English
or Chinese, so the pipeline can replace it with the one canonical "I don't know".
"""

from __future__ import annotations

import re

from ..lang import normalize_width, tokenize_for_search
from ..types import Citation, Hit
from .prompts import REFUSAL

# [1] [1, 2] [1][2] 【1】 [1，2] [1-2]
_MARKER = re.compile(r"[\[【]\s*(\d+(?:\s*[,，、;\-–]\s*\d+)*)\s*[\]】]")

_REFUSAL_PATTERNS = [
    r"\bi\s*(?:do\s*not|don'?t|dont)\s+know\b",
    (r"\b(?:not|no(?:thing)?)\s+(?:\w+\s+){0,3}(?:mentioned|provided|found|stated|given|specified|included)"
     r"\s+in\s+the\s+(?:context|passages?|documents?|text)"),
    (r"\bthe\s+(?:context|passages?|documents?|text)\s+(?:does|do)\s*(?:not|n't)\s+"
     r"(?:contain|mention|provide|say|include|specify|state|give)"),
    r"\b(?:no|not\s+enough)\s+information\b",
    r"\b(?:cannot|can'?t|unable\s+to)\s+(?:answer|be\s+answered|determine|find)",
    r"不知道", r"没有提到", r"未提及", r"没有提及", r"无法回答", r"无法确定", r"没有相关信息",
    r"(?:资料|文档|上下文|文中)(?:中)?(?:没有|未|并未)", r"未找到", r"没有找到",
]
_REFUSAL_RE = re.compile("|".join(_REFUSAL_PATTERNS), re.IGNORECASE)


def parse_citations(text: str, n_passages: int) -> list[int]:
    """Passage numbers cited in `text`, in order of first mention, limited to 1..n_passages."""
    seen: dict[int, None] = {}
    for m in _MARKER.finditer(text):
        body = m.group(1)
        for part in re.split(r"\s*[,，、;]\s*", body):
            if re.fullmatch(r"\d+\s*[\-–]\s*\d+", part):
                a, b = (int(x) for x in re.split(r"\s*[\-–]\s*", part))
                nums = range(a, min(b, n_passages) + 1) if a <= b else []
            else:
                nums = [int(part)]
            for n in nums:
                if 1 <= n <= n_passages:
                    seen[n] = None
    return list(seen)


def drop_unknown_citations(text: str, n_passages: int) -> str:
    """The answer without citation numbers outside 1..n_passages ([4] when there are 3): they point nowhere."""
    def fix(m: re.Match) -> str:
        if parse_citations(m.group(0), 10**6) == parse_citations(m.group(0), n_passages):
            return m.group(0)  # every number is valid: keep the marker as the model wrote it
        return "".join(f"[{n}]" for n in parse_citations(m.group(0), n_passages))

    out = _MARKER.sub(fix, text)
    return re.sub(r"\s+([.,;:!?。，；：！？])", r"\1", out).strip() if out != text else text


def strip_citations(text: str) -> str:
    """The answer without its [n] markers (what exact-match metrics should compare)."""
    return re.sub(r"\s+([.,;:!?。，；：！？])", r"\1", _MARKER.sub("", text)).strip()


def to_citations(numbers: list[int], hits: list[Hit]) -> list[Citation]:
    out = []
    for n in numbers:
        if 1 <= n <= len(hits):
            h = hits[n - 1]
            out.append(Citation(n, h.chunk_id, h.source, h.page, h.start, h.end))
    return out


def _words(text: str) -> list[str]:
    return [w for w in tokenize_for_search(text) if len(w) > 1 or not w.isascii()]


def infer_citations(answer: str, hits: list[Hit], min_overlap: float = 0.6) -> list[int]:
    """The passage that best holds the answer when the model cited none: the first passage that
    contains the whole answer verbatim, else the one sharing the largest share (>= min_overlap)
    of the answer's words. Empty when no passage supports the answer."""
    core = " ".join(normalize_width(strip_citations(answer)).lower().split()).strip(" .。")
    if not core or not hits:
        return []
    for i, h in enumerate(hits, 1):
        if core in " ".join(normalize_width(h.text).lower().split()):
            return [i]
    words = set(_words(core))
    if not words:
        return []
    best, best_share = 0, 0.0
    for i, h in enumerate(hits, 1):
        share = len(words & set(_words(h.text))) / len(words)
        if share > best_share:
            best, best_share = i, share
    return [best] if best and best_share >= min_overlap else []


def is_refusal(text: str) -> bool:
    """True when the answer says it does not know or that the context lacks the answer.

    Only the opening of the answer counts: "I don't know X, but ..." is rare from small models,
    while a correct answer that quotes "not mentioned" later on is not a refusal.
    """
    head = strip_citations(text)[:160]
    return not head or bool(_REFUSAL_RE.search(head))


def refusal_text(lang: str) -> str:
    """The canonical answer when the documents do not hold one."""
    return {
        "en": f"{REFUSAL['en']}: the documents do not contain the answer.",
        "zh": f"{REFUSAL['zh']}：文档中没有找到答案。",
    }[lang]
