"""Prompt building: both styles, both languages, closed-book, trimming to a token budget."""

import re

import pytest

from ragkit.errors import ContextOverflow, UsageError
from ragkit.generate.base import Decoding, StopScanner
from ragkit.generate.prompts import (
    END_MARKER,
    answer_stop,
    build_prompt,
    format_prompt,
    format_target,
    plain_chat,
)
from ragkit.types import Hit


def hit(n, text, source="doc.md", page=None, score=0.8):
    return Hit(rank=n, chunk_id=f"c{n}", source=source, score=score, text=text, page=page, start=10 * n, end=10 * n + len(text))


HITS = [
    hit(1, "The Kestrel M3 main unit has a warranty of 24 months.", "warranty.md"),
    hit(2, "The M3 battery\nlasts about 90 minutes per charge.", "specs.pdf", page=3),
]
ZH_HITS = [hit(1, "隼鸟 M3 整机保修期为两年。", "zh/保修.md"), hit(2, "电池续航约 90 分钟。", "zh/参数.pdf", page=2)]


def words(text):  # a stand-in tokenizer: one token per word or CJK character
    return len(re.findall(r"[\u4e00-\u9fff]|\S+", text))


def test_fewshot_english_layout():
    p = format_prompt("How long is the M3 warranty?", HITS, style="fewshot", lang="en", examples=2)
    # The question block comes last: passages on the context line, then the answer label to complete.
    assert p.endswith("\n\nContext: [1] (source: warranty.md) The Kestrel M3 main unit has a warranty of 24 months. "
                      "[2] (source: specs.pdf, page 3) The M3 battery lasts about 90 minutes per charge.\n"
                      "Question: How long is the M3 warranty?\nAnswer:")
    assert p.count("Question: ") == 3  # two worked examples + the question
    assert "Answer: I don't know\n" in p  # one example teaches the refusal
    assert "资料" not in p


def test_fewshot_chinese_uses_full_width_labels():
    p = format_prompt("隼鸟 M3 的保修期是多久？", ZH_HITS, style="fewshot", lang="zh", examples=1)
    blocks = p.split("\n\n")
    assert len(blocks) == 2
    assert blocks[0] == ("资料：[1]（来源：bakery.md）米勒面包店由安娜·米勒于 1998 年创办，现在有三家门店。\n"
                         "问题：米勒面包店是谁创办的？\n答案：安娜·米勒")
    assert blocks[1] == ("资料：[1]（来源：zh/保修.md）隼鸟 M3 整机保修期为两年。 [2]（来源：zh/参数.pdf，第2页）电池续航约 90 分钟。\n"
                         "问题：隼鸟 M3 的保修期是多久？\n答案：")


@pytest.mark.parametrize("n", [1, 2, 3])
def test_example_nearest_the_question_is_answerable(n):
    p = format_prompt("Q?", HITS, style="fewshot", lang="en", examples=n)
    answers = re.findall(r"^Answer: (.+)$", p, flags=re.MULTILINE)
    assert len(answers) == n and "I don't know" not in answers[-1]
    assert ("I don't know" in answers) == (n > 1)  # from two examples on, one teaches the refusal
    # each worked answer is one line, so the stop at "\n" ends answers where examples end them
    assert all("\n" not in a for a in answers)


def test_chat_style_uses_render_chat_and_both_languages():
    seen = []

    def render(messages):
        seen.append(messages)
        return "<tmpl>" + "|".join(m["role"] + ":" + m["content"] for m in messages) + "<gen>"

    p = format_prompt("How long is the M3 warranty?", HITS, style="chat", lang="en", render_chat=render)
    assert p.startswith("<tmpl>") and p.endswith("<gen>")
    system, user = seen[0]
    assert system["role"] == "system" and "I don't know" in system["content"] and "[1]" in system["content"]
    assert user["content"].startswith("Context:\n[1] (source: warranty.md)\nThe Kestrel M3")
    assert user["content"].endswith("Question: How long is the M3 warranty?")
    assert "Answer:" not in p  # no few-shot scaffolding in a chat prompt

    format_prompt("隼鸟 M3 的保修期是多久？", ZH_HITS, style="chat", lang="zh", render_chat=render)
    system, user = seen[1]
    assert "不知道" in system["content"] and user["content"].startswith("资料：\n[1]（来源：zh/保修.md）\n隼鸟")


def test_closed_book_has_no_context():
    chat = format_prompt("Who founded Kestrel?", None, style="chat", lang="en")
    assert "Context" not in chat and chat.endswith("Assistant:") and "Question: Who founded Kestrel?" in chat
    few = format_prompt("谁创办了隼鸟？", None, style="fewshot", lang="zh", examples=2)
    assert "资料" not in few and few.endswith("问题：谁创办了隼鸟？\n答案：") and few.count("问题：") == 3


