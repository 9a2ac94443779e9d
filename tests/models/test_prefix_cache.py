"""Kept prompt prefixes in the llama.cpp backend are exact, and they are used: a real small model
answers the same with and without them, and with them it reads fewer tokens per question when
prompts of two languages alternate (which defeats llama.cpp's reuse of the previous prompt)."""

from __future__ import annotations

import pytest

from ragkit.generate.base import Decoding
from ragkit.generate.prompts import fixed_prefix, format_prompt
from ragkit.models import resolve_llm
from ragkit.types import Hit

pytestmark = pytest.mark.models

PASSAGES = {
    "en": "The Kestrel M3 battery is covered for 18 months; the main unit for 24 months.",
    "zh": "隼鸟 M3 的电池保修 18 个月，整机保修 24 个月。",
}
QUESTIONS = {
    "en": ["How long is the battery covered?", "How long is the main unit covered?", "What is covered for 24 months?"],
    "zh": ["电池保修多久？", "整机保修多久？", "什么保修 24 个月？"],
}


def prompts(gen):
    out = []
    for i in range(3):
        for lang in ("en", "zh"):  # alternating languages: the previous prompt never shares the prefix
            hit = Hit(1, "c", f"{lang}/warranty.md", 1.0, PASSAGES[lang], None, 0, len(PASSAGES[lang]))
            out.append((lang, format_prompt(QUESTIONS[lang][i], [hit], "chat", lang, gen.render_chat)))
    return out


def test_kept_prefixes_give_the_same_greedy_answers_and_read_less():
    from ragkit.generate.llamacpp import LlamaCppGenerator

    name, path = resolve_llm("smollm2-135m")
    decoding = Decoding(max_tokens=12)
    with LlamaCppGenerator(path, name, n_ctx=1024) as kept, LlamaCppGenerator(path, name, n_ctx=1024,
                                                                              kept_prefixes=0) as plain:
        answers = {"kept": [], "plain": []}
        reused = {"kept": 0, "plain": 0}
        for lang, prompt in prompts(kept):
            kept.keep_prefix(fixed_prefix("chat", lang, True, kept.render_chat))
            for key, gen in (("kept", kept), ("plain", plain)):
                c = gen.generate(prompt, decoding)
                answers[key].append(c.text)
                reused[key] += c.cached_tokens
    assert answers["kept"] == answers["plain"]
    # After the first prompt of each language, every prompt restores its language's prefix.
    assert reused["kept"] > reused["plain"] + 4 * 10
