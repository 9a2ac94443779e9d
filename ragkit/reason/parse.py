"""Read a model's reasoning output: the facts it used, its one calculation, its answer line.

Why: the model is prompted to show its facts and write the arithmetic as an expression, and
ragkit computes the value (ragkit.reason.calc) instead of trusting the model's own sum. Small
models wrap that in noise: code fences, bold labels, Chinese labels, full-width characters, and
an "= <result>" that is often wrong. This module takes what it needs and ignores the rest.

The format to prompt for (labels may also be 事实 / 计算 / 答案, with ： or :):

    Facts: <each fact the answer uses, with its citation [n]; one per line or separated by ;>
    Calculation: <one arithmetic or date expression, or none>
    Answer: <the short answer; write {result} where the calculated value goes> [n]

`REASONING_FORMAT[lang]` is that instruction with one worked example from an invented domain,
ready to put after the passages; a test checks that its example solves to its own answer.

`solve(text)` returns a `Solution`: the answer composed with the calculator's value; the model's
own answer line when it wrote "Calculation: none" or a single value with nothing computed
("Calculation: 12 months"), and that single value itself when no answer line follows it or the
answer line waits for the value ("Answer: {result} [2]"); and
`answer` None when the calculator refused the expression, or the output has no answer at all or
one that says nothing ("Answer: 无"), so the caller falls back to a direct answer.

A model that writes no calculation line at all (the 1.5B often runs its facts into the answer in
Chinese) is led through the format line by line: see `Pipeline` in ragkit/pipeline.py, which
writes each label and lets the model write one line after it.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field

from ragkit.errors import CalcRefused
from ragkit.reason.calc import CalcResult, evaluate

REASONING_FORMAT = {
    "en": ("Work it out in three lines. Facts: each fact you use, with its citation [n]. "
           "Calculation: one expression with numbers only (+ - * / round(x, n); dates as "
           "2025-01-15 + months(18) or days(7); date - date gives days), or none. "
           "Answer: the short answer, writing {result} where the calculated value goes.\n"
           "Example:\nFacts: The Heron A3 costs 1,250 yuan [1]; its dock costs 380 yuan [2]\n"
           "Calculation: 1250 + 380\nAnswer: {result} yuan [1][2]\n"),
    "zh": ("分三行作答。事实：用到的每条事实，带引用 [n]。计算：只含数字的一个算式"
           "（+ - * / round(x, n)；日期写成 2025-01-15 + months(18) 或 days(7)；日期相减得天数），"
           "不需要计算就写“无”。答案：简短的答案，计算结果处写 {result}。\n"
           "示例：\n事实：苍鹭 A3 售价 1,250 元 [1]；底座售价 380 元 [2]\n"
           "计算：1250 + 380\n答案：{result} 元 [1][2]\n"),
}
_LABELS = {
    "facts": r"facts?|evidence|known|已知(?:事实|条件)?|事实|依据",
    "calculation": r"calculation|calc|expression|formula|compute|计算(?:式|过程)?|算式|表达式",
    "answer": r"final answer|answer|最终答案|答案|回答",
}
_LABEL_LINE = re.compile(
    r"^[\s>*#\-]*(?:\*\*)?(" + "|".join(f"(?P<{k}>{v})" for k, v in _LABELS.items()) + r")"
    r"(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(.*)$", re.IGNORECASE)
# "… [2]. Calculation: 1+2. Answer: …" on one line: each label starts a line of its own
_INLINE_LABEL = re.compile(r"(?<=\S)\s*(?=(?:\*\*)?(?:calculation|final answer|answer|计算|答案)(?:\*\*)?\s*[:：])",
                           re.IGNORECASE)
_CITATION = re.compile(r"\[(\d{1,3})\]")
_NONE = re.compile(r"^(?:none|n/?a|no calculation|not needed|-+|无|不需要|没有|不需计算|无需计算)\.?$", re.I)
# "2999 - 2599 (price cut)": a note in brackets after a number, not part of the expression
_TRAILING_COMMENT = re.compile(r"(?<=[\d)])\s+\((?=[^()]*[A-Za-z\u4e00-\u9fff]{2})[^()]*\)\s*$")
_SINGLE_VALUE = re.compile(r"[$¥€£]?\s*\d[\d,]*(?:\.\d+)?\s*%?\s*[^\d\s+\-*/×÷^()]*")
RESULT_SLOT = re.compile(r"\{\s*(?:result|value|结果)\s*\}|<\s*result\s*>", re.IGNORECASE)
# a standalone number in an answer line: not part of a code (V7), a version (2.2) or a citation [1]
_NUMBER = re.compile(r"(?<![\w.,\[])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w\]]|\.\d)")
_MONTHS = ("January February March April May June July August September October November "
           "December").split()
_DATE_FORMS = [  # (pattern, how to write a date in the same form)
    (re.compile(r"\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*[日号]"), lambda d: f"{d.year}年{d.month}月{d.day}日"),
    (re.compile(r"\d{4}-\d{1,2}-\d{1,2}"), lambda d: d.isoformat()),
    (re.compile(r"\d{1,2} (?:" + "|".join(_MONTHS) + r") \d{4}"), lambda d: f"{d.day} {_MONTHS[d.month - 1]} {d.year}"),
    (re.compile(r"(?:" + "|".join(_MONTHS) + r") \d{1,2},? \d{4}"), lambda d: f"{_MONTHS[d.month - 1]} {d.day}, {d.year}"),
    # the model asked for a month only ("2026年8月", "August 2026"): keep it to the month
    (re.compile(r"\d{4}\s*年\s*\d{1,2}\s*月"), lambda d: f"{d.year}年{d.month}月"),
    (re.compile(r"(?:" + "|".join(_MONTHS) + r") \d{4}"), lambda d: f"{_MONTHS[d.month - 1]} {d.year}"),
]


@dataclass(frozen=True)
class ReasoningOutput:
    """The parts of the model's text, as written (the expression cleaned of noise)."""

    facts: list[str] = field(default_factory=list)
    expression: str | None = None  # None when there is no calculation line or it says none
    claimed: str | None = None  # what the model wrote after "=" (never used as the value)
    answer: str | None = None  # the model's answer line
    labels: tuple[str, ...] = ()  # the labelled lines written, in order: "facts", "calculation", "answer"

    @property
    def citations(self) -> list[int]:
        """The [n] the facts cite, in order of first appearance."""
        return list(dict.fromkeys(int(n) for f in self.facts for n in _CITATION.findall(f)))


