"""Pipeline: citation mapping, negative rejection, closed-book, streaming, trimming — with fakes.

The fake generator replies from a script and honours stop strings the way real backends do
(through StopScanner), so what is tested is the pipeline, not a model.
"""

import re
import time

import pytest

from ragkit.errors import ContextOverflow, UsageError
from ragkit.generate.base import Decoding, StopScanner
from ragkit.generate.citations import infer_citations, is_refusal, parse_citations, strip_citations
from ragkit.generate.prompts import plain_chat
from ragkit.pipeline import DEFAULT_MIN_SCORE, Pipeline
from ragkit.types import Completion, Hit


class FakeGenerator:
    backend = "fake"
    model = "fake-model"
    max_passages = None

    def __init__(self, reply="", prompt_style="fewshot", context_length=4096):
        self.reply = reply  # a string, or a function prompt -> string
        self.prompt_style = prompt_style
        self.context_length = context_length
        self.prompts: list[str] = []
        self.decodings: list[Decoding] = []

    def count_tokens(self, text):
        return len(re.findall(r"[\u4e00-\u9fff]|\S+", text))

    def render_chat(self, messages):
        return plain_chat(messages)

    def generate(self, prompt, decoding, on_token=None):
        self.prompts.append(prompt)
        self.decodings.append(decoding)
        text = self.reply(prompt) if callable(self.reply) else self.reply
        scanner = StopScanner(decoding.stop, on_token)
        n = 0
        for piece in re.findall(r"\s*\S+", text) or [text]:
            n += 1
            if scanner.feed(piece) or n >= decoding.max_tokens:
                break
        return Completion(scanner.finish(), self.count_tokens(prompt), n, first_token_ms=1.0, total_ms=5.0,
                          finish_reason="stop")


class FakeIndex:
    def __init__(self, hits):
        self.hits = hits
        self.queries = []

    def search(self, query, k=5, mode="hybrid"):
        self.queries.append((query, k, mode))
        return self.hits[:k]


def hit(n, text, source, page=None, score=0.8, start=0):
    return Hit(rank=n, chunk_id=f"{source}#{n}", source=source, score=score, text=text, page=page,
               start=start, end=start + len(text))


HITS = [
    hit(1, "The Kestrel V7 has a 400 mL dustbin.", "en/v7.md", score=0.71),
    hit(2, "The M3 main unit warranty is 2 years.", "en/warranty.pdf", page=4, score=0.66, start=120),
    hit(3, "Kestrel was founded in 2016 in Lindenport.", "en/about.html", score=0.5),
]
# Tests of whole-chunk prompts (trimming, passages, citations of whole chunks) say so; evidence
# selection (the default) has its own tests in test_evidence.py.
WHOLE = {"context_tokens": 0}
ZH_HITS = [hit(1, "隼鸟 M3 整机保修两年。", "zh/保修.md", score=0.6), hit(2, "公司 2016 年成立于林港市。", "zh/公司.md", score=0.5)]


def test_cited_number_maps_to_source_page_and_span():
    gen = FakeGenerator(" 2 years [2]\nQuestion: next one")
    ans = Pipeline(FakeIndex(HITS), gen, k=3, **WHOLE).answer("How long is the M3 warranty?")
    assert ans.answer == "2 years [2]"  # cut at the few-shot stop, leading space dropped
    assert [(c.number, c.source, c.page, c.start, c.end) for c in ans.citations] == [
        (2, "en/warranty.pdf", 4, 120, 120 + len(HITS[1].text))]
    assert not ans.refused and ans.hits == HITS and ans.prompt == gen.prompts[0]
    assert gen.decodings[0].stop[0] == "\n"  # then the passage-header stops
    assert "[2] (source: en/warranty.pdf, page 4) The M3 main unit warranty is 2 years." in ans.prompt
    assert ans.prompt.count("Question: ") == 4  # three worked examples with passages


