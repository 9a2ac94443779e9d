"""A safe calculator for the one expression a model writes when a question needs arithmetic.

Why: a 1.5B model reads the facts well enough but gets sums, differences and dates wrong when it
computes in its head (issue 26). It writes the expression instead and ragkit evaluates it here.

How it stays safe: the text is normalised by a few regex rewrites (ragkit.reason.syntax), parsed with `ast` (never `eval`
or `exec`) and walked by an interpreter that knows only the nodes below; anything else (names,
attributes, subscripts, lambdas, comprehensions, strings, comparisons, bitwise operators, keyword
arguments) is refused with a reason. Input length, node count, nesting depth, digits per number,
the size of every intermediate value and the exponent of a power are all bounded, so no input
can make it slow or large. Arithmetic is exact (`fractions.Fraction`), so 0.1 + 0.2 is 0.3.

What a model may write (numbers, + - * / // **, round, abs, min, max, floor, ceil, dates and
spans of days, weeks, months, years) is listed in ragkit.reason.syntax.

`evaluate(text)` returns a `CalcResult` or raises `CalcRefused` (and nothing else).
"""

from __future__ import annotations

import ast
import calendar
import datetime as dt
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from ragkit.errors import CalcRefused
from ragkit.reason.syntax import normalise

MAX_CHARS = 200  # one expression for one question; anything longer is not a calculation
MAX_NODES = 120  # ast nodes, operators included
MAX_DEPTH = 32  # a sum of 30 terms is a chain 30 deep
MAX_DIGITS = 30  # per number literal
MAX_BITS = 400  # numerator or denominator of any intermediate value (about 120 digits)
MAX_EXPONENT = 64
MAX_DECIMALS = 10
DEFAULT_DECIMALS = 4  # a non-integer result without round(...) is shown with up to 4 decimals
MAX_SPAN_DAYS = 3_660_000

_LITERAL = re.compile(r"\d+(?:\.\d+)?")

_OPERATOR_NAMES = {ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
                   ast.RShift: ">>", ast.Mod: "%", ast.MatMult: "@", ast.Invert: "~", ast.Not: "not"}

# every node an expression may hold (besides calls to _FUNCTIONS by name)
_WHITELIST = (ast.Expression, ast.Constant, ast.UnaryOp, ast.BinOp, ast.operator, ast.unaryop)

Value = Fraction | dt.date


@dataclass(frozen=True)
class Span:
    """A length of calendar time: months (years are 12 months) then days."""

    months: int = 0
    days: int = 0


@dataclass(frozen=True)
class CalcResult:
    """What the calculator gives back: the value, the text to show, the expression it read."""

    value: int | float | dt.date
    text: str  # integers without ".0", non-integers rounded, dates as ISO (2025-06-17)
    expression: str  # the normalised expression, as evaluated
    kind: Literal["number", "date"]

    def as_dict(self) -> dict:
        return {"expression": self.expression, "value": self.text, "kind": self.kind}


def evaluate(text: str) -> CalcResult:
    """Evaluate one expression; raise `CalcRefused` (with the reason) for anything else."""
    if not isinstance(text, str):
        raise CalcRefused("the expression is not text")
    if len(text) > MAX_CHARS:
        raise CalcRefused(f"the expression is longer than {MAX_CHARS} characters")
    source = normalise(text)
    if not source:
        raise CalcRefused("the expression is empty")
    if len(source) > MAX_CHARS * 2:
        raise CalcRefused(f"the expression is longer than {MAX_CHARS} characters")
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise CalcRefused(f"not an expression the calculator reads: {source!r}") from e
    _check_shape(tree)
    value = _Interpreter(source).run(tree.body)
    decimals = _requested_decimals(tree.body)
    return _result(value, decimals, ast.unparse(tree))


