"""Evidence selection: sentences with exact offsets, the budget, and citations that still map to
the selected span of the source document."""

import re

import pytest
from test_pipeline import FakeGenerator, FakeIndex

from ragkit.evidence import asks_explanation, score_sentences, select_evidence, split_sentences
from ragkit.generate.prompts import format_prompt
from ragkit.pipeline import Pipeline
from ragkit.reason.route import sub_queries
from ragkit.types import Hit


def words(text):
    return len(re.findall(r"[\u4e00-\u9fff]|\S+", text))


DOC = (
    "# Warranty\n\n"
    "Kestrel products come with a limited warranty. The M3 main unit is covered for 2 years. "
    "The battery is covered for 18 months if bought after 1 January 2025.\n"
    "Wear parts such as blades are not covered. Claims need the proof of purchase."
)
CHUNK_START = DOC.index("Kestrel products")
CHUNK = DOC[CHUNK_START:]


def chunk_hit(rank=1, score=0.7, text=CHUNK, start=CHUNK_START, source="en/warranty.md"):
    return Hit(rank, f"{source}#{rank}", source, score, text, None, start, start + len(text))


def test_sentences_are_exact_slices_in_both_languages():
    text = "First one. Second one!\n| a | b |\n第一句。第二句？第三句“引号。”最后"
    spans = split_sentences(text)
    pieces = [text[s:e] for s, e in spans]
    assert pieces == ["First one.", "Second one!", "| a | b |", "第一句。", "第二句？", "第三句“引号。”", "最后"]


def test_selected_passages_are_spans_of_the_document_within_the_budget():
    hits = [chunk_hit()]
    got = select_evidence("How long is the battery covered?", hits, budget=20, count_tokens=words)
    assert got, "something is always kept"
    assert sum(words(h.text) for h in got) <= 20
    for h in got:
        for piece in h.text.split(" … "):  # the kept sentences, exact slices of the document
            assert piece in DOC[h.start:h.end]
        assert DOC[h.start:h.end].startswith(h.text.split(" … ")[0])
        assert h.source == "en/warranty.md" and h.chunk_id == hits[0].chunk_id
    assert any("18 months" in h.text for h in got)
    assert not any("proof of purchase" in h.text for h in got)


def test_the_top_sentence_is_kept_even_over_the_budget():
    got = select_evidence("battery months January", [chunk_hit()], budget=1, count_tokens=words)
    assert len(got) == 1 and "18 months" in got[0].text


def test_no_budget_returns_the_chunks_whole():
    hits = [chunk_hit()]
    assert select_evidence("battery", hits, budget=None, count_tokens=words) == hits


def test_touching_sentences_form_one_passage_best_first():
    other = chunk_hit(rank=2, score=0.5, text="The dock has no warranty of its own.", start=0, source="en/dock.md")
    got = select_evidence("warranty battery unit covered", [chunk_hit(), other], budget=200, count_tokens=words)
    # everything fits: one passage per chunk, the first chunk's sentences joined back into one span
    assert [h.source for h in got] == ["en/warranty.md", "en/dock.md"]
    assert got[0].text == CHUNK and [h.rank for h in got] == [1, 2]


def test_chinese_questions_select_by_jieba_words():
    text = "隼鸟 M3 整机保修两年。电池保修十八个月。刀片属于易损件，不在保修范围内。客服热线为 400-820-1616。"
    hit = Hit(1, "zh#1", "zh/保修.md", 0.6, text, None, 0, len(text))
    got = select_evidence("电池的保修期是多久？", [hit], budget=12, count_tokens=words)
    assert any("电池保修十八个月" in h.text for h in got)
    assert not any("客服热线" in h.text for h in got)


def test_a_neighbour_of_a_matching_sentence_scores_above_an_unrelated_one():
    text = "Battery care. Keep it charged above 20 percent. The app shows the firmware version."
    scored = score_sentences("battery care", [Hit(1, "c", "a.md", 0.5, text, None, 0, len(text))])
    assert scored[1].score > scored[2].score


def test_citation_after_selection_maps_to_the_selected_span():
    gen = FakeGenerator(lambda prompt: " 18 months [1]")
    pipe = Pipeline(FakeIndex([chunk_hit()]), gen, k=1, context_tokens=20, min_score=0)
    ans = pipe.answer("How long is the battery covered?")
    (c,) = ans.citations
    assert c.number == 1 and c.source == "en/warranty.md"
    assert "18 months" in DOC[c.start:c.end] and c.end - c.start < len(CHUNK)
    assert DOC[c.start:c.end].startswith(ans.hits[0].text.split(" … ")[0])  # sources[n-1] is the cited span
    assert "proof of purchase" not in ans.prompt


def test_whole_chunks_reproduce_the_plain_prompt():
    hits = [chunk_hit(), chunk_hit(rank=2, score=0.5, text="The dock has no warranty.", start=0, source="d.md")]
    gen = FakeGenerator(" 2 years [1]", prompt_style="chat")
    ans = Pipeline(FakeIndex(hits), gen, k=2, context_tokens=0, min_score=0).answer("How long is the warranty?")
    assert ans.prompt == format_prompt("How long is the warranty?", hits, "chat", "en", gen.render_chat)
    assert ans.hits == hits


