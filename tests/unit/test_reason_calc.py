"""The safe calculator (ragkit.reason.calc) and the reading of a model's reasoning output
(ragkit.reason.parse): every forbidden construct refused, right values for arithmetic and dates,
and nothing but CalcRefused on random text."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.errors import CalcRefused, RagkitError
from ragkit.reason.calc import MAX_CHARS, evaluate
from ragkit.reason.parse import REASONING_FORMAT, clean_expression, parse_reasoning, solve

REFUSED = {
    "name": ("x + 1", "names are not allowed"),
    "builtin name": ("__builtins__", "names are not allowed"),
    "attribute": ("(1).real", "attribute access"),
    "dunder attribute": ("().__class__.__bases__", "attribute access"),
    "dunder import call": ("__import__('os').system('ls')", "not allowed"),
    "subscript": ("[1, 2][0]", "subscripts"),
    "non-whitelisted function": ("pow(2, 3)", "the function 'pow' is not allowed"),
    "eval": ("eval('1')", "the function 'eval' is not allowed"),
    "lambda": ("(lambda: 1)()", "not allowed"),
    "comprehension": ("[x for x in (1, 2)]", "comprehensions"),
    "generator": ("max(x for x in (1, 2))", "comprehensions"),
    "huge power": ("9**9**9", "exponent"),
    "large power of a large base": ("123456789**60", "too large"),
    "fractional exponent": ("2**0.5", "whole number"),
    "ten thousand digits": ("9" * 10_000, "longer than"),
    "thirty-one digits": ("1" * 31, "more than 30 digits"),
    "over-long input": ("1 + " * 60 + "1", "longer than"),
    "deep nesting": ("-" * 100 + "1", "nested more than"),
    "deep nesting of calls": ("abs(" * 35 + "1" + ")" * 35, "nested more than"),
    "many parts": ("max(" + ", ".join(["-1"] * 48) + ")", "more than 120 parts"),
    "division by zero": ("1 / (2 - 2)", "division by zero"),
    "floor division by zero": ("1 // 0", "division by zero"),
    "zero to a negative power": ("0 ** -1", "division by zero"),
    "string literal": ("'1' + '2'", "only numbers"),
    "bytes literal": ("b'1'", "only numbers"),
    "f-string": ("f'{1}'", "strings are not allowed"),
    "walrus": ("(y := 3)", "assignments"),
    "bitwise and": ("6 & 3", "operator &"),
    "bitwise or": ("6 | 3", "operator |"),
    "shift": ("1 << 100", "operator <<"),
    "invert": ("~1", "operator ~"),
    "comparison": ("1 < 2", "comparisons"),
    "boolean": ("1 and 2", "and/or"),
    "conditional": ("1 if 2 else 3", "conditionals"),
    "tuple": ("(1, 2)", "tuples"),
    "keyword argument": ("round(1.5, ndigits=1)", "keyword"),
    "starred argument": ("max(*(1, 2))", "starred"),
    "scientific notation": ("1e999999999", "plain digits"),
    "hex literal": ("0x10", "plain digits"),
    "complex literal": ("2j", "only numbers"),
    "True": ("True + 1", "only numbers"),
    "statement": ("import os", "not an expression"),
    "impossible date": ("2025-02-30", "not a real date"),
    "date out of range": ("9999-12-31 + days(1)", "outside the years"),
    "date plus number": ("2025-01-01 + 1", "dates only take"),
    "a span alone": ("days(3)", "span of time"),
    "empty": ("   ", "empty"),
}


@pytest.mark.parametrize("text,reason", REFUSED.values(), ids=REFUSED.keys())
def test_forbidden_construct_is_refused_with_its_reason(text, reason):
    with pytest.raises(CalcRefused, match=reason):
        evaluate(text)


def test_refusal_is_a_ragkit_error():
    assert issubclass(CalcRefused, RagkitError)


@pytest.mark.parametrize("text,expected", [
    ("2999 - 2599", "400"),
    ("1,299 + 189 + 2 × 24.99", "1537.98"),
    ("0.1 + 0.2", "0.3"),
    ("3000 ÷ 1500", "2"),
    ("（2999－400）＋1299", "3898"),
    ("$1,299 + $149", "1448"),
    ("2 x 24.99", "49.98"),
    ("-3 + 5", "2"),
    ("2 ^ 10", "1024"),
    ("7 // 2", "3"),
    ("15% * 3000", "450"),
    ("round(400 / 2999 * 100, 1)", "13.3"),
    ("round(1.2, 2)", "1.20"),
    ("round(2.5)", "3"),
    ("round(-2.5)", "-3"),
    ("1 / 3", "0.3333"),
    ("ceil(12 / 9) * 24.99", "49.98"),
    ("floor(7.9)", "7"),
    ("max(1, 5, 3) - min(4, 2)", "3"),
    ("abs(65 - 75)", "10"),
    ("1.05 ** 2", "1.1025"),
    ("2 ** 64", "18446744073709551616"),
    ("round（13.336，2）", "13.34"),
])
def test_arithmetic(text, expected):
    assert evaluate(text).text == expected


@pytest.mark.parametrize("text,expected", [
    ("date(2025-02-15) + months(18)", "2026-08-15"),
    ("2025-02-15 + 18 months", "2026-08-15"),
    ("2025年6月10日 + 7天", "2025-06-17"),
    ("2025-06-11 + days(14)", "2025-06-25"),
    ("date(2025, 1, 10) + 48个月", "2029-01-10"),
    ("2024-01-31 + months(1)", "2024-02-29"),  # month end, leap year
    ("2025-01-31 + months(1)", "2025-02-28"),  # month end
    ("2024-02-29 + years(1)", "2025-02-28"),  # leap day to a common year
    ("2024-02-28 + days(1)", "2024-02-29"),
    ("2023-03-31 - months(1)", "2023-02-28"),
    ("2025-01-01 + weeks(3)", "2025-01-22"),
    ("2025/03/01 - days(1)", "2025-02-28"),
    ("min(2025-01-01, 2024-12-31)", "2024-12-31"),
])
def test_date_arithmetic(text, expected):
    result = evaluate(text)
    assert result.kind == "date"
    assert result.text == expected
    assert result.value == dt.date.fromisoformat(expected)


@pytest.mark.parametrize("text,days", [
    ("2025-03-01 - 2025-01-15", 45),
    ("2024-03-01 - 2024-02-01", 29),  # leap year February
    ("2023-03-01 - 2023-02-01", 28),
    ("2025-01-01 - 2025-12-31", -364),
])
def test_difference_of_two_dates_in_days(text, days):
    result = evaluate(text)
    assert (result.kind, result.value, result.text) == ("number", days, str(days))


def test_result_carries_the_normalised_expression():
    result = evaluate("2025年6月10日 + 7天")
    assert result.expression == "date(2025, 6, 10) + days(7)"
    assert result.as_dict() == {"expression": "date(2025, 6, 10) + days(7)", "value": "2025-06-17",
                                "kind": "date"}
    assert evaluate("1,000 * 2").value == 2000 and isinstance(evaluate("1,000 * 2").value, int)


def test_a_long_ordinary_sum_is_within_the_bounds():
    text = " + ".join(["24.99"] * 25)
    assert len(text) < MAX_CHARS
    assert evaluate(text).text == "624.75"


EXAMPLES = int(os.environ.get("RAGKIT_FUZZ_EXAMPLES", "300"))  # as in test_fuzz.py
# pieces of the calculator's own language and of hostile input, so that random strings reach the
# interpreter and its bounds, not only the parser
PIECES = ["1", "0", "9" * 30, "2.5", "1,000", "(", ")", "+", "-", "*", "/", "//", "**", "^", "%", "×",
          "÷", " ", "round(", "abs(", "min(", "max(", "floor(", "ceil(", "date(", "days(", "months(",
          "years(", ", ", "2024-02-29", "9999-12-31", "0001-01-01", "2025年1月31日", "7天", "3个月",
          "64", "-64", "100000", "x", "__class__", ".", "[", "]", "'a'", "lambda", "1e9", "（", "，"]


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True)
@given(st.text(max_size=300) | st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_calculator_raises_nothing_but_its_refusal(text):
    _value_or_refusal(text)


def _value_or_refusal(text: str) -> None:
    try:
        result = evaluate(text)
    except CalcRefused:
        return
    assert result.kind in ("number", "date") and result.text


def _compound(children):
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "//", "**", "^", "×", "÷"]), children)
    one = st.tuples(st.sampled_from(["round", "abs", "floor", "ceil", "days", "months", "years"]), children)
    two = st.tuples(st.sampled_from(["min", "max", "round"]), children, children)
    return (binary.map(lambda t: f"({t[0]} {t[1]} {t[2]})") | one.map(lambda t: f"{t[0]}({t[1]})")
            | two.map(lambda t: f"{t[0]}({t[1]}, {t[2]})"))


# well-formed expressions, to reach the interpreter's own bounds: zero divisors, huge powers, dates
# past 9999, spans where numbers belong
EXPRESSIONS = st.recursive(st.sampled_from(["0", "1", "-1", "2.5", "9" * 30, "1,000", "64", "2024-02-29",
                                            "9999-12-31", "0001-01-01", "days(100000)", "years(9000)"]),
                           _compound, max_leaves=10)


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True)
@given(EXPRESSIONS)
def test_well_formed_expressions_give_a_value_or_a_refusal(text):
    _value_or_refusal(text)


# ---- the model's output ----------------------------------------------------------------------

EN_OUTPUT = """Sure! Here is my reasoning.
**Facts:**
- The V7 launched at CNY 2,999 [1]
- From 1 March 2025 it costs CNY 2,599 [2]
**Calculation:**
```
2,999 − 2,599 = 500
```
**Answer:** The price fell by 500 yuan [1][2].
I hope this helps."""

ZH_OUTPUT = """事实：V7 首发价 2,999 元［1］；降价后 2,599 元［2］。
计算：（2999－2599）÷2999×100 ≈ 13.3
答案：便宜了百分之{result}"""


def test_english_output_with_noise_and_a_wrong_claimed_result():
    solution = solve(EN_OUTPUT)
    assert solution.parsed.expression == "2,999 − 2,599"
    assert solution.parsed.claimed == "500"
    assert solution.parsed.citations == [1, 2]
    assert solution.calculation.text == "400"
    assert solution.answer == "The price fell by 400 yuan [1][2]."


def test_chinese_output_with_full_width_characters_and_a_result_slot():
    solution = solve(ZH_OUTPUT)
    assert solution.parsed.facts == ["V7 首发价 2,999 元[1]", "降价后 2,599 元[2]。"]
    assert solution.calculation.text == "13.3378"
    assert solution.answer == "便宜了百分之13.3378 [1][2]"


def test_date_answer_keeps_the_form_the_model_wrote():
    solution = solve("事实：签收日 2025年6月10日 [1]；7 天无理由退货 [2]\n"
                     "计算：2025年6月10日 + 7天 = 2025年6月18日\n答案：最晚 2025年6月18日 前申请。")
    assert solution.answer == "最晚 2025年6月17日 前申请。 [1][2]"
    solution = solve("Facts: bought 15 February 2025 [1]\nCalculation: date(2025-02-15) + months(18)\n"
                     "Answer: It ends on 14 August 2026 [1].")
    assert solution.answer == "It ends on 15 August 2026 [1]."
    solution = solve("事实：2025 年 2 月 10 日购买 [1]；电池保修 18 个月 [2]\n"
                     "计算：2025年2月10日 + 18个月\n答案：保修到 2026年9月")
    assert solution.answer == "保修到 2026年8月 [1][2]"


def test_no_calculation_keeps_the_models_answer():
    solution = solve("Facts: limit 35% on firmware 2.0 [1]; E05 means too steep [2]\n"
                     "Calculation: none\nAnswer: E05 [2]")
    assert (solution.answer, solution.calculation, solution.refused) == ("E05 [2]", None, None)


@pytest.mark.parametrize("said", ["计算：无\n答案：无", "Calculation: none\nAnswer: none [1]", "Calculation: n/a\nAnswer: -"])
def test_an_answer_that_says_nothing_falls_back_to_a_direct_answer(said):
    solution = solve("Facts: M3 covers 1,500 m² [1]\n" + said)
    assert solution.answer is None and solution.refused is None


@pytest.mark.parametrize("expression", ["40%", "1,299", "$24.99", "20 minutes", "12 months"])
def test_a_single_value_is_not_a_calculation(expression):
    solution = solve(f"Facts: limit 40% [1]\nCalculation: {expression}\nAnswer: {{result}} [1]")
    assert solution.answer == f"{solution.parsed.expression} [1]" and solution.refused  # the value it waits for
    assert solution.calculation is None
    solution = solve(f"Facts: bought in 2024, 12-month warranty [1]\nCalculation: {expression}\nAnswer: 12 months [1]")
    assert solution.answer == "12 months [1]" and solution.calculation is None  # the model's own line


def test_english_dates_are_read():
    assert evaluate("15 February 2025 + 18 months").value == dt.date(2026, 8, 15)
    assert evaluate("February 15, 2025 + 18 months").value == dt.date(2026, 8, 15)
    assert evaluate("15 Feb 2025 - 10 January 2025").value == 36


def test_hostile_expression_gives_no_answer_and_the_reason():
    solution = solve("Facts: x [1]\nCalculation: ().__class__.__subclasses__()\nAnswer: 42")
    assert solution.answer is None
    assert "attribute access" in solution.refused
    assert solution.as_dict()["value"] is None


def test_answer_is_the_value_when_the_answer_line_has_several_numbers():
    solution = solve("Facts: 75 min on 2.1 [1]; 65 min on 2.2 [2]\nCalculation: 75 - 65\n"
                     "Answer: firmware 2.2 cut 3 or 4 minutes")
    assert solution.answer == "10 [1][2]"


def test_output_without_labels_has_nothing_to_compute():
    parsed = parse_reasoning("The answer is 400.")
    assert (parsed.expression, parsed.answer, parsed.facts) == (None, None, [])
    assert solve("The answer is 400.").answer is None


def test_labels_on_one_line_and_a_note_after_the_expression():
    solution = solve("Facts: A3 costs 1,250 yuan [1]; dock 380 yuan [2]. "
                     "Calculation: 1250 + 380 (both items) = 1600. Answer: {result} yuan")
    assert solution.parsed.expression == "1250 + 380"
    assert solution.answer == "1630 yuan [1][2]"
    assert clean_expression("**2999 - 2599** [1] → 400") == ("2999 - 2599", "400")
    assert clean_expression("无") == (None, None)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_prompted_format_example_solves_to_its_own_answer(lang):
    example = REASONING_FORMAT[lang].split("\n", 2)[2]  # after the instruction and "Example:"
    solution = solve(example)
    assert solution.calculation.text == "1630"
    assert solution.answer.startswith("1630") and solution.answer.endswith("[1][2]")


@pytest.mark.parametrize("text, shown", [
    ("(2999 - 2599) / 2999 * 100%", "13.34%"),
    ("(2999-2599)/2999×100%", "13.34%"),
    ("(75 - 60) / 60 * 100%", "25%"),
    ("20% * 50", "10"),
])
def test_an_expression_ending_in_times_100_percent_reads_as_a_percentage(text, shown):
    assert evaluate(text).text == shown


def test_a_calculation_that_copies_the_result_slot_computes_nothing():
    assert clean_expression("{result}") == clean_expression("{result} {result}") == (None, None)
    solution = solve("事实：签收后 7 天内可退货 [1]\n计算：{result}\n答案：2025 年 6 月 17 日前 [1]")
    assert solution.answer == "2025 年 6 月 17 日前 [1]" and solution.refused is None


def test_a_lone_value_with_a_backslash_fills_the_slot_as_text():
    solution = solve("Facts: x [1]\nCalculation: 12\\months\nAnswer: {result} [1]")
    assert solution.answer == "12\\months [1]"
