"""Bench items with their own passages (`context`) and the oracle arm's passage choice, with fakes."""

from __future__ import annotations

import json

import pytest

from ragkit.eval.answering import item_key
from ragkit.eval.bench import check_record, load_bench, validate_bench
from ragkit.eval.passages import context_hits, oracle_passages
from ragkit.pipeline import Pipeline
from ragkit.types import BenchItem, Chunk, Completion, Hit

RECORD = {"id": "c1", "question": "Who wrote the letter?", "answers": ["Mary"], "sources": ["general"],
          "category": "reading", "difficulty": "easy"}


@pytest.mark.parametrize("context, problem", [
    (["Mary wrote the letter."], None),
    (["one", "two"], None),
    (None, None),  # like notes: null is the same as absent
    ("Mary wrote it.", "'context' must be a list of passage strings"),
    ([], "'context' must hold at least one passage"),
    (["ok", 3], "'context' passages must be strings"),
    (["ok", "  "], "'context' passages must not be empty"),
])
def test_context_validation(context, problem):
    problems = check_record({**RECORD, "context": context})
    assert problems == ([problem] if problem else [])


def test_bench_validate_and_load_keep_the_context(tmp_path):
    f = tmp_path / "b.jsonl"
    f.write_text(json.dumps({**RECORD, "context": ["Mary wrote the letter.", "It rained."]}) + "\n"
                 + json.dumps({**RECORD, "id": "c2"}) + "\n", encoding="utf-8")
    assert validate_bench(f) == (2, [])
    a, b = load_bench(f)
    assert a.context == ["Mary wrote the letter.", "It rained."] and b.context is None
    assert a.to_dict()["context"] == a.context and "context" not in b.to_dict()
    f.write_text(json.dumps({**RECORD, "context": []}) + "\n", encoding="utf-8")
    assert validate_bench(f) == (0, [(1, "'context' must hold at least one passage")])


class PromptRecorder:
    backend, prompt_style, context_length, model = "fake", "fewshot", 4096, "fake"
    max_passages = None

    def __init__(self, reply="Mary"):
        self.prompts: list[str] = []
        self.reply = reply

    def count_tokens(self, text):
        return len(text.split())

    def generate(self, prompt, decoding, on_token=None):
        self.prompts.append(prompt)
        return Completion(text=self.reply, prompt_tokens=3, completion_tokens=1)


class NoSearch:
    """An index that must not be searched."""

    def search(self, *a, **kw):
        raise AssertionError("given passages must replace retrieval")


def test_given_passages_replace_retrieval_and_skip_the_threshold():
    gen = PromptRecorder()
    pipe = Pipeline(NoSearch(), gen, k=5, min_score=1.0)  # a threshold no retrieved chunk could meet
    ans = pipe.answer("Who wrote the letter?", passages=context_hits(["Mary wrote the letter.", "It rained."]))
    assert not ans.refused and ans.answer.startswith("Mary")
    last = gen.prompts[-1].rsplit("Context:", 1)[-1]
    assert "[1] (source: context:1) Mary wrote the letter." in last and "[2] (source: context:2) It rained." in last
    assert [h.source for h in ans.hits] == ["context:1", "context:2"]
    assert ans.citations and ans.citations[0].source == "context:1"
    # closed_book does not hide given passages either (a closed-book arm reads an item's context).
    pipe.answer("Who wrote the letter?", closed_book=True, passages=context_hits(["Mary wrote the letter."]))
    assert "source: context:1" in gen.prompts[-1]


def test_the_cache_key_includes_the_context():
    item = BenchItem("c1", "Who wrote the letter?", ["Mary"], ["general"], "reading", "easy")
    spec, settings = {"model": "m"}, {"k": 5}
    plain = item_key("rag", item, spec, settings)
    with_ctx = item_key("rag", BenchItem(**{**item.to_dict(), "context": ["Mary wrote it."]}), spec, settings)
    other_ctx = item_key("rag", BenchItem(**{**item.to_dict(), "context": ["John wrote it."]}), spec, settings)
    assert len({plain, with_ctx, other_ctx}) == 3
    # Items without context keep the key they had before the field existed.
    from ragkit.hashing import settings_hash

    assert plain == settings_hash({"arm": "rag", "q": item.question, "model": spec, **settings}, 20)


CHUNKS = [
    Chunk("a#0", "a.md", "The warranty covers the frame.", 0, 30),
    Chunk("b#0", "b.md", "The warranty lasts 24 months.", 0, 29),
    Chunk("a#1", "a.md", "Claims take 24 months at most.", 30, 60),
    Chunk("a#2", "a.md", "Send claims to Brightwater.", 60, 87),
]


def searcher(order):
    calls = []

    def search(q):
        calls.append(q)
        return [Hit(i, cid, cid.split("#")[0], 1.0 / i, "", None, 0, 0) for i, cid in enumerate(order, 1)]

    return search, calls


def test_oracle_takes_the_gold_chunks_that_hold_an_answer_in_chunk_order():
    item = BenchItem("w", "How long is the warranty?", ["24 months", "Brightwater"], ["a.md"], "k", "easy")
    search, calls = searcher([])
    hits = oracle_passages(item, CHUNKS, search, cap=5)
    assert [h.chunk_id for h in hits] == ["a#1", "a#2"]  # b.md holds the answer but is not gold
    assert [h.rank for h in hits] == [1, 2] and hits[0].text == CHUNKS[2].text and calls == []
    assert [h.chunk_id for h in oracle_passages(item, CHUNKS, search, cap=1)] == ["a#1"]


def test_oracle_falls_back_to_the_best_scoring_gold_chunk():
    item = BenchItem("w", "Where do claims go?", ["the service centre"], ["a.md"], "k", "easy")
    search, calls = searcher(["b#0", "a#2", "a#0"])  # the best hit is not gold; the best gold one is a#2
    assert [h.chunk_id for h in oracle_passages(item, CHUNKS, search, cap=5)] == ["a#2"]
    assert calls == ["Where do claims go?"]
    # A gold chunk the ranking never reached: the first gold chunk; no chunk of the gold source: none.
    search, _ = searcher(["b#0"])
    assert [h.chunk_id for h in oracle_passages(item, CHUNKS, search, cap=5)] == ["a#0"]
    lost = BenchItem("x", "q?", ["x"], ["gone.md"], "k", "easy")
    assert oracle_passages(lost, CHUNKS, search, cap=5) == []


def test_oracle_uses_an_items_own_context():
    item = BenchItem("c", "Who wrote it?", ["Mary"], ["a.md"], "k", "easy", context=["Mary wrote it."])
    search, calls = searcher(["a#0"])
    hits = oracle_passages(item, CHUNKS, search, cap=5)
    assert [(h.source, h.text) for h in hits] == [("context:1", "Mary wrote it.")] and calls == []
