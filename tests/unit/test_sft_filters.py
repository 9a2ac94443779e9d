"""Each SFT-data quality filter on its own, and the leakage guard against bench questions."""

from __future__ import annotations

import json

import pytest

from ragkit.errors import UsageError
from ragkit.sftdata import filters as F

CHUNK_EN = "The Falcon X2 has a flight time of 38 minutes. Its battery is 5,200 mAh and costs USD 1,299 / CNY 8,999."
CHUNK_ZH = "猎鹰 X2 的续航时间为 38 分钟，电池保修 12 个月。"


def test_supported_accepts_verbatim_answers_and_rejects_invented_ones():
    assert F.supported("38 minutes", CHUNK_EN)
    assert F.supported("**5,200 mAh**", CHUNK_EN)  # markdown and spacing do not matter
    assert F.supported("12 个月", CHUNK_ZH)
    assert not F.supported("45 minutes", CHUNK_EN)
    assert not F.supported("24 个月", CHUNK_ZH)


def test_contains_answer_catches_the_answer_or_one_of_its_parts():
    assert F.contains_answer("Is the flight time 38 minutes?", "38 minutes")
    assert F.contains_answer("What does CNY 8,999 buy?", "USD 1,299 / CNY 8,999")
    assert F.contains_answer("电池保修 12 个月吗？", "12 个月")
    assert not F.contains_answer("How long is the flight time of the Falcon X2?", "38 minutes")


def test_contains_answer_matches_bare_numbers_only_as_whole_numbers():
    assert not F.contains_answer("What does error E03 mean?", "3")
    assert not F.contains_answer("How many blades does firmware 2.3 add?", "3")
    assert F.contains_answer("Are there 3 blades on the disc?", "3")


def test_contains_answer_catches_a_short_quantity_with_its_unit():
    assert F.contains_answer("How long does the Dock Pro's 3 L dust bag last?", "3 L")
    assert F.contains_answer("Is the slope limit 5%?", "5%")
    assert not F.contains_answer("What does error E05 mean?", "5%") and not F.contains_answer("Is it 13 L?", "3 L")


@pytest.mark.parametrize("question,lang", [
    ("According to this passage, how long does the drone fly?", "en"),
    ("What does the table above show for the X2?", "en"),
    ("It stops after how many seconds?", "en"),
    ('According to "Falcon X2 Manual", it stops after how many seconds?', "en"),
    ("根据上文，电池保修多久？", "zh"),
    ("本手册规定的保修期是多久？", "zh"),
    ("它的续航时间是多少？", "zh"),
])
def test_needs_context_flags_questions_that_lean_on_the_chunk(question, lang):
    assert F.needs_context(question, lang)


@pytest.mark.parametrize("question,lang", [
    ("How long is the flight time of the Falcon X2?", "en"),
    ('According to "Falcon X2 Manual", how long is the flight time?', "en"),
    ("猎鹰 X2 的续航时间是多少？", "zh"),
    ("支持 iOS 14 及以上版本吗？", "zh"),  # 以上 here means "or later", not "the above"
])
def test_needs_context_passes_standalone_questions(question, lang):
    assert not F.needs_context(question, lang)


def test_length_limits_per_language_and_answer_kind():
    assert F.length_ok("How long is the flight time of the Falcon X2?", "38 minutes", "en")
    assert not F.length_ok("Time?", "38 minutes", "en")
    assert not F.length_ok("How long is the flight time of the Falcon X2?", "x" * 400, "en")
    assert F.length_ok("How long is the flight time of the Falcon X2?", "x" * 400, "en", long_answer=True)
    assert F.length_ok("续航多久？", "38 分钟", "zh")
    assert not F.length_ok("续航？", "38 分钟", "zh")