def test_english_words_meet_by_their_stem():
    text = "The mower is quiet. | Weight | 11.5 kg |"
    got = select_evidence("How much does it weigh?", [Hit(1, "c", "m.md", 0.5, text, None, 0, len(text))],
                          budget=8, count_tokens=words)
    assert "11.5 kg" in got[0].text


def test_a_table_row_comes_with_its_header_and_one_passage_per_chunk():
    text = ("# Prices\n| Item | Model | Price (USD) |\n|---|---|---|\n| Blade kit | M3 | 19.99 |\n"
            "| Battery 5.2 Ah | M3 | 189.00 |\n| Battery 7.5 Ah | M5 | 259.00 |\nPrices include tax.")
    hit = Hit(1, "c", "prices.md", 0.6, text, None, 100, 100 + len(text))
    (p,) = select_evidence("What is the price of the 5.2 Ah battery?", [hit], budget=30, count_tokens=words)
    assert p.text.startswith("| Item | Model | Price (USD) |\n|---|---|---|")
    assert "| Battery 5.2 Ah | M3 | 189.00 |" in p.text and " … " in p.text and "Blade kit" not in p.text
    assert p.start == 100 + text.index("| Item") and p.end <= hit.end
    for piece in p.text.split(" … "):
        assert piece in text


def test_a_sentence_in_two_overlapping_chunks_is_kept_once():
    first = chunk_hit(rank=1, score=0.7)
    tail = CHUNK[CHUNK.index("The battery"):]
    second = chunk_hit(rank=2, score=0.6, text=tail, start=CHUNK_START + CHUNK.index("The battery"))
    got = select_evidence("battery covered months", [first, second], budget=200, count_tokens=words)
    assert sum(h.text.count("The battery is covered for 18 months") for h in got) == 1
    assert sum(words(h.text) for h in got) < words(CHUNK) + words(tail)


def test_each_part_of_a_question_that_names_two_things_gets_its_fact():
    text = ("The Tern 9 and the Orion 5 are sold together as a garden set. The Tern 9 and the Orion 5 "
            "ship together in one box. Together they cover a large garden. The Tern 9 weighs 4 kg. "
            "The Orion 5 weighs 6 kg.")
    hit = Hit(1, "c", "en/set.md", 0.5, text, None, 0, len(text))
    question = "What do the Tern 9 and the Orion 5 weigh together?"
    parts = sub_queries(question, "en")
    assert len(parts) == 2
    # against the whole question, a sentence that names both things outscores each weight
    (plain,) = select_evidence(question, [hit], budget=16, count_tokens=words)
    assert "weighs" not in plain.text
    # scored part by part, each thing's own fact wins
    (split,) = select_evidence(question, [hit], budget=16, count_tokens=words, parts=parts)
    assert "weighs 4 kg" in split.text and "weighs 6 kg" in split.text


def test_an_faq_answer_is_scored_with_its_question():
    text = ("**How long does charging take?**\nAbout ninety minutes from empty.\n"
            "**Can the mower work in rain?**\nYes: the housing is rated IPX5, so light showers are fine.\n"
            "**Where is the serial number?**\nUnder the battery cover.")
    hit = Hit(1, "c", "en/faq.md", 0.5, text, None, 0, len(text))
    ranked = sorted(score_sentences("Can the mower work in rain?", [hit]), key=lambda s: -s.score)
    # the answer sentence holds none of the question's words; it scores as its question does,
    # above the earlier answer that merely sits next to it
    assert ranked[0].text.startswith(("**Can the mower", "Yes: the housing"))
    assert ranked[1].text.startswith(("**Can the mower", "Yes: the housing"))
    (got,) = select_evidence("Can the mower work in rain?", [hit], budget=20, count_tokens=words)
    assert "IPX5" in got.text and "ninety" not in got.text


@pytest.mark.parametrize("question, lang, explain", [
    ("What does error code E07 mean on a Heron mower?", "en", True),
    ("What should I put in the water tank?", "en", True),
    ("How do I reset the dock?", "en", True),
    ("Where do I find the serial number?", "en", True),
    ("割草机显示 E07 是什么意思？", "zh", True),
    ("屏幕上出现 E03，是怎么回事？", "zh", True),
    ("How much does the Heron A3 weigh?", "en", False),
    ("How long is the battery warranty?", "en", False),
    ("苍鹭 A3 的电池容量是多少？", "zh", False),
    ("客服热线是多少？", "zh", False),
])
def test_questions_that_ask_for_an_explanation(question, lang, explain):
    assert asks_explanation(question, lang) is explain


def test_an_explanation_question_gets_more_evidence():
    hits = [chunk_hit()]
    pipe = Pipeline(FakeIndex(hits), FakeGenerator(prompt_style="chat"), context_tokens=20)  # counts as words() does
    value = pipe.evidence("How long is the battery covered?", hits, "en")
    explain = pipe.evidence("What does the battery warranty mean for me?", hits, "en")
    assert sum(words(h.text) for h in value) <= 20 < sum(words(h.text) for h in explain) <= 30