def test_uncited_answer_gets_the_passage_that_holds_it():
    ans = Pipeline(FakeIndex(HITS), FakeGenerator("Lindenport"), **WHOLE).answer("Where was Kestrel founded?")
    assert ans.answer == "Lindenport [3]" and [c.number for c in ans.citations] == [3]
    # An answer no passage supports gets no citation rather than a wrong one.
    ans = Pipeline(FakeIndex(HITS), FakeGenerator("Paris, France")).answer("Where was Kestrel founded?")
    assert ans.answer == "Paris, France" and ans.citations == []


def test_low_retrieval_score_refuses_without_generating():
    low = [hit(1, "Unrelated text.", "x.md", score=DEFAULT_MIN_SCORE["en"] - 0.01)]
    gen = FakeGenerator("should not be called")
    ans = Pipeline(FakeIndex(low), gen).answer("What is the capital of Peru?")
    assert ans.refused and ans.answer.startswith("I don't know") and gen.prompts == []
    assert ans.citations == [] and ans.hits == low and ans.completion_tokens == 0
    zh = Pipeline(FakeIndex([]), gen).answer("秘鲁的首都是哪里？")
    assert zh.refused and zh.answer.startswith("不知道")
    # Chinese scores run lower (BM25-led), so its calibrated threshold is lower too.
    mid = [hit(1, "秘鲁", "x.md", score=(DEFAULT_MIN_SCORE["zh"] + DEFAULT_MIN_SCORE["en"]) / 2)]
    assert not Pipeline(FakeIndex(mid), FakeGenerator("利马")).answer("秘鲁的首都是哪里？").refused
    assert Pipeline(FakeIndex(mid), FakeGenerator("Lima")).answer("What is the capital of Peru?").refused
    # Other modes' scores are on other scales: no default threshold there.
    assert not Pipeline(FakeIndex(low), FakeGenerator("Lima"), mode="bm25").answer("Capital of Peru?").refused
    # min_score=0 switches the threshold off: the model is asked.
    ans = Pipeline(FakeIndex(low), FakeGenerator("Lima"), min_score=0).answer("What is the capital of Peru?")
    assert not ans.refused and ans.answer == "Lima"


def test_a_code_the_question_names_in_a_retrieved_chunk_passes_the_threshold():
    low = DEFAULT_MIN_SCORE["zh"] - 0.03
    e03 = [hit(1, "| E03 | 机器被抬起 | 放回草坪后按 OK |", "zh/codes.md", score=low)]
    gen = FakeGenerator("机器被抬起 [1]", prompt_style="chat")
    ans = Pipeline(FakeIndex(e03), gen).answer("屏幕上出现 E03，是怎么回事？")
    assert not ans.refused and len(gen.prompts) == 1
    # a code the corpus lacks (a product that does not exist), or one inside another word, is no reason
    gen = FakeGenerator("should not be called", prompt_style="chat")
    assert Pipeline(FakeIndex(e03), gen).answer("隼鸟 M9 无人机多少钱？").refused and gen.prompts == []
    assert Pipeline(FakeIndex(e03), gen).answer("What does E0 mean?").refused and gen.prompts == []
    assert Pipeline(FakeIndex([hit(1, "The XE03 panel.", "x.md", score=0.1)]), gen).answer("What is E03?").refused


@pytest.mark.parametrize("reply", [
    "I don't know", "The context does not mention the price.", "There is no information about that [1].",
    "The price is not mentioned in the passages.", "不知道", "资料中没有提到价格。", "",
])
def test_model_saying_context_lacks_answer_is_a_refusal(reply):
    q = "隼鸟 M9 多少钱？" if re.search(r"[\u4e00-\u9fff]", reply) else "How much is the M9?"
    ans = Pipeline(FakeIndex(HITS), FakeGenerator(reply), **WHOLE).answer(q)
    assert ans.refused and ans.citations == []
    assert ans.answer in ("I don't know: the documents do not contain the answer.", "不知道：文档中没有找到答案。")


@pytest.mark.parametrize("text", ["2 years [2]", "Lindenport, founded in 2016", "隼鸟 M3 保修两年 [1]", "E07 means the RTK signal was lost"])
def test_answers_are_not_mistaken_for_refusals(text):
    assert not is_refusal(text)


