"""Conversations: a follow-up made standalone for retrieval, recent turns in the prompt, and a system
message as an instruction under the grounding rules (fake chat-style generator, real HTTP)."""

from __future__ import annotations

import httpx

from ragkit.conversation import (
    FollowUp,
    follow_up,
    needs_context,
    previous_subject,
    recent_turns,
    referent_phrase,
    spliced,
    standalone_question,
)
from ragkit.generate.prompts import with_conversation

from .conftest import FakeGenerator


class ChatFake(FakeGenerator):
    prompt_style = "chat"


def replies(prompt: str) -> str:
    if "rewrite the user's last question" in prompt:
        return "What is the flight time of the Falcon X2?"
    if "38 minutes" in prompt:
        return "The flight time is 38 minutes [1]."
    return "I don't know"


HISTORY = [{"role": "user", "content": "What is the Falcon X2?"},
           {"role": "assistant", "content": "A drone with a 24-month warranty [1]."}]
# the user's turn names nothing ragkit can put in place of "it": a failed rewrite falls back
UNNAMED = [{"role": "user", "content": "Tell me about your drone."},
           {"role": "assistant", "content": "A drone with a 24-month warranty [1]."}]


def test_needs_context_rule():
    assert needs_context("How long does it fly?") and needs_context("And the camera?")
    assert needs_context("它的续航多久？") and needs_context("那电池呢")
    assert not needs_context("What is the flight time of the Falcon X2?")
    assert not needs_context("猎鹰X2的续航时间是多少分钟")


def test_recent_turns_keep_the_latest_within_budget_and_drop_markers():
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "word " * 20 + "[1]"}
             for i in range(10)]
    kept = recent_turns(turns, lambda t: len(t.split()), budget=70)
    assert [t["content"].split()[1] for t in kept] == ["6", "7", "8", "9"][-len(kept):] and len(kept) <= 3
    assert kept[0]["role"] == "user" and all("[1]" not in t["content"] for t in kept if t["role"] == "assistant")


def test_standalone_question_asks_the_model_only_when_needed():
    gen = ChatFake(reply=replies)
    r = standalone_question(gen, HISTORY, "How long can it fly?")
    # the referent came back unusable ("I don't know"): the free rewrite after it
    assert (r.question, r.method) == ("What is the flight time of the Falcon X2?", "model") and len(gen.prompts) == 2
    assert "Say what the user's last question is about" in gen.prompts[0]
    assert "A drone with a 24-month warranty" in gen.prompts[1]
    r = standalone_question(gen, HISTORY, "What is the flight time of the Falcon X2?")
    assert r.method == "rule" and len(gen.prompts) == 2  # no model call
    assert standalone_question(gen, [], "How long can it fly?").method == "none"
    gen.reply = "I don't know"
    # no referent and no rewrite: the thing the last user turn names goes in place of "it" (no model call)
    r = standalone_question(gen, HISTORY, "How long can it fly?")
    assert (r.question, r.method) == ("How long can the Falcon X2 fly?", "subject")
    r = standalone_question(gen, UNNAMED, "How long can it fly?")
    assert r.method == "fallback" and r.question == "Tell me about your drone. How long can it fly?"


def test_with_conversation_puts_turns_before_the_question_and_the_instruction_after_the_rules():
    msgs = [{"role": "system", "content": "RULES"}, {"role": "user", "content": "Context ... Question: q"}]
    out = with_conversation(msgs, HISTORY, "Answer in French.  Ignore the passages.", "en")
    assert [m["role"] for m in out] == ["system", "user"]  # the prompt keeps its shape
    assert out[0]["content"].startswith("RULES") and out[0]["content"].endswith("Answer in French. Ignore the passages.")
    assert "does not conflict with the rules above" in out[0]["content"]
    assert out[1]["content"] == ("Earlier in this conversation:\nUser: What is the Falcon X2?\n"
                                 "Assistant: A drone with a 24-month warranty [1].\n\nContext ... Question: q")
    assert msgs[0]["content"] == "RULES" and msgs[1]["content"] == "Context ... Question: q"  # input untouched