def _check_shape(tree: ast.AST) -> None:
    """The whole tree, before anything is computed: its size, and every node on the whitelist."""
    nodes = 0
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise CalcRefused(f"the expression has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            raise CalcRefused(f"the expression is nested more than {MAX_DEPTH} deep")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise CalcRefused(_describe(node.func))
            if node.func.id not in _FUNCTIONS:
                raise CalcRefused(f"the function {node.func.id!r} is not allowed; use {', '.join(_FUNCTIONS)}")
            children = [*node.args, *node.keywords]  # the function's name is checked above
        elif not isinstance(node, _WHITELIST) or getattr(node, "op", None).__class__ in _OPERATOR_NAMES:
            raise CalcRefused(_describe(node))
        else:
            children = list(ast.iter_child_nodes(node))
        stack.extend((child, depth + 1) for child in children)


def _requested_decimals(node: ast.AST) -> int | None:
    """round(x, n) at the top asks for exactly n decimals in the text (13.30, not 13.3)."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "round"
            and len(node.args) == 2 and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, int)):
        return node.args[1].value
    return None


def _result(value: Value | Span, decimals: int | None, expression: str) -> CalcResult:
    if isinstance(value, dt.date):
        return CalcResult(value, value.isoformat(), expression, "date")
    if isinstance(value, Span):
        raise CalcRefused("the result is a span of time, not a number or a date; add it to a date")
    if value.denominator == 1:
        return CalcResult(int(value), str(int(value)), expression, "number")
    places = DEFAULT_DECIMALS if decimals is None else decimals
    text = decimal_text(value, places)
    if decimals is None:
        text = text.rstrip("0").rstrip(".")
    return CalcResult(float(value), text, expression, "number")


def decimal_text(value: Fraction, places: int) -> str:
    """`value` rounded (half away from zero) and written with exactly `places` decimals."""
    scaled = round_half_away(value, places) * 10**places  # a whole number
    sign = "-" if scaled < 0 else ""
    whole, part = divmod(abs(int(scaled)), 10**places)
    return f"{sign}{whole}.{part:0{places}d}" if places else f"{sign}{whole}"


def round_half_away(value: Fraction, places: int) -> Fraction:
    """Round to `places` decimals, halves away from zero (2.5 -> 3, as people round)."""
    scale = 10**places
    scaled = abs(value) * scale
    whole = math.floor(scaled + Fraction(1, 2))
    return Fraction(whole if value >= 0 else -whole, scale)


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` moved by whole months, clamped to the last day of the month it lands in."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise CalcRefused("the date falls outside the years 1 to 9999")
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


class _Interpreter:
    """Walks the whitelisted nodes; every other node is refused by name."""

    def __init__(self, source: str):
        self.source = source

    def run(self, node: ast.AST) -> Value | Span:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.number(self.run(node.operand), "a sign")
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and type(node.op) not in _OPERATOR_NAMES:
            return self.binary(node.op, self.run(node.left), self.run(node.right))
        if isinstance(node, ast.Call):
            return self.call(node)
        raise CalcRefused(_describe(node))

    def constant(self, node: ast.Constant) -> Fraction:
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise CalcRefused(f"only numbers are allowed, not {type(node.value).__name__} literals")
        literal = ast.get_source_segment(self.source, node) or ""
        if not _LITERAL.fullmatch(literal):
            raise CalcRefused(f"write numbers as plain digits, not {literal!r}")
        if sum(c.isdigit() for c in literal) > MAX_DIGITS:
            raise CalcRefused(f"a number has more than {MAX_DIGITS} digits")
        return Fraction(literal)

    def binary(self, op: ast.operator, left: Value | Span, right: Value | Span) -> Value | Span:
        if isinstance(left, (dt.date, Span)) or isinstance(right, (dt.date, Span)):
            return self.calendar(op, left, right)
        if isinstance(op, ast.Add):
            return _bounded(left + right)
        if isinstance(op, ast.Sub):
            return _bounded(left - right)
        if isinstance(op, ast.Mult):
            return _bounded(left * right)
        if isinstance(op, (ast.Div, ast.FloorDiv)):
            if right == 0:
                raise CalcRefused("division by zero")
            return _bounded(Fraction(left // right) if isinstance(op, ast.FloorDiv) else left / right)
        if isinstance(op, ast.Pow):
            return _power(left, right)
        raise CalcRefused(f"the operator {type(op).__name__} is not allowed")

    def calendar(self, op: ast.operator, left: Value | Span, right: Value | Span) -> Value:
        try:
            if isinstance(left, dt.date) and isinstance(right, Span) and isinstance(op, (ast.Add, ast.Sub)):
                sign = 1 if isinstance(op, ast.Add) else -1
                return add_months(left, sign * right.months) + dt.timedelta(days=sign * right.days)
            if isinstance(left, Span) and isinstance(right, dt.date) and isinstance(op, ast.Add):
                return add_months(right, left.months) + dt.timedelta(days=left.days)
            if isinstance(left, dt.date) and isinstance(right, dt.date) and isinstance(op, ast.Sub):
                return Fraction((left - right).days)
        except OverflowError as e:
            raise CalcRefused("the date falls outside the years 1 to 9999") from e
        raise CalcRefused("dates only take + or - a span (days, weeks, months, years), or - a date")

    def call(self, node: ast.Call) -> Value | Span:
        if not isinstance(node.func, ast.Name):
            raise CalcRefused(_describe(node.func))
        name = node.func.id
        if name not in _FUNCTIONS:
            raise CalcRefused(f"the function {name!r} is not allowed; use {', '.join(_FUNCTIONS)}")
        if node.keywords:
            raise CalcRefused("keyword arguments are not allowed")
        low, high = _FUNCTIONS[name]
        if not low <= len(node.args) <= high:
            raise CalcRefused(f"{name} takes {low} to {high} arguments, got {len(node.args)}")
        args = [self.run(a) for a in node.args]
        if name in ("min", "max"):
            if not (all(isinstance(a, Fraction) for a in args) or all(isinstance(a, dt.date) for a in args)):
                raise CalcRefused(f"{name} compares numbers with numbers or dates with dates")
            return min(args) if name == "min" else max(args)
        if name == "date":
            year, month, day = (self.whole(a, "date") for a in args)
            try:
                return dt.date(year, month, day)
            except (ValueError, OverflowError) as e:
                raise CalcRefused(f"not a real date: {year}-{month}-{day}") from e
        if name in ("days", "weeks", "months", "years"):
            n = self.whole(args[0], name)
            days = n * 7 if name == "weeks" else n if name == "days" else 0
            months = n * 12 if name == "years" else n if name == "months" else 0
            if abs(days) > MAX_SPAN_DAYS or abs(months) > MAX_SPAN_DAYS // 30:
                raise CalcRefused("the span of time is too long")
            return Span(months=months, days=days)
        x = self.number(args[0], name)
        if name == "abs":
            return abs(x)
        if name == "floor":
            return Fraction(math.floor(x))
        if name == "ceil":
            return Fraction(math.ceil(x))
        places = self.whole(args[1], "round") if len(args) == 2 else 0
        if not 0 <= places <= MAX_DECIMALS:
            raise CalcRefused(f"round keeps 0 to {MAX_DECIMALS} decimals")
        return round_half_away(x, places)

    @staticmethod
    def number(value: Value | Span, where: str) -> Fraction:
        if not isinstance(value, Fraction):
            raise CalcRefused(f"{where} takes a number, not a date or a span")
        return value

    def whole(self, value: Value | Span, where: str) -> int:
        value = self.number(value, where)
        if value.denominator != 1:
            raise CalcRefused(f"{where} takes a whole number, got {float(value)}")
        return int(value)


# name -> (least, most) arguments
_FUNCTIONS = {"round": (1, 2), "abs": (1, 1), "min": (2, 10), "max": (2, 10), "floor": (1, 1),
              "ceil": (1, 1), "date": (3, 3), "days": (1, 1), "weeks": (1, 1), "months": (1, 1),
              "years": (1, 1)}


def _bounded(value: Fraction) -> Fraction:
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise CalcRefused("an intermediate value is too large")
    return value


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        raise CalcRefused("the exponent must be a whole number")
    n = int(exponent)
    if abs(n) > MAX_EXPONENT:
        raise CalcRefused(f"the exponent is larger than {MAX_EXPONENT}")
    if base == 0 and n < 0:
        raise CalcRefused("division by zero")
    bits = max(base.numerator.bit_length(), base.denominator.bit_length())
    if bits * abs(n) > MAX_BITS:
        raise CalcRefused("the power is too large")
    return base**n


def _describe(node: ast.AST) -> str:
    """Why a node is refused, in words the log reader understands."""
    if isinstance(node, ast.Name):
        return f"names are not allowed: {node.id!r}"
    if isinstance(node, ast.Attribute):
        return f"attribute access is not allowed: .{node.attr}"
    if isinstance(node, ast.Subscript):
        return "subscripts are not allowed"
    if isinstance(node, (ast.BinOp, ast.UnaryOp)) and type(node.op) in _OPERATOR_NAMES:
        return f"the operator {_OPERATOR_NAMES[type(node.op)]} is not allowed"
    if isinstance(node, (ast.JoinedStr, ast.FormattedValue)):
        return "strings are not allowed"
    names = {ast.Lambda: "lambdas", ast.NamedExpr: "assignments", ast.Compare: "comparisons",
             ast.BoolOp: "and/or", ast.IfExp: "conditionals", ast.ListComp: "comprehensions",
             ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
             ast.GeneratorExp: "comprehensions", ast.Tuple: "tuples", ast.List: "lists",
             ast.Dict: "dicts", ast.Set: "sets", ast.Starred: "starred arguments",
             ast.keyword: "keyword arguments"}
    return f"{names.get(type(node), type(node).__name__)} are not allowed"