def test_chinese_question_gets_chinese_prompt():
    gen = FakeGenerator(" 两年")
    ans = Pipeline(FakeIndex(ZH_HITS), gen).answer("隼鸟 M3 整机保修多久？")
    assert gen.prompts[0].endswith("资料：[1]（来源：zh/保修.md）隼鸟 M3 整机保修两年。 [2]（来源：zh/公司.md）"
                                   "公司 2016 年成立于林港市。\n问题：隼鸟 M3 整机保修多久？\n答案：")
    assert gen.prompts[0].count("问题：") == 4  # three worked examples with passages
    assert ans.answer == "两年 [1]" and ans.citations[0].source == "zh/保修.md"


def test_closed_book_skips_retrieval():
    index, gen = FakeIndex(HITS), FakeGenerator("Paris", prompt_style="chat")
    ans = Pipeline(index, gen).answer("What is the capital of France?", closed_book=True)
    assert index.queries == [] and ans.hits == [] and ans.citations == [] and ans.answer == "Paris"
    assert "Context" not in ans.prompt and ans.timings["retrieval_ms"] == 0
    assert Pipeline(None, FakeGenerator("Paris")).answer("Capital of France?").hits == []


def test_streaming_matches_answer_and_json_schema():
    pieces = []
    ans = Pipeline(FakeIndex(HITS), FakeGenerator("  The warranty is 2 years [2]"), **WHOLE).answer(
        "How long is the M3 warranty?", on_token=pieces.append)
    assert "".join(pieces) == ans.answer == "The warranty is 2 years [2]"
    d = ans.to_dict()
    assert set(d) == {"answer", "citations", "sources", "prompt_tokens", "completion_tokens", "timings",
                      "backend", "model", "refused"}
    assert set(d["timings"]) == {"retrieval_ms", "first_token_ms", "total_ms", "tokens_per_s"}
    assert d["sources"][1] == HITS[1].to_dict() and d["citations"][0]["number"] == 2
    assert d["backend"] == "fake" and d["model"] == "fake-model" and d["completion_tokens"] == 6


def test_prompt_is_trimmed_to_leave_room_for_the_answer():
    long_hits = [hit(i, " ".join(f"word{j}" for j in range(150)), f"d{i}.md") for i in range(1, 6)]
    gen = FakeGenerator("word1 [1]", context_length=600)
    pipe = Pipeline(FakeIndex(long_hits), gen, decoding=Decoding(max_tokens=100), **WHOLE)
    pipe.answer("Which word?")
    assert gen.count_tokens(gen.prompts[0]) <= 600 - 100
    kept = re.findall(r"\[(\d)\] \(source: d", gen.prompts[0])
    assert kept == [str(i) for i in range(1, len(kept) + 1)] and 1 <= len(kept) < 5  # the lowest ranked went
    # ...and no more than had to: one more passage would not have fitted.
    more = Pipeline(FakeIndex(long_hits[: len(kept) + 1]), FakeGenerator("x", context_length=10**6), examples=1,
                    **WHOLE)
    assert gen.prompts[0].count("Question: ") == 2  # examples went first, down to one
    assert gen.count_tokens(more.plan("Which word?", long_hits[: len(kept) + 1], "en").text) > 500
    with pytest.raises(ContextOverflow, match="max-tokens"):
        Pipeline(FakeIndex(long_hits), gen, decoding=Decoding(max_tokens=600), **WHOLE).answer("Which word?")


def test_bad_input():
    pipe = Pipeline(FakeIndex(HITS), FakeGenerator("x"))
    with pytest.raises(UsageError, match="empty"):
        pipe.answer("  ")
    with pytest.raises(UsageError):
        Pipeline(FakeIndex(HITS), FakeGenerator("x"), k=0)
    with pytest.raises(UsageError):
        Pipeline(FakeIndex(HITS), FakeGenerator("x"), min_score=1.5)


def test_pipeline_over_a_real_index(mini_corpus, tmp_path, fake_embedder):
    from ragkit.index import Index, IngestConfig, ingest

    ingest([mini_corpus], tmp_path / "idx", IngestConfig(embed_model="fake-embedder"))
    gen = FakeGenerator(lambda prompt: "24 months")
    ans = Pipeline(Index.open(tmp_path / "idx"), gen, k=2, min_score=0).answer("How long is the Falcon X2 warranty?")
    assert ans.hits and ans.hits[0].source == "warranty.md"
    assert ans.answer == "24 months [1]" and ans.citations[0].source == "warranty.md"