def test_a_follow_up_is_answered_from_the_conversation(serve):
    gen = ChatFake(reply=replies)
    srv = serve(generator=gen)
    messages = [{"role": "system", "content": "Answer in one sentence."}, *HISTORY,
                {"role": "user", "content": "How long can it fly?"}]
    r = httpx.post(f"{srv.url}/v1/chat/completions", json={"messages": messages}, timeout=20)
    body = r.json()
    assert r.status_code == 200 and body["choices"][0]["message"]["content"] == "The flight time is 38 minutes [1]."
    assert body["rewrite"] == {"question": "What is the flight time of the Falcon X2?", "method": "model"}
    assert "38 minutes" in body["sources"][0]["text"] and body["timings"]["rewrite_ms"] >= 0
    answer_prompt = gen.prompts[-1]
    # the standalone rewrite carries the conversation: the earlier turns stay out of the prompt
    assert "A drone with a 24-month warranty" not in answer_prompt and "Question: What is the flight time" in answer_prompt
    assert answer_prompt.index("only the numbered context passages") < answer_prompt.index("Answer in one sentence.")
    # the same follow-up with no history retrieves on its own words and gets no rewrite
    r = httpx.post(f"{srv.url}/v1/chat/completions", timeout=20,
                   json={"messages": [{"role": "user", "content": "How long can it fly?"}]})
    assert "rewrite" not in r.json()


def test_a_rewrite_that_answers_instead_falls_back():
    def answers(prompt: str) -> str:  # no usable referent, and a rewrite that is an answer, not a question
        return "I don't know" if "Say what the user's last question is about" in prompt else "The Falcon X2 flies for 38 minutes."

    gen = ChatFake(reply=answers)
    r = standalone_question(gen, UNNAMED, "How long can it fly?")
    assert r.method == "fallback" and r.question == "Tell me about your drone. How long can it fly?"
    assert "Heron H2 kettle hold" in gen.prompts[1]  # the worked example that shows a rewrite, not an answer


def test_a_fallback_is_searched_with_but_the_follow_up_is_what_is_answered(serve):
    def fallback_replies(prompt: str) -> str:
        if "rewrite the user's last question" in prompt:
            return "I don't know"  # no usable rewrite: the fallback
        return "The flight time is 38 minutes [1]." if "38 minutes" in prompt else "I don't know"

    gen = ChatFake(reply=fallback_replies)
    srv = serve(generator=gen)
    messages = [*UNNAMED, {"role": "user", "content": "How long can it fly?"}]
    body = httpx.post(f"{srv.url}/v1/chat/completions", json={"messages": messages}, timeout=20).json()
    assert body["rewrite"] == {"question": "Tell me about your drone. How long can it fly?", "method": "fallback"}
    answer_prompt = gen.prompts[-1]
    assert answer_prompt.rstrip().endswith("How long can it fly?") or "Question: How long can it fly?" in answer_prompt
    assert "Question: Tell me about your drone. How long can it fly?" not in answer_prompt
    # the follow-up still leans on the conversation: the earlier turns are in the prompt, markers stripped
    assert "Earlier in this conversation:" in answer_prompt and "A drone with a 24-month warranty." in answer_prompt


def test_follow_up_keeps_the_turns_only_where_the_question_leans_on_them():
    gen = ChatFake(reply=replies)
    turn = follow_up(gen, HISTORY, "How long can it fly?")
    assert (turn.question, turn.query, turn.turns) == ("What is the flight time of the Falcon X2?", None, None)
    assert follow_up(gen, HISTORY, "How long can it fly?", turns_in_prompt="always").turns[0] == HISTORY[0]
    closed = follow_up(gen, HISTORY, "How long can it fly?", closed_book=True)
    assert closed.rewrite is None and closed.question == "How long can it fly?" and len(closed.turns) == 2
    assert follow_up(gen, [], "How long can it fly?") == FollowUp("How long can it fly?", None, None, None)
    gen.reply = "I don't know"
    fell_back = follow_up(gen, UNNAMED, "How long can it fly?")
    assert fell_back.query == "Tell me about your drone. How long can it fly?" and len(fell_back.turns) == 2


def test_short_questions_that_name_nothing_lean_on_the_conversation():
    assert needs_context("容量是多少？") and needs_context("总部在哪个城市？") and needs_context("How big is the dust bag?")
    assert not needs_context("隼鸟 M5 的价格是多少？") and not needs_context("What is the capacity of the Kestrel V7?")


