"""Language helpers: is this text Chinese, and how to split it into words for BM25 and metrics."""

from __future__ import annotations

import functools
import re
import unicodedata

# CJK Unified Ideographs (+ extension A) and CJK compatibility ideographs: the one definition of a
# Chinese character in ragkit (language detection, BM25 segmentation, metrics, SFT spans), as a
# regex class body: re.compile(f"[{CJK}]").
CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{CJK}]")
_RUNS_RE = re.compile(f"([{CJK}]+)|([0-9A-Za-z\u00c0-\u024f]+(?:[.'][0-9A-Za-z]+)*)")


def cjk_ratio(text: str) -> float:
    letters = [c for c in text if c.isalnum()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if _CJK_RE.match(c)) / len(letters)


def detect_language(text: str) -> str:
    """'zh' when a meaningful share of the letters are CJK ideographs, else 'en'.

    The threshold is low on purpose: a Chinese question often carries Latin product codes
    ("X200 的保修期是多久？") and must still be treated as Chinese.
    """
    return "zh" if cjk_ratio(text) >= 0.2 else "en"


def has_cjk(text: str) -> bool:
    """Whether any character of `text` is a CJK ideograph."""
    return bool(_CJK_RE.search(text))


def normalize_width(text: str) -> str:
    """Full-width ASCII forms to half-width (ＡＢＣ１２３ → ABC123), via NFKC."""
    return unicodedata.normalize("NFKC", text)


# A compact English stop list: BM25 gains little from these and they swamp short queries.
EN_STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have how i if in
    into is it its may me my no not of on or our should so than that the their them then there these
    they this to was we were what when where which who whom why will with would you your""".split()
)


# Function words and question words: they match almost every chunk, so they only add noise to BM25
# and keep a question about something absent from the corpus from scoring zero.
ZH_STOPWORDS = frozenset(
    """的 了 是 在 和 与 及 或 吗 呢 吧 啊 呀 也 都 就 而 之 其 这 那 这个 那个 什么 怎么 怎样 如何 多少
    哪 哪些 哪个 哪里 请问 一个 我 你 他 她 它 我们 你们 他们 有 没有 被 把 为 为什么 对 从 到 以 于 吗 么 几""".split()
)


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """The words of `text` in order with their offsets: jieba's segments for CJK runs, Latin words
    (lower-cased) otherwise; punctuation and spaces are not words. For cutting a phrase at a word."""
    out: list[tuple[str, int, int]] = []
    for m in _RUNS_RE.finditer(text):
        if m.group(1):
            pos = m.start()
            for w in _jieba().lcut(m.group(1)):
                out.append((w, pos, pos + len(w)))
                pos += len(w)
        else:
            out.append((m.group(2).lower(), m.start(), m.end()))
    return out


@functools.cache
def _jieba():
    import jieba  # heavy-ish dictionary load: only when Chinese text is actually seen

    jieba.setLogLevel(60)  # once: setting a logger's level clears every logger's cache (0.15 ms a call)
    return jieba


def tokenize_for_search(text: str) -> list[str]:
    """Words for BM25: jieba search-mode segments for CJK runs, lower-cased words for Latin runs.

    Search mode also emits the sub-words of long words (中华人民共和国 → 中华, 华人, 人民, ...), which
    lets a query phrased differently from the document still meet it.
    """
    text = normalize_width(text)
    tokens: list[str] = []
    for cjk, latin in _RUNS_RE.findall(text):
        if cjk:
            tokens.extend(t for t in _jieba().lcut_for_search(cjk) if t.strip() and t not in ZH_STOPWORDS)
        else:
            w = latin.lower()
            if w not in EN_STOPWORDS:
                tokens.append(w)
    return tokens