def test_citation_parsing_and_stripping():
    assert parse_citations("A [2] and B [1, 3]; also [9] and 【2】 [1-2]", 3) == [2, 1, 3]
    assert strip_citations("Two years [1][2].") == "Two years."
    assert infer_citations("2 years", HITS) == [2]
    assert infer_citations("", HITS) == []


def test_only_the_top_passages_go_into_the_prompt():
    gen = FakeGenerator("Lindenport")
    ans = Pipeline(FakeIndex(HITS), gen, k=3, passages=1, **WHOLE).answer("Where was Kestrel founded?")
    assert "[2] (source:" not in gen.prompts[0] and ans.hits == HITS  # all k still reported as sources
    assert ans.citations == []  # the answer is in passage 3, which the model never saw: no citation
    # A generator's max_passages hint is the default (gemma3-270m answers best from one chunk).
    gen = FakeGenerator("The V7 dustbin is 400 mL")
    gen.max_passages = 1
    ans = Pipeline(FakeIndex(HITS), gen, k=3).answer("How big is the V7 dustbin?")
    assert "[2] (source:" not in gen.prompts[0] and ans.answer.endswith("[1]")


@pytest.mark.parametrize("reply", [
    "The battery warranty is unchanged.\n\n[4] (source: en/w [2]",  # what make demo once printed
    "The battery warranty is unchanged. [2] (source: en/warranty.pdf, page 4)",
    "The battery warranty is unchanged.(source: en/w",
    "The battery warranty is unchanged.\n[3]",
])
def test_answer_never_carries_a_passage_header(reply):
    streamed = []
    gen = FakeGenerator(reply, prompt_style="chat")
    ans = Pipeline(FakeIndex(HITS), gen, k=3).answer("Is the battery warranty changed?", on_token=streamed.append)
    assert ans.answer.startswith("The battery warranty is unchanged.")
    assert "source" not in ans.answer and "(" not in ans.answer and not re.search(r"\n\s*\[\d", ans.answer)
    shown = "".join(streamed)
    assert "source" not in shown and not re.search(r"\n\s*\[", shown) and ans.answer.startswith(shown.rstrip())


def test_header_guard_streams_a_prefix_and_keeps_inline_citations():
    from ragkit.generate.prompts import HeaderGuard, could_start_header

    out = []
    g = HeaderGuard(out.append)
    for piece in [" 18", " months", " [", "1", "]", ".", " More", " text", " here", " and", " more", "\n\n", "[", "4", "]", " (", "sou"]:
        g.feed(piece)
    assert "".join(out) == "18 months [1]. More text here and more"
    g.finish("18 months [1]. More text here and more")
    assert "".join(out) == "18 months [1]. More text here and more"
    assert could_start_header("[12] (sour") and could_start_header("（来") and not could_start_header("[1] is")


def test_chinese_header_fragment_is_cut():
    gen = FakeGenerator("两年 [1]\n\n[2]（来源：zh/公司.md）公司", prompt_style="chat")
    ans = Pipeline(FakeIndex(ZH_HITS), gen, k=2).answer("隼鸟 M3 保修多久？")
    assert ans.answer == "两年 [1]" and [c.number for c in ans.citations] == [1]


# -- the reasoning step (ragkit/reason/ for the parsing and the calculator) ------------------------
PRICE_HITS = [hit(1, "The Heron A3 costs 1,250 yuan.", "en/a3.md", score=0.7),
              hit(2, "Its dock costs 380 yuan.", "en/dock.md", score=0.6)]
TOTAL = "What is the total price of the Heron A3 together with its dock?"  # routed: "together with"


