"""The calculator's surface syntax: what a model writes, rewritten into a Python expression.

Why a separate step: models write 5,000, 15%, 2 × 3, ２０２５年６月１０日 + 7天 or 2025-02-15 + 18 months;
`ast` would read "5,000" as a tuple and "2025-02-15" as a subtraction with leading zeros. These
regex rewrites turn each of those into the one form ragkit.reason.calc interprets (numbers,
operators, and calls to its whitelisted functions), before anything is parsed. Nothing here
evaluates; the calculator still refuses whatever is not on its whitelist.

The language, what a model may write:
- numbers: 12, 2.5, 5,000 (a comma followed by exactly three digits and no space is a thousands
  separator; write function arguments with a space after the comma: round(x, 2)); no 1e3, 0x10
- operators: + - * / // ** (or ^) and parentheses; × ÷ · − and " x " between numbers are read as
  * / * - *; full-width forms (（）＋，) are read as their ASCII forms; a leading $ ¥ € £ is dropped
- N% means N/100 (there is no modulo); an expression ending in "* 100%" is shown as a percentage
  (13.34%, two decimals unless round() asks otherwise)
- functions: round(x) or round(x, n) (half away from zero, 0 <= n <= 10), abs, min, max,
  floor, ceil
- dates: 2025-01-15 or 2025/01/15 (no spaces inside), date(2025-01-15), date(2025, 1, 15),
  2025年1月15日, 15 January 2025, January 15, 2025 (month names in English, full or cut to 3 letters)
- spans: days(n), weeks(n), months(n), years(n); also written "7 days", "3 months", "7天",
  "3个月", "2年". date + months(n) clamps to the month's end (2024-01-31 + months(1) = 2024-02-29).
- date - date is a number of days.
"""

from __future__ import annotations

import re
import unicodedata

_CHAR_MAP = str.maketrans({"×": "*", "÷": "/", "·": "*", "⋅": "*", "−": "-", "–": "-", "^": "**"})
_CURRENCY = re.compile(r"[$¥€£](?=\s*\d)")
_ZH_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")
_MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_MONTH = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
# "15 February 2025", "February 15, 2025"
_EN_DATE = re.compile(rf"(?<![\w.])(?:(\d{{1,2}})\s+{_MONTH}\s+(\d{{4}})|{_MONTH}\s+(\d{{1,2}}),?\s+(\d{{4}}))(?![\w.])",
                      re.IGNORECASE)
_ISO_CALL = re.compile(r"date\(\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*\)")
_ISO_DATE = re.compile(r"(?<![\w.])(\d{4})([-/])(\d{1,2})\2(\d{1,2})(?![\w.])")
# "7 days", "3个月", "2年" (at most 3 digits before 年, so a bare year like 2025年 is not a span)
_SPAN_WORDS = re.compile(r"(?<![\w.])(\d{1,7})\s*(days?|weeks?|months?|years?|天|周|星期|个月)(?![A-Za-z])"
                         r"|(?<![\w.])(\d{1,3})\s*(年)")
_SPAN_FUNC = {"day": "days", "天": "days", "week": "weeks", "周": "weeks", "星期": "weeks",
              "month": "months", "个月": "months", "year": "years", "年": "years"}
_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,])(?!\.\d*,)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_TIMES_X = re.compile(r"(?<=[\d)])\s+[xX]\s+(?=[\d(])")


def normalise(text: str) -> str:
    """The model's expression in the calculator's own syntax (the list is in ragkit.reason.calc)."""
    text = text.replace("，", ", ").replace("。", "")  # a full-width comma separates arguments
    text = unicodedata.normalize("NFKC", text).translate(_CHAR_MAP).strip()
    text = _CURRENCY.sub("", text)
    text = _ZH_DATE.sub(lambda m: f"date({int(m[1])}, {int(m[2])}, {int(m[3])})", text)
    text = _EN_DATE.sub(_en_date_call, text)
    text = _ISO_CALL.sub(lambda m: f"date({int(m[1])}, {int(m[2])}, {int(m[3])})", text)
    text = _ISO_DATE.sub(lambda m: f"date({int(m[1])}, {int(m[3])}, {int(m[4])})", text)
    text = _SPAN_WORDS.sub(_span_call, text)
    text = _THOUSANDS.sub(lambda m: m[0].replace(",", ""), text)
    text = _PERCENT.sub(r"(\1 / 100)", text)
    return _TIMES_X.sub(" * ", text)


def _en_date_call(m: re.Match) -> str:
    day, month, year = (m[1], m[2], m[3]) if m[1] else (m[5], m[4], m[6])
    return f"date({int(year)}, {_MONTH_NAMES.index(month[:3].lower()) + 1}, {int(day)})"


def _span_call(m: re.Match) -> str:
    number, unit = (m[1], m[2]) if m[1] else (m[3], m[4])
    return f"{_SPAN_FUNC[unit.lower().removesuffix('s') if unit.isascii() else unit]}({number})"
