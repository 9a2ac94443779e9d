"""The kind of value a question asks for, and the computed answers that cannot be one."""

from __future__ import annotations

import pytest

from ragkit.reason.kinds import asked_kind, fits_kind


@pytest.mark.parametrize("question, lang, kind", [
    ("Which mower can handle a 2,000 m² lawn?", "en", "name"),
    ("A Falcon X2 flies into 12 m/s wind. Which error code does it show?", "en", "name"),
    ("家里草坪有 800 平方米，哪款无人机合适？", "zh", "name"),
    ("飞到 30 米高会显示哪个故障代码？", "zh", "name"),
    ("Bought on 3 March 2025, until what date is it covered?", "en", "date"),
    ("2025 年 3 月 3 日购买，保修到什么时候？", "zh", "date"),
    ("How long does a 2-pack of filters last?", "en", "span"),
    ("两块电池一共能飞多久？", "zh", "span"),
    ("How much do two batteries cost in total?", "en", None),
    ("Which Wi-Fi band does it need?", "en", None),  # a band is a value, not a thing's name
    ("两块电池一共多少钱？", "zh", None),
])
def test_asked_kind(question, lang, kind):
    assert asked_kind(question, lang) == kind


@pytest.mark.parametrize("answer, kind, fits", [
    ("56000 cm [2]", "name", False),
    ("35 % [3]", "name", False),
    ("The Falcon X5 [1]", "name", True),
    ("E05 [2]", "name", True),
    ("33.98 USD [3]", "span", False),
    ("6 months [1]", "span", True),
    ("7–10 working days [2]", "span", True),
    ("2个工作日内 [1]", "span", True),
    ("两年 [1]", "span", True),
    ("18 个月。根据资料 [1]，2025 年 1 月 1 日及以后购买的产品", "date", False),  # the gloss is not the answer
    ("2026-08-15 [3]", "date", True),
    ("15 August 2026 [1]", "date", True),
    ("2025 年 5 月 31 日 [1]", "date", True),
    ("anything at all", None, True),
])
def test_fits_kind(answer, kind, fits):
    assert fits_kind(answer, kind) is fits