def test_reasoning_computes_the_models_expression():
    gen = FakeGenerator(" The A3 costs 1,250 yuan [1]; the dock 380 yuan [2]\nCalculation: 1250 + 380 = 1600\n"
                        "Answer: {result} yuan [1][2]", prompt_style="chat")
    ans = Pipeline(FakeIndex(PRICE_HITS), gen).answer(TOTAL)
    assert ans.answer == "1630 yuan [1][2]" and len(gen.prompts) == 1  # the calculator's sum, not the claim
    assert gen.prompts[0].endswith("Facts:")
    assert ans.reasoning["used"] and ans.reasoning["expression"] == "1250 + 380" and ans.reasoning["value"] == "1630"
    assert Pipeline(FakeIndex(PRICE_HITS), gen, reason="off").answer(TOTAL).reasoning is None


def test_a_model_that_skips_the_calculation_line_is_led_line_by_line():
    def reply(prompt):  # runs its facts into the answer, but writes a line after each label it is given
        if prompt.endswith("Facts:"):
            return " The A3 costs 1,250 yuan [1] and the dock 380 yuan [2], so {result} yuan in all.\nMore."
        return " 1250 + 380\nAnswer: 9" if prompt.endswith("Calculation:") else " {result} yuan [1][2]\nFacts:"

    gen = FakeGenerator(reply, prompt_style="chat")
    ans = Pipeline(FakeIndex(PRICE_HITS), gen).answer(TOTAL)
    assert ans.answer == "1630 yuan [1][2]" and ans.reasoning["expression"] == "1250 + 380"
    first, calc, answer = gen.prompts
    # each prompt continues the one before (a backend reuses what it has read), the facts line cut
    # where the model started answering
    assert calc == first + " The A3 costs 1,250 yuan [1] and the dock 380 yuan [2], so \nCalculation:"
    assert answer == calc + " 1250 + 380\nAnswer:"
    assert [d.stop[-1] for d in gen.decodings[1:]] == ["\n", "\n"]


def test_a_lone_value_with_no_answer_line_is_the_answer():
    gen = FakeGenerator(" Kestrel Care+ for the M5 costs 199 USD [2]\nCalculation: 199", prompt_style="chat")
    ans = Pipeline(FakeIndex(PRICE_HITS), gen).answer(TOTAL)
    assert ans.answer == "199 [2]" and ans.reasoning["value"] is None  # nothing was computed
    assert ans.reasoning["refused"] == "a single value is not a calculation"


# -- a refusal from the selected evidence is checked against whole passages -----------------------
DUST = [hit(1, "The Dock Pro empties the V7 after every run and holds a dust bag. One bag lasts about 60 days "
               "in a typical home.", "en/dock.md", score=0.7),
        hit(2, "The dust bag of the Dock Pro is sold in packs of three.", "en/shop.md", score=0.6)]


def test_a_refusal_from_selected_sentences_is_asked_again_with_whole_passages():
    def reply(prompt):  # reads only what it is shown
        return " About 60 days [1]" if "60 days" in prompt.split("Question: How often")[-2] else " I don't know"

    streamed = []
    gen = FakeGenerator(reply, prompt_style="chat")
    ans = Pipeline(FakeIndex(DUST), gen, context_tokens=12).answer("How often do I change the Dock Pro's dust bag?",
                                                                   on_token=streamed.append)
    assert len(gen.prompts) == 2 and "60 days" not in gen.prompts[0] and "60 days" in gen.prompts[1]
    assert ans.answer == "About 60 days [1]" and not ans.refused
    assert (ans.citations[0].source, ans.citations[0].start, ans.citations[0].end) == ("en/dock.md", 0, len(DUST[0].text))
    assert "".join(streamed) == "About 60 days [1]"  # the first attempt's "I don't know" was never streamed
    assert ans.prompt_tokens == sum(gen.count_tokens(p) for p in gen.prompts)


