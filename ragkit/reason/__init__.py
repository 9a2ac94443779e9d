"""Reasoning for questions that need a computation (issue 26, `--reason`).

- `route`: `needs_reasoning(question, lang)` decides per question (for `--reason auto`);
  `sub_queries(question, lang)` gives one retrieval query per thing a question names.
- `parse`: `solve(model_output)` reads the model's Facts / Calculation / Answer lines, computes
  the expression and composes the short answer (`parse.py` has the format to prompt for).
- `calc`: `evaluate(expression)`, the safe calculator (an `ast` whitelist, never eval).
- `kinds`: `asked_kind(question, lang)` and `fits_kind(answer, kind)`: a computed answer of
  another kind than the question asks for (a price for "how long") is not used.
"""

from ragkit.reason.calc import CalcResult, evaluate
from ragkit.reason.kinds import asked_kind, fits_kind
from ragkit.reason.parse import ReasoningOutput, Solution, parse_reasoning, solve
from ragkit.reason.route import needs_reasoning, sub_queries

__all__ = ["CalcResult", "ReasoningOutput", "Solution", "asked_kind", "evaluate", "fits_kind", "needs_reasoning",
           "parse_reasoning", "solve", "sub_queries"]