def test_the_follow_up_keeps_its_words_with_the_referent_in_place_of_the_pronoun():
    def named(prompt: str) -> str:
        if "Say what the user's last question is about" in prompt:
            return "the Falcon X2's battery pack"
        return "I don't know"

    gen = ChatFake(reply=named)
    history = [{"role": "user", "content": "Does the Falcon X2 have a spare battery pack?"},
               {"role": "assistant", "content": "Yes, the battery pack can be swapped [1]."}]
    r = standalone_question(gen, history, "How much does it weigh?")
    assert (r.question, r.method) == ("How much does the Falcon X2's battery pack weigh?", "referent")
    assert len(gen.prompts) == 1 and "Heron H2 kettle's limescale filter" in gen.prompts[0]  # the worked example
    turn = follow_up(gen, history, "How much does it weigh?")
    assert turn.question == "How much does the Falcon X2's battery pack weigh?" and turn.turns is None
    # a follow-up that is only a frame has no words of its own to keep: the free rewrite, no referent
    gen.prompts.clear()
    assert standalone_question(gen, history, "What about the camera?").method == "fallback"
    assert len(gen.prompts) == 1 and "rewrite the user's last question" in gen.prompts[0]


def test_the_referent_is_cut_to_what_the_conversation_says():
    en = [{"role": "user", "content": "What is the Falcon X2?"},
          {"role": "assistant", "content": "The Falcon X2 is a drone with a 4K camera."}]
    zh = [{"role": "user", "content": "猎鹰 X2 能航拍吗？"}, {"role": "assistant", "content": "可以，猎鹰 X2 带一个云台相机。"}]
    # the question's own words trail off the name; the asker's words stay
    assert referent_phrase("the Falcon X2's maximum speed", en, "What is its maximum speed?") == "the Falcon X2"
    assert spliced("What is its maximum speed?", "the Falcon X2", "en") == "What is the Falcon X2's maximum speed?"
    assert spliced("How fast is it?", "the Falcon X2", "en") == "How fast is the Falcon X2?"
    assert spliced("It flies how far?", "the Falcon X2", "en") == "The Falcon X2 flies how far?"
    assert spliced("How big is the battery?", "the Falcon X2", "en") == "How big is the battery (the Falcon X2)?"
    # an answer instead of a name is cut where it leaves the conversation; a repeat or refusal is nothing
    assert referent_phrase("猎鹰 X2 的相机分辨率是 4K", zh, "它的相机分辨率是多少？") == "猎鹰 X2"
    assert spliced("它的相机分辨率是多少？", "猎鹰 X2", "zh") == "猎鹰 X2的相机分辨率是多少？"
    assert spliced("最远能飞多远？", "猎鹰 X2", "zh") == "猎鹰 X2 最远能飞多远？"
    assert referent_phrase("它的相机分辨率是多少", zh, "它的相机分辨率是多少？") is None
    assert referent_phrase("I don't know.", en, "How fast is it?") is None
    assert referent_phrase("The Falcon X2 flies 12 km [1].", en, "How far does it fly?") == "The Falcon X2"
    assert referent_phrase("the Heron H2 kettle", en, "How fast is it?") is None  # nothing the conversation says


def test_a_follow_up_that_names_a_thing_means_another_by_its_pronoun():
    history = [{"role": "user", "content": "What is the Falcon Care plan?"},
               {"role": "assistant", "content": "Falcon Care is an extended service plan for Falcon drones."}]

    def own_thing(prompt: str) -> str:  # the model names what the follow-up itself names
        return "the Falcon X2" if "Say what the user's last question is about" in prompt else "I don't know"

    gen = ChatFake(reply=own_thing)
    r = standalone_question(gen, history, "How much does it cost for the Falcon X2?")
    assert (r.question, r.method) == ("How much does the Falcon Care cost for the Falcon X2?", "subject")
    assert len(gen.prompts) == 1  # the referent asked; the rule after it, no free rewrite
    # a name the follow-up gives, cut off the model's referent, leaves no referent (not "the Falcon")
    named = [{"role": "user", "content": "What is the Falcon Dock?"},
             {"role": "assistant", "content": "A charging dock for the Falcon X2."}]
    assert referent_phrase("the Falcon X2's battery", named, "How long does it take to charge the X2's battery?") is None
    assert referent_phrase("the Falcon Dock", named, "How long does it take to charge the X2's battery?") == "the Falcon Dock"
    # the last user turn's names, its sentence's first word and function words left out
    assert previous_subject(named, "How long does it take?") == "the Falcon Dock"
    assert previous_subject([{"role": "user", "content": "Does Falcon sell spare 5.2 Ah batteries?"}],
                            "What is its price for the Falcon X2?") == "5.2 Ah"
    assert previous_subject(UNNAMED, "How long can it fly?") is None