def test_a_refusal_from_whole_passages_is_final():
    gen = FakeGenerator(" I don't know", prompt_style="chat")
    streamed = []
    ans = Pipeline(FakeIndex(DUST), gen, context_tokens=0).answer("How often do I change the bag?", on_token=streamed.append)
    assert ans.refused and len(gen.prompts) == 1 and streamed == []  # the canonical refusal replaces it
    gen = FakeGenerator(" I don't know", prompt_style="chat")
    Pipeline(FakeIndex(DUST), gen, context_tokens=12, passages=1).answer("How often do I change the dust bag?")
    assert len(gen.prompts) == 2 and DUST[0].text in gen.prompts[1] and DUST[1].text not in gen.prompts[1]
    gen = FakeGenerator(" I don't know", prompt_style="chat")
    ans = Pipeline(FakeIndex([]), gen, context_tokens=12).answer("How often?", passages=DUST)
    assert ans.refused and len(gen.prompts) == 1  # passages given: nothing retrieved to fall back on


def test_a_refusal_streamed_in_other_words_is_replaced_by_the_retry_not_followed():
    def reply(prompt):
        return " About 60 days [1]" if "60 days" in prompt.split("Question: How often")[-2] else \
            " The context does not mention the bag."

    streamed = []
    ans = Pipeline(FakeIndex(DUST), FakeGenerator(reply, prompt_style="chat"), context_tokens=12).answer(
        "How often do I change the Dock Pro's dust bag?", on_token=streamed.append)
    assert ans.answer == "About 60 days [1]" and not ans.refused
    assert "".join(streamed).startswith("The context does not mention") and "60 days" not in "".join(streamed)


class SlowGenerator(FakeGenerator):
    """A fake whose every generation reads its prompt for `delay` seconds before its first token."""

    def __init__(self, reply, delay=0.05):
        super().__init__(reply, prompt_style="chat")
        self.delay = delay

    def generate(self, prompt, decoding, on_token=None):
        time.sleep(self.delay)  # reading the prompt
        c = super().generate(prompt, decoding, on_token)
        time.sleep(0.01)  # the rest of the answer
        c.first_token_ms, c.total_ms = self.delay * 1000, self.delay * 1000 + 10
        return c


def test_first_token_is_that_of_the_answer_that_stands():
    # a computed answer is shown when it is computed: after the reasoning generation, not its first token
    gen = SlowGenerator(" A3 1,250 yuan [1]; dock 380 yuan [2]\nCalculation: 1250 + 380\nAnswer: {result} yuan [1][2]")
    ans = Pipeline(FakeIndex(PRICE_HITS), gen).answer(TOTAL)
    assert ans.answer == "1630 yuan [1][2]" and ans.timings["first_token_ms"] >= 50
    assert ans.timings["tokens_per_s"] is None  # several generations have no one decode rate
    # a retry with whole chunks: its first token comes after the first attempt
    def reply(prompt):
        return " About 60 days [1]" if "60 days" in prompt.split("Question: How often")[-2] else " I don't know"

    ans = Pipeline(FakeIndex(DUST), SlowGenerator(reply), context_tokens=12).answer(
        "How often do I change the Dock Pro's dust bag?")
    assert ans.answer == "About 60 days [1]" and ans.timings["first_token_ms"] >= 110
    assert ans.timings["tokens_per_s"] is None
    # one plain generation: its own first token, and a decode rate
    ans = Pipeline(FakeIndex(DUST), SlowGenerator(" About 60 days [1]"), context_tokens=0).answer("How often?")
    assert ans.timings["first_token_ms"] < 100 and ans.timings["tokens_per_s"] is not None


def test_a_computed_answer_of_another_kind_than_asked_is_not_used():
    def reply(prompt):  # a wrong expression gives a price for "how long"; read directly, the passage says it
        if prompt.endswith("Facts:"):
            return " A bag costs 8 yuan [1]\nCalculation: 8 * 3\nAnswer: {result} yuan [1]"
        return " About 180 days [1]"

    hits = [hit(1, "A 3-pack of dust bags costs 24 yuan and lasts about 180 days.", "en/shop.md", score=0.7)]
    gen = FakeGenerator(reply, prompt_style="chat")
    ans = Pipeline(FakeIndex(hits), gen).answer("How long does a 3-pack of dust bags last, at 60 days a bag?")
    assert ans.answer == "About 180 days [1]" and len(gen.prompts) == 2
    assert ans.reasoning["used"] is False and ans.reasoning["value"] == "24"
    assert ans.reasoning["refused"] == "the answer is not the span the question asks for"
