"""An optional LLM judge for `ragkit eval --judge BACKEND/MODEL`: grades one answer with a fixed rubric.

The judge sees the question, the acceptable answers and the model's answer, and must reply with one
JSON object: {"verdict": "correct" | "incorrect", "reason": "..."}. The rubric is fixed (no
per-run wording), so judge scores from two runs compare. A reply that cannot be parsed is recorded
as verdict None with `parsed: False`; the report counts those separately and computes the judge's
accuracy over the parsed replies only, so a weak judge shows up as a high unparseable count rather
than as a silent NaN or a smaller denominator.

    from ragkit.eval.judge import Judge
    Judge(generator).grade("How long ...?", ["18 months"], "Eighteen months.")
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..generate.base import BACKENDS, Decoding

RUBRIC = (
    "You grade answers to questions about a product's documentation.\n"
    "An answer is correct when it states the same fact as one of the reference answers: different "
    "wording, units written differently (1,500 vs 1500, 40 % vs 40%) or extra correct detail are fine. "
    "It is incorrect when it contradicts the references, gives another value, is missing the fact, "
    "or says it does not know.\n"
    'Reply with one JSON object and nothing else: {"verdict": "correct" or "incorrect", '
    '"reason": "<one short sentence>"}'
)

_JSON_OBJ = re.compile(r"\{[^{}]*\}", re.DOTALL)
# A verdict field whose object was never closed (a base model that ran out of tokens or stopped at
# a newline) still carries the structured answer; prose without the field does not.
_FIELD = re.compile(r'"verdict"\s*:\s*"(correct|incorrect)"', re.IGNORECASE)
_VERDICTS = {"correct": True, "incorrect": False, "true": True, "false": False, "yes": True, "no": False}


@dataclass
class Verdict:
    correct: bool | None  # None when the reply could not be parsed
    parsed: bool
    reason: str
    raw: str

    def to_dict(self) -> dict:
        return {"correct": self.correct, "parsed": self.parsed, "reason": self.reason, "raw": self.raw}


def judge_prompt(question: str, answers: Sequence[str], prediction: str) -> str:
    refs = "\n".join(f"- {a}" for a in answers)
    return (
        f"Question: {question}\nReference answers:\n{refs}\nAnswer to grade: {prediction.strip() or '(empty)'}\n"
    )


def parse_verdict(reply: str) -> Verdict:
    """Read the judge's JSON; accept `verdict` as a word or a boolean `correct` field.

    The first JSON object that carries a recognisable verdict wins. Anything else, including
    prose such as "The answer is correct", is unparseable: guessing from prose would make the
    judge's accuracy depend on phrasing rather than on its grading.
    """
    raw = reply.strip()
    candidates = [raw] + _JSON_OBJ.findall(raw)
    for text in candidates:
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, ValueError):
            continue
        if not isinstance(obj, dict):
            continue
        v = obj.get("verdict", obj.get("correct"))
        if isinstance(v, bool):
            return Verdict(v, True, str(obj.get("reason", "")), raw)
        if isinstance(v, str) and v.strip().lower() in _VERDICTS:
            return Verdict(_VERDICTS[v.strip().lower()], True, str(obj.get("reason", "")), raw)
    m = _FIELD.search(raw)
    if m:
        return Verdict(m.group(1).lower() == "correct", True, "", raw)
    return Verdict(None, False, "", raw)


class Judge:
    """Grades answers with a generator (any ragkit backend), greedy and short."""

    def __init__(self, generator, max_tokens: int = 96):
        self.generator = generator
        self.name = f"{getattr(generator, 'backend', '?')}/{getattr(generator, 'model', '?')}"
        self.decoding = Decoding(temperature=0.0, max_tokens=max_tokens)

    def render(self, question: str, answers: Sequence[str], prediction: str) -> str:
        user = judge_prompt(question, answers, prediction)
        if getattr(self.generator, "prompt_style", "chat") == "chat":
            return self.generator.render_chat(
                [{"role": "system", "content": RUBRIC}, {"role": "user", "content": user}]
            )
        # Base models continue text: end the prompt inside the JSON so the verdict comes next.
        return f"{RUBRIC}\n\n{user}Grade: {{\"verdict\": \""

    def grade(self, question: str, answers: Sequence[str], prediction: str) -> Verdict:
        prompt = self.render(question, answers, prediction)
        decoding = self.decoding
        if getattr(self.generator, "prompt_style", "chat") != "chat":
            decoding = decoding.with_stops(["\n"])  # a base model would go on to invent the next case
        text = self.generator.generate(prompt, decoding).text
        if prompt.endswith('{"verdict": "'):
            text = '{"verdict": "' + text
        return parse_verdict(text)


def parse_judge_spec(spec: str) -> tuple[str | None, str]:
    """'llamacpp/smollm2-135m' → ('llamacpp', 'smollm2-135m'); a bare model → (None, model).

    Only a known backend name counts as a prefix, so a model path with slashes stays whole.
    """
    head, sep, rest = spec.partition("/")
    if sep and head in BACKENDS and rest:
        return head, rest
    return None, spec


def summarize(verdicts: Sequence[dict | None]) -> dict:
    """Judge figures for a set of items: accuracy over parsed replies, and how many failed to parse."""
    graded = [v for v in verdicts if v is not None]
    parsed = [v for v in graded if v.get("parsed")]
    correct = sum(1 for v in parsed if v.get("correct"))
    return {
        "accuracy": round(correct / len(parsed), 4) if parsed else None,
        "n_graded": len(parsed),
        "unparseable": len(graded) - len(parsed),
        "unparseable_rate": round((len(graded) - len(parsed)) / len(graded), 4) if graded else None,
    }