@dataclass(frozen=True)
class Solution:
    """The reasoning step's outcome: the answer to show and how it was reached."""

    answer: str | None  # None: no usable answer (or a refused expression): answer directly instead
    parsed: ReasoningOutput
    calculation: CalcResult | None = None
    refused: str | None = None  # the calculator's reason, when it refused the expression

    def as_dict(self) -> dict:
        """For --json: the expression as the model wrote it, the calculator's reading and value."""
        out = {"facts": self.parsed.facts, "expression": self.parsed.expression,
               "value": None, "refused": self.refused}
        if self.calculation:
            out.update(normalised=self.calculation.expression, value=self.calculation.text)
        return out


def parse_reasoning(text: str) -> ReasoningOutput:
    """Split a model's output into facts, one expression and the answer line."""
    text = _INLINE_LABEL.sub("\n", unicodedata.normalize("NFKC", text or ""))
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.strip().startswith("```"):
            continue
        m = _LABEL_LINE.match(line)
        if m:
            current = next(k for k in _LABELS if m.group(k))
            sections.setdefault(current, [])
            line = m.group(len(_LABELS) + 2)
        if current and line.strip() and (current != "calculation" or not sections[current]):
            sections[current].append(line.strip())
    facts = [f for chunk in sections.get("facts", []) for f in re.split(r"[;；]\s*", _strip_marks(chunk))
             if f.strip()]
    expression, claimed = clean_expression(" ".join(sections.get("calculation", [])[:1]))
    answer = " ".join(sections.get("answer", [])[:1]).strip() or None
    return ReasoningOutput([f.strip() for f in facts], expression, claimed, _strip_marks(answer) if answer else None,
                           tuple(sections))


