"""The reasoning router (ragkit.reason.route): which questions need a computation, and one
retrieval query per thing a question names. The questions here are written for the test, not
taken from the bench the rule is measured on (evals/reason_route.py)."""

from __future__ import annotations

import pytest

from ragkit.reason.route import needs_reasoning, sub_queries

NEEDS = [
    ("en", "How many more watts does the Orion 5 draw than the Orion 3?"),
    ("en", "What do a Falcon X2 and two spare filters cost in total?"),
    ("en", "By how many days was the Atlas launch delayed?"),
    ("en", "How many times heavier is the Tern 9 compared with the Tern 4?"),
    ("en", "A lamp was bought on 3 March 2024. On what date does its two-year warranty end?"),
    ("en", "The garden is 900 m². How many 250 m² zones does that make?"),
    ("en", "How long does a 4-pack of cartridges last?"),
    ("en", "What is the difference between the weights of the two models?"),
    ("en", "Which mower handles 1,200 m² on a 30% slope?"),  # two quantities
    ("en", "My lamp draws 60 W. Which fuse should I use?"),  # a quantity as a condition
    ("zh", "苍鹭 A5 的续航比 A3 多多少分钟？"),
    ("zh", "买一台 A5 和两块电池一共要多少钱？"),
    ("zh", "2024 年 3 月 1 日购买的台灯，保修到哪一天？"),
    ("zh", "新款的电池容量是旧款的几倍？"),
    ("zh", "两种型号的价格相差多少元？"),
    ("zh", "降价后便宜了百分之几？"),
]

DIRECT = [
    ("en", "What is the capital of Australia?"),
    ("en", "How much does the Orion 5 weigh?"),
    ("en", "When was the Atlas launched?"),
    ("en", "What is the battery capacity of the Tern 9 in mAh?"),
    ("en", "Which app controls the Falcon X2?"),
    ("en", "How long is the warranty on spare parts other than batteries?"),
    ("zh", "苍鹭 A5 的电池容量是多少？"),
    ("zh", "兰比尔的身高体重是多少？"),  # 比 inside a name is no comparison
    ("zh", "黄鳍紫鱼体长多少？"),  # 长多少 as "body length is how much", not "longer by"
    ("zh", "男子和女子的平均年收入分别是多少？"),
    ("en", "What did the last update on 3 March 2024 change?"),  # "last" as "latest", not a span
    ("zh", "2009年3月17日谁宣布解散政府？"),  # a date, but asks who
    ("zh", "塔身高23.5米象征着什么？"),  # one quantity, asks what it means
]


@pytest.mark.parametrize("lang,question", NEEDS)
def test_question_that_needs_a_computation_is_routed(lang, question):
    assert needs_reasoning(question, lang)


@pytest.mark.parametrize("lang,question", DIRECT)
def test_question_answered_directly_is_not_routed(lang, question):
    assert not needs_reasoning(question, lang)


def test_language_is_detected_when_not_given():
    assert needs_reasoning("苍鹭 A5 的续航比 A3 多多少分钟？")
    assert not needs_reasoning("苍鹭 A5 的电池容量是多少？")


@pytest.mark.parametrize("lang,question,expected", [
    ("en", "What do a Falcon X2 and a Falcon Dock cost together?",
     ["What do a Falcon X2 cost together?", "What do a Falcon Dock cost together?"]),
    ("en", "What is the price of the Tern 4, the Tern 9 and the Orion 5?",
     ["What is the price of the Tern 4?", "What is the price of the Tern 9?",
      "What is the price of the Orion 5?"]),
    ("en", "How much heavier is the Tern 9 than the Tern 4?",
     ["How much heavier is the Tern 9?", "How much heavier is the Tern 4?"]),
    ("en", "What is the weight difference between the Orion 3 and the Orion 5?",
     ["What is the weight difference between the Orion 3?",
      "What is the weight difference between the Orion 5?"]),
    ("zh", "苍鹭 A5 的续航比 A3 多多少分钟？", ["苍鹭 A5 的续航多多少分钟？", "苍鹭 A3 的续航多多少分钟？"]),
    ("zh", "买一台 A5 和两块电池一共要多少钱？", ["买一台 A5一共要多少钱？", "买两块电池一共要多少钱？"]),
    ("zh", "A3、A5 和 A7 的价格各是多少？", ["A3 的价格各是多少？", "A5 的价格各是多少？", "A7 的价格各是多少？"]),
])
def test_question_naming_several_things_is_split(lang, question, expected):
    assert sub_queries(question, lang) == expected


@pytest.mark.parametrize("lang,question", [
    ("en", "Who founded Kestrel?"),
    ("en", "How long does it take to charge and how long does it run?"),  # no named things
    ("en", "Is the Tern 9 more than 5 kg?"),  # one named thing
    ("zh", "和平饭店在哪里？"),  # 和 inside a word
    ("zh", "苍鹭 A5 的电池容量是多少？"),
])
def test_question_naming_one_thing_is_kept_whole(lang, question):
    assert sub_queries(question, lang) == [question]
