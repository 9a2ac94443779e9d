"""Answer metrics for `ragkit eval`: deterministic scores of one generated answer against a bench item.

Every score compares *normalised* text (`normalize`): NFKC (full-width → half-width), lower case,
thousands separators dropped (1,500 → 1500), zeros ending a decimal dropped (189.00 → 189),
punctuation → space, spaces next to CJK characters and between a number and its unit dropped
(40 % → 40, 5 mm → 5mm, 24 个月 → 24个月), English articles dropped. On top of it:

- `exact_match`: the normalised answer equals an acceptable answer.
- `f1`: token-overlap F1, best over the acceptable answers; tokens are single CJK characters
  (character-level for Chinese) and Latin/number words (word-level for English).
- `contains_answer` (the headline *accuracy*): an acceptable answer appears in the answer, on
  word boundaries for Latin and digits (so "2" is not found in "24 months" nor in "M2").
- `repetition`: share of repeated token 3-grams (0 for a clean answer, near 1 for a model stuck
  in a loop, the "repeater" failure of small models).
- `bootstrap_ci` / `paired_bootstrap`: 95% percentile bootstrap intervals with a fixed seed.

    python -m ragkit.eval.metrics "The battery warranty is 18 months." "18 months"
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

from ..lang import CJK

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# Zeros that end a decimal part say nothing: 189.00 is 189 and 1.50 is 1.5 (a price list's "189.00"
# answers "189"). Not after a second point (a version such as 1.2.0 keeps its parts).
_TRAILING_ZEROS = re.compile(r"(?<![\d.])(\d+)(?:\.0+|(\.\d*?[1-9])0+)(?![\d.])")
# Characters that stay inside numbers: 2.5, 9:00 (a decimal point is not punctuation there).
_IN_NUMBER = re.compile(r"(?<=\d)([.:])(?=\d)")
_PROTECT = {".": "\u0001", ":": "\u0002"}
_UNPROTECT = {v: k for k, v in _PROTECT.items()}
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
# A space is dropped when a CJK character is on either side, or a digit meets a letter or %.
_SPACE_CJK = re.compile(f"(?<=[{CJK}]) | (?=[{CJK}])")
_SPACE_NUM_UNIT = re.compile(r"(?<=\d) (?=[^\W\d_])")
_TOKEN_RE = re.compile(f"[{CJK}]|\\d+(?:[.:]\\d+)?|[^\\W\\d_{CJK}][^\\W_{CJK}]*|[^\\w\\s]")
_WORDCHAR = re.compile(r"[0-9a-z]")

# Symbols that carry meaning are kept as their own tokens rather than erased (°C, m2 survive NFKC).
_KEEP_SYMBOLS = set("°+$€£¥")


def normalize(text: str, drop_articles: bool = True) -> str:
    """The comparable form of an answer (see the module docstring for each rule)."""
    t = unicodedata.normalize("NFKC", text or "").lower()
    t = _THOUSANDS.sub("", t)
    t = _TRAILING_ZEROS.sub(lambda m: m.group(1) + (m.group(2) or ""), t)
    t = _IN_NUMBER.sub(lambda m: _PROTECT[m.group(1)], t)
    t = "".join(
        " " if (unicodedata.category(c).startswith(("P", "S")) and c not in _KEEP_SYMBOLS) else c for c in t
    )
    t = "".join(_UNPROTECT.get(c, c) for c in t)
    if drop_articles:
        t = _ARTICLES.sub(" ", t)
    t = " ".join(t.split())
    return _SPACE_CJK.sub("", t)


def _compact(normalized: str) -> str:
    """A number glued to its unit (5 mm → 5mm), the second form `exact_match` and `contains_answer` try."""
    return _SPACE_NUM_UNIT.sub("", normalized)


def tokens(text: str, drop_articles: bool = True) -> list[str]:
    """Tokens of the normalised text: each CJK character alone, numbers (2.5, 9:00), Latin words,
    and kept symbols; a number and its unit are two tokens whether or not a space parts them,
    while a code that starts with a letter (m3, e01) stays one word."""
    return _TOKEN_RE.findall(normalize(text, drop_articles))


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    p = normalize(prediction)
    for a in answers:
        g = normalize(a)
        if g and (p == g or _compact(p) == _compact(g)):
            return 1.0
    return 0.0


def _f1(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, answers: Sequence[str]) -> float:
    """Token F1, best over the acceptable answers (char-level for Chinese, word-level for English)."""
    pred = tokens(prediction)
    return max((_f1(pred, tokens(a)) for a in answers), default=0.0)


def _breaks(needle_edge: str, neighbour: str) -> bool:
    """Whether `neighbour` continues the word or number that `needle_edge` ends (or starts).

    A number is only continued by another digit: "5" is found in "5mm" (a unit follows) but not in
    "15" or "2.5". A Latin word is continued by a letter or digit ("month" is not in "months").
    """
    if needle_edge.isdigit():
        return neighbour.isdigit()
    return bool(_WORDCHAR.match(needle_edge) and _WORDCHAR.match(neighbour))


def _found_on_boundary(needle: str, hay: str) -> bool:
    start = hay.find(needle)
    while start >= 0:
        end = start + len(needle)
        before = hay[start - 1] if start else ""
        after = hay[end] if end < len(hay) else ""
        # "2" must not be found in "M2" (a model name) either: a letter before a number breaks it.
        left_ok = not before or not (_breaks(needle[0], before) or (needle[0].isdigit() and _WORDCHAR.match(before)))
        right_ok = not after or not _breaks(needle[-1], after)
        # A decimal point or colon inside a number ("2" in "2.5", "9" in "9:30") continues it.
        if after in ".:" and after and hay[end + 1:end + 2].isdigit() and needle[-1].isdigit():
            right_ok = False
        if before in ".:" and before and hay[start - 2:start - 1].isdigit() and needle[0].isdigit():
            left_ok = False
        if left_ok and right_ok:
            return True
        start = hay.find(needle, start + 1)
    return False


def contains_answer(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when an acceptable answer appears in the prediction after normalisation (the accuracy)."""
    hay = normalize(prediction)
    for a in answers:
        needle = normalize(a)
        if needle and (_found_on_boundary(needle, hay) or _found_on_boundary(_compact(needle), _compact(hay))):
            return 1.0
    return 0.0