def clean_expression(line: str) -> tuple[str | None, str | None]:
    """The expression in a calculation line, and what the model claimed after "=" (if anything)."""
    line = _strip_marks(line).replace("\\times", "*").replace("\\div", "/")
    line = _CITATION.sub("", line).strip().strip("`$").strip()
    parts = re.split(r"\s*(?:(?<![<>=!])=(?!=)|≈|→|=>)\s*", line, maxsplit=1)
    expression = _TRAILING_COMMENT.sub("", parts[0].strip().rstrip(".。;；,，")).strip()
    claimed = parts[1].strip() if len(parts) > 1 else None
    if not expression or _NONE.match(expression) or not RESULT_SLOT.sub("", expression).strip():
        return None, claimed  # "Calculation: {result}" copies the answer's slot: nothing to compute
    return expression, claimed


def solve(text: str) -> Solution:
    """Parse the model's output and compute its expression; compose the answer from the value."""
    parsed = parse_reasoning(text)
    single = parsed.expression is not None and bool(_SINGLE_VALUE.fullmatch(parsed.expression))
    if parsed.expression is None or single:
        # "Calculation: 12 months" computes nothing: as with "none", the model's own answer line,
        # unless it says nothing ("Answer: 无") or waits for a value ({result}): then a direct answer
        line = _CITATION.sub("", parsed.answer or "").strip()
        usable = line and not _NONE.match(line) and not RESULT_SLOT.search(line)
        answer = parsed.answer if usable else None
        if single and answer is None and (not line or RESULT_SLOT.search(line)):
            # "Calculation: 12 months" and no answer line, or one that waits for the value: the
            # model named the value it was asked for
            answer = _cited(_fill_slot(parsed.answer, parsed.expression) if line else parsed.expression, parsed)
        return Solution(answer, parsed, refused="a single value is not a calculation" if single else None)
    try:
        result = evaluate(parsed.expression)
    except CalcRefused as e:  # the model's own answer line rests on the refused expression
        return Solution(None, parsed, refused=str(e))
    return Solution(compose_answer(parsed, result), parsed, calculation=result)


def compose_answer(parsed: ReasoningOutput, result: CalcResult) -> str:
    """The model's answer line with the calculator's value in it, and the facts' citations.

    In order: a {result} slot is filled; else the number (or date) the model wrote in its answer
    line is replaced, when there is exactly one, or it is the one it claimed after "="; else the
    answer is the value alone. Citations of the facts are added when the answer line has none.
    """
    answer = parsed.answer or ""
    if RESULT_SLOT.search(answer):
        composed = _fill_slot(answer, result.text)
    else:
        composed = _replace_value(answer, result, parsed.claimed) or result.text
    return _cited(composed, parsed)


def _fill_slot(answer: str, value: str) -> str:
    """`answer` with its first {result} slot replaced by `value`, as text (a backslash in a
    model-written value is no regex escape)."""
    return RESULT_SLOT.sub(lambda _: value, answer, count=1)


def _cited(answer: str, parsed: ReasoningOutput) -> str:
    """`answer` with the facts' citations added when it has none of its own."""
    if not _CITATION.search(answer) and parsed.citations:
        answer = answer.rstrip() + " " + "".join(f"[{n}]" for n in parsed.citations)
    return answer.strip()


def _replace_value(answer: str, result: CalcResult, claimed: str | None) -> str | None:
    if isinstance(result.value, dt.date):
        for pattern, write in _DATE_FORMS:
            m = pattern.search(answer)
            if m:
                return answer[:m.start()] + write(result.value) + answer[m.end():]
        return None
    numbers = list(_NUMBER.finditer(answer))
    claimed_numbers = [m[0] for m in _NUMBER.finditer(claimed or "")]
    picked = [m for m in numbers if claimed_numbers and m[0] == claimed_numbers[0]]
    if not picked and len(numbers) == 1:
        picked = numbers
    if not picked:
        return None
    m = picked[0]
    return answer[:m.start()] + result.text + answer[m.end():]


def _strip_marks(text: str) -> str:
    """Markdown emphasis and list marks around a line: **x**, `x`, "- x"."""
    return re.sub(r"^\s*(?:[-*•]\s+|\d+[.)]\s+)?", "", text).replace("**", "").strip()