def test_inconsistent_catches_wrong_question_words_and_off_topic_questions():
    assert F.inconsistent("Who designed the Falcon X2 battery?", "quantity", CHUNK_EN, "en")
    assert F.inconsistent("When was the Falcon X2 launched?", "money", CHUNK_EN, "en")
    assert F.inconsistent("How long does the camera gimbal take to calibrate?", "duration", CHUNK_EN, "en")
    assert not F.inconsistent("How long is the flight time of the Falcon X2?", "duration", CHUNK_EN, "en")
    assert F.inconsistent("谁设计了猎鹰 X2 的电池？", "duration", CHUNK_ZH, "zh")
    assert not F.inconsistent("猎鹰 X2 的续航时间是多少？", "duration", CHUNK_ZH, "zh")


def test_near_dup_index_finds_exact_and_near_duplicates():
    idx = F.NearDupIndex()
    idx.add("How long is the flight time of the Falcon X2?")
    assert idx.match("how long is the flight time of the falcon x2 ?")[0] == "duplicate"
    assert idx.match("How long is the flight time of the Falcon X2 drone?")[0] == "near_duplicate"
    assert idx.match("What is the battery capacity of the Falcon X2?") is None


def test_char_ngrams_use_bigrams_for_chinese_and_trigrams_for_english():
    assert F.char_ngrams("续航时间") == {"续航", "航时", "时间"}
    assert F.char_ngrams("Flight") == {"fli", "lig", "igh", "ght"}
    assert F.jaccard(F.char_ngrams("续航时间"), F.char_ngrams("续航时间")) == 1.0


def test_strip_anchor_removes_document_names_in_both_languages():
    assert F.strip_anchor('According to "Falcon X2 Manual", how long is the flight?') == "How long is the flight?"
    assert F.strip_anchor("根据《猎鹰 X2 手册》，续航多久？") == "续航多久？"


def _bench(tmp_path, questions):
    path = tmp_path / "bench.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i, q in enumerate(questions):
            f.write(json.dumps({"id": f"b{i}", "question": q, "answers": ["x"], "sources": ["a.md"],
                                "category": "knowledge", "difficulty": "easy"}, ensure_ascii=False) + "\n")
    return path


def test_bench_guard_catches_planted_duplicates_with_and_without_anchor(tmp_path):
    guard = F.BenchGuard.from_file(_bench(tmp_path, ["How long is the flight time of the Falcon X2?",
                                                     "猎鹰 X2 的电池保修多久？"]))
    assert guard.leak("How long is the flight time of the Falcon X2?")
    assert guard.leak("What is the flight time of the Falcon X2?")
    assert guard.leak('According to "Falcon X2 Manual", how long is the flight time of the Falcon X2?')
    assert guard.leak("根据《猎鹰 X2 保修政策》，猎鹰 X2 的电池保修多久？")
    assert not guard.leak("What is the battery capacity of the Falcon X2?")
    assert not guard.leak("猎鹰 X2 的最大抗风等级是多少？")


def test_bench_guard_ignores_long_questions_that_merely_contain_the_bench_words(tmp_path):
    guard = F.BenchGuard.from_file(_bench(tmp_path, ["What is the battery capacity of the Falcon X2?"]))
    long_q = ("A Falcon X2 battery is defective if it fails to charge or its capacity falls below what percentage "
              "of the rated capacity within the warranty period under normal use?")
    assert not guard.leak(long_q)


def test_bench_guard_reports_unusable_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        F.BenchGuard.from_file(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(UsageError, match="not valid JSON"):
        F.BenchGuard.from_file(bad)


def test_a_code_answer_does_not_fit_a_price_or_time_question():
    source = "| Product | Fits | Price (USD) |\n| Blade kit, 9 blades | M3 | 24.99 |"
    assert F.inconsistent("What is the price of the blade kit?", "cell", source, "en", "M3")
    assert F.inconsistent("What is the name of the blade kit?", "cell", source, "en", "M3")
    assert not F.inconsistent("What is the price of the blade kit?", "cell", source, "en", "24.99")
    assert F.inconsistent("电池包的价格是多少？", "cell", "电池包 适用机型 价格 M5", "zh", "M5")
    assert not F.inconsistent("电池包适用于哪种机型？", "cell", "电池包 适用机型 M5", "zh", "M5")