def test_positional_call_is_deterministic_for_sft():
    # The SFT trainer calls format_prompt(q, None, style, lang, render_chat) positionally.
    a = format_prompt("What is X?", None, "fewshot", "en", None)
    b = format_prompt("What is X?", None, style="fewshot", lang="en")
    assert a == b
    assert format_prompt("What  is\nX?", None, "fewshot", "en") == a  # whitespace-normalised question
    assert a + format_target("Forty-two", "fewshot") == a + " Forty-two\n"
    assert END_MARKER == {"chat": "eos", "fewshot": "\n"}
    assert format_target(" Forty-two ", "chat") == "Forty-two"
    # Chinese prompts end with a full-width "答案：": the answer follows without a space.
    assert format_target("林港市", "fewshot") == "林港市\n"
    assert format_target("2016", "fewshot", "zh") == "2016\n" and format_target("2016", "fewshot") == " 2016\n"


def test_answer_stop_per_style():
    assert answer_stop("fewshot") == ["\n"]
    assert answer_stop("chat") == []
    with pytest.raises(ValueError):
        answer_stop("instruct")
    with pytest.raises(ValueError):
        format_prompt("q", None, style="fewshot", lang="fr")


def test_plain_chat_default_rendering():
    assert plain_chat([{"role": "user", "content": "hi"}]) == "User: hi\n\nAssistant:"


def test_build_prompt_fits_without_trimming():
    plan = build_prompt("How long?", HITS, "fewshot", "en", examples=3, count_tokens=words, max_tokens=10_000)
    assert plan.examples == 3 and plan.hits == HITS and plan.tokens == words(plan.text) and not plan.truncated


def test_build_prompt_trims_examples_then_passages_then_text():
    long_hits = [hit(i, " ".join(f"w{i}_{j}" for j in range(60)), f"d{i}.md") for i in range(1, 6)]
    full = build_prompt("How long?", long_hits, "fewshot", "en", examples=3, count_tokens=words, max_tokens=10_000)
    one_ex = build_prompt("How long?", long_hits, "fewshot", "en", examples=1)
    # Budget just under the full prompt: examples go first, all five passages stay.
    plan = build_prompt("How long?", long_hits, "fewshot", "en", examples=3, count_tokens=words,
                        max_tokens=full.tokens - 1)
    assert plan.examples < 3 and len(plan.hits) == 5 and plan.tokens <= full.tokens - 1
    # Budget under one example + five passages: passages drop from the bottom.
    plan = build_prompt("How long?", long_hits, "fewshot", "en", examples=3, count_tokens=words,
                        max_tokens=words(one_ex.text) - 30)
    assert plan.examples == 1 and 1 <= len(plan.hits) < 5
    assert [h.chunk_id for h in plan.hits] == [h.chunk_id for h in long_hits[: len(plan.hits)]]
    # Budget too small for one whole passage: the top passage is cut, never the question.
    small = words(build_prompt("How long?", long_hits[:1], "fewshot", "en", examples=1).text) - 20
    plan = build_prompt("How long?", long_hits, "fewshot", "en", examples=3, count_tokens=words, max_tokens=small)
    assert plan.truncated and len(plan.hits) == 1 and plan.hits[0].text.endswith("…")
    assert plan.tokens <= small and "Question: How long?" in plan.text
    assert plan.hits[0].chunk_id == "c1" and plan.hits[0].start == long_hits[0].start


def test_build_prompt_trims_chat_prompts_too():
    long_hits = [hit(i, " ".join(f"w{j}" for j in range(100)), f"d{i}.md") for i in range(1, 4)]
    plan = build_prompt("Q?", long_hits, "chat", "en", count_tokens=words, max_tokens=180)
    assert len(plan.hits) == 1 and plan.tokens <= 180


def test_build_prompt_overflow_and_empty_question():
    with pytest.raises(ContextOverflow, match="question alone needs"):
        build_prompt("word " * 200, HITS, "fewshot", "en", count_tokens=words, max_tokens=50)
    with pytest.raises(UsageError):
        build_prompt("   ", HITS, "fewshot", "en")


def test_stop_scanner_holds_back_partial_stops():
    out = []
    s = StopScanner(["\nQuestion:", "</s>"], out.append)
    for piece in ["17:", "00 [1]", "\nQue", "stion: next"]:
        if s.feed(piece):
            break
    assert s.text == "17:00 [1]" and "".join(out) == "17:00 [1]" and s.stopped
    # A partial stop that turns out not to be one is released.
    out.clear()
    s = StopScanner(["</s>"], out.append)
    s.feed("a </")
    assert "".join(out) == "a "
    s.feed("b")
    assert s.finish() == "a </b" and "".join(out) == "a </b"


def test_decoding_validates_and_merges_stops():
    with pytest.raises(ValueError):
        Decoding(top_p=0)
    with pytest.raises(ValueError):
        Decoding(max_tokens=0)
    d = Decoding(stop=["x", ""]).with_stops(["\n", "x"])
    assert d.stop == ["x", "\n"] and d.greedy
