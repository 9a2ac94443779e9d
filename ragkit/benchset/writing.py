"""Writing a candidate's question, answer first: the model is shown the answer marked in its
sentence ("... recharges in [65 minutes] ...") with the few-shot prompt of `build-sft-data`
(ragkit.sftdata.paraphrase.ModelWriter) and writes the question; the rules of the same module write
one too where they can. A computation is shown to the model the same way, as a sentence that
states the facts and ends in the marked result ("The change is [...]", "The difference is [...]",
"Together they cost [...]"). `questions` returns them in order of preference
(model first, rules as the fallback), and draft.py keeps the first that passes verify.py.

Anchors: an easy or medium question, and a computation over one document's facts, names its document ('According to "X", ...') when it does not
already name what the title names, so it stands on its own; a conflict question names no document
and asks for the latest value instead, since which document wins is what it tests.
"""

from __future__ import annotations

import re

from ..sftdata.filters import strip_anchor
from ..sftdata.paraphrase import anchor, clean_title
from .facts import subject_codes
from .pools import Candidate, thing_name

_LATEST = {"en": "As of the latest documents, {q}", "zh": "以最新资料为准，{q}"}
_MARK = {"en": ("[", "]"), "zh": ("【", "】")}


def _lower_first(q: str) -> str:
    first = q.split(" ", 1)[0]
    return q[0].lower() + q[1:] if q and first[1:].islower() and first.isalpha() else q


def latest(question: str, lang: str) -> str:
    q = strip_anchor(question)
    return _LATEST[lang].format(q=_lower_first(q) if lang == "en" else q)


def _title(f) -> str:
    return clean_title(f.title or f.source)


def computation_text(c: Candidate) -> str:
    """The facts and the marked result of a logic candidate, as one text for the model."""
    o, e = _MARK[c.lang]
    a, b = c.facts[0], c.facts[1]
    if c.cell == "logic/complex" and c.compute and (c.compute.get("total") or c.compute.get("compare")):
        zh, en = ("一共", "Together they cost") if c.compute.get("total") else ("相差", "The difference is")
        if c.lang == "zh":
            return f"《{_title(a)}》：{a.context}《{_title(b)}》：{b.context}两者{zh}{o}{c.answer}{e}。"
        return f'"{_title(a)}": {a.context} "{_title(b)}": {b.context} {en} {o}{c.answer}{e}.'
    if c.cell == "logic/complex":
        if c.lang == "zh":
            return f"《{_title(b)}》：{b.context}《{_title(a)}》（更新）：{a.context}两者相差{o}{c.answer}{e}。"
        return f'"{_title(b)}": {b.context} "{_title(a)}" (newer): {a.context} The change is {o}{c.answer}{e}.'
    if c.compute and c.compute.get("table"):
        row_a, row_b, col = a.meta["row"], b.meta["row"], a.meta["col"]
        if c.lang == "zh":
            return f"{row_a}的{col}是{a.answer}，{row_b}的{col}是{b.answer}，{row_a}比{row_b}多{o}{c.answer}{e}。"
        return f"The {col} of {row_a} is {a.answer} and of {row_b} is {b.answer}, so {row_a} has {o}{c.answer}{e} more."
    if c.lang == "zh":
        return f"{a.context}{b.context}两者相差{o}{c.answer}{e}。"
    return f"{a.context} {b.context} The difference is {o}{c.answer}{e}."


def rule_question(c: Candidate) -> str | None:
    """The rule-written question of a candidate, or None when the rules cannot phrase one."""
    f = c.facts[0]
    if c.cell in ("knowledge/easy", "knowledge/medium", "common") or (c.cell == "knowledge/hard" and len(c.facts) == 1):
        return anchor(f.question, f.title, c.lang) if f.question else None
    if c.cell == "knowledge/hard":
        return latest(f.question, c.lang) if f.question else None
    if c.cell == "logic/simple" and c.compute and c.compute.get("table"):
        a, b = c.facts
        row_a, row_b, col = a.meta["row"], b.meta["row"], a.meta["col"]
        if c.lang == "zh":
            q = f"{row_a}的{col}比{row_b}多多少？"
        else:
            # the column named as a column: a header is not always a noun ("Replace", "Clean")
            q = f'In the "{col}" column, by how much does {row_a} exceed {row_b}?'
        return anchor(q, f.title, c.lang)
    if c.cell == "logic/simple" and c.compute and c.compute.get("change"):
        # the sentence states both values; the question asks for the size of the change
        if c.lang == "zh":
            return anchor(f"{f.context.rstrip('。；;')}，变化了多少？", f.title, c.lang)
        return anchor(f"{f.context.rstrip('.;')}: by how much did it change?", f.title, c.lang)
    if c.cell == "logic/complex" and c.compute and c.compute.get("compare"):
        return comparison_question(c)
    if c.cell == "logic/complex" and c.compute and c.compute.get("total"):
        return total_question(c)
    if c.cell == "logic/complex" and f.question:
        old = c.facts[1]
        core = strip_anchor(f.question)
        if c.lang == "zh":
            return f"从《{_title(old)}》到《{_title(f)}》，“{core}”的答案变化了多少？"
        m = re.match(r"^What (?:is|are) (the .+)\?$", core)
        if m:
            return f'By how much did {m.group(1)} change from "{_title(old)}" to "{_title(f)}"?'
        return f'By how much does the answer to "{core}" differ between "{_title(old)}" and "{_title(f)}"?'
    return None


def comparison_question(c: Candidate) -> str | None:
    """"How much greater is the weight of the M5 than that of the M3?" for two things' values of
    one attribute (a table row or a key), when their codes tell the things apart."""
    hi, lo = c.facts
    attr = hi.meta.get("row") or hi.meta.get("key")
    x, y = " ".join(sorted(subject_codes(hi) - subject_codes(lo))), " ".join(sorted(subject_codes(lo) - subject_codes(hi)))
    if not attr or not x or not y:
        return None
    if c.lang == "zh":
        return f"{x} 的{attr}比 {y} 多多少？"
    return f"How much greater is the {attr[0].lower() + attr[1:] if attr[1:].islower() else attr} of the {x} than that of the {y}?"


def total_question(c: Candidate) -> str | None:
    """"How much do the Kestrel V7 and the Dock Pro cost together?" when both things have a name
    by rule (thing_name) and the names differ."""
    a, b = c.facts
    x, y = thing_name(a), thing_name(b)
    if not x or not y or x == y:
        return None
    if c.lang == "zh":
        return f"同时购买{x}和{y}，一共要多少钱？"
    return f"How much do the {x} and the {y} cost together?"


def questions(c: Candidate, model_writer, use_rules: bool = True) -> list[tuple[str, str]]:
    """(question, writer) pairs for a candidate, the model's first: "model" or "rules"."""
    out: list[tuple[str, str]] = []
    f = c.facts[0]
    if model_writer is not None:
        if c.cell.startswith("logic/"):
            q = model_writer.question(computation_text(c), None, c.lang)
            if q and c.cell == "logic/simple":  # one document's facts: name it, as for knowledge items
                q = anchor(q, f.title, c.lang)
        elif c.cell == "knowledge/hard" and len(c.facts) > 1:
            q = model_writer.question(f.marked, None, c.lang)
            q = latest(q, c.lang) if q else None
        else:
            q = model_writer.question(f.marked, f.title, c.lang)
            q = anchor(q, f.title, c.lang) if q else q
        out.append((q, "model") if q else ("", "model"))
    if use_rules and (rq := rule_question(c)):
        out.append((rq, "rules"))
    return out