def repetition(text: str, n: int = 3) -> float:
    """Share of token n-grams that repeat an earlier one: 1 - distinct / total (0 when too short)."""
    toks = tokens(text, drop_articles=False)
    grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def answer_length(text: str) -> int:
    """Length in tokens as `tokens` counts them (a Chinese character counts as one, like a word)."""
    return len(tokens(text, drop_articles=False))


def score_answer(prediction: str, answers: Sequence[str], refused: bool = False) -> dict[str, float]:
    """Every deterministic score of one answer, as stored per item in items.jsonl."""
    return {
        "em": exact_match(prediction, answers),
        "f1": round(f1(prediction, answers), 4),
        "accuracy": contains_answer(prediction, answers),
        "refused": float(refused),
        "repetition": round(repetition(prediction), 4),
        "length": answer_length(prediction),
    }


# -- statistics ----------------------------------------------------------------------------------
def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean (None for no values). Fixed seed: reproducible."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return round(float(lo), 4), round(float(hi), 4)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict | None:
    """Difference of means b - a over the same items, with a paired bootstrap interval.

    Items are resampled together, so the interval reflects per-item differences rather than two
    independent samples; `significant` means the interval excludes 0.
    """
    if len(a) != len(b):
        raise ValueError("paired bootstrap needs the same items in both arms")
    if not a:
        return None
    diffs = [y - x for x, y in zip(a, b)]
    lo, hi = bootstrap_ci(diffs, n_boot=n_boot, seed=seed, level=level)
    d = round(sum(diffs) / len(diffs), 4)
    return {"diff": d, "ci95": [lo, hi], "n": len(diffs), "significant": bool(lo > 0 or hi < 0)}


if __name__ == "__main__":  # pragma: no cover - a quick look from the shell
    import json
    import sys

    print(json.dumps(score_answer(sys.argv[1], sys.argv[2:]), ensure_ascii=False))
