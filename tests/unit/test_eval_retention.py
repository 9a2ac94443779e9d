"""The oracle arm, items with context and the retention bench, through run_eval with fake generators
over a real (fake-embedded) index (the fixtures of test_eval_runner)."""

from __future__ import annotations

import json
import re

import pytest
from test_eval_runner import BENCH, FakeGenerator, config, peft_adapter, setup  # noqa: F401 (fixture)

from ragkit.eval.runner import run_eval
from ragkit.types import Completion

LETTER = "The letter on the table was written by Mary in 1901."
GENERAL = [{"id": f"g{i}", "question": f"Name the capital of France, please ({i}).", "answers": ["Paris"],
            "sources": ["general"], "category": "common", "difficulty": "easy"} for i in range(1, 6)]
GENERAL.append({"id": "r1", "question": "Who wrote the letter on the table?", "answers": ["Mary"],
                "sources": ["general"], "category": "reading", "difficulty": "easy", "context": [LETTER]})


class GeneralGenerator(FakeGenerator):
    """FakeGenerator on the domain bench; on general items the base model knows the capital of
    France and the tuned one has forgotten it; both read a letter's author from the context."""

    def generate(self, prompt, decoding, on_token=None):
        question = prompt.rsplit("Question: ", 1)[-1]
        if "France" in question:
            self.calls.append(prompt)
            return Completion(text="Lyon" if self.adapter else "Paris", completion_tokens=1, total_ms=1.0)
        if "letter" in question:
            self.calls.append(prompt)
            ctx = re.split(r"Context:", prompt)[-1] if "Context:" in prompt else ""
            return Completion(text="Mary" if "Mary" in ctx else "I don't know", completion_tokens=1, total_ms=1.0)
        return super().generate(prompt, decoding, on_token)


class GenLoader:
    def __init__(self):
        self.gens: dict[tuple, GeneralGenerator] = {}

    def __call__(self, model, backend=None, *, adapter=None, base_url=None, lang="en", n_ctx=None):
        return self.gens.setdefault((model, adapter), GeneralGenerator(model, adapter))

    def n_calls(self):
        return sum(len(g.calls) for g in self.gens.values())


class SpyIndex:
    """The real index, recording every search query."""

    def __init__(self, index):
        self.index, self.queries = index, []

    def search(self, query, k=5, mode="hybrid"):
        self.queries.append(query)
        return self.index.search(query, k=k, mode=mode)

    def __getattr__(self, name):
        return getattr(self.index, name)

    def __len__(self):
        return len(self.index)


@pytest.fixture(autouse=True)
def no_charts(request, monkeypatch):
    if "chart" not in request.node.name:
        monkeypatch.setattr("ragkit.eval.charts.write_charts", lambda report, out: [])


@pytest.fixture
def general(tmp_path):
    f = tmp_path / "general.jsonl"
    f.write_text("".join(json.dumps(g) + "\n" for g in GENERAL), encoding="utf-8")
    return f


def all_arms(setup, tmp_path, **kw):  # noqa: F811
    lora = tmp_path / "lora-en"
    if not lora.exists():
        peft_adapter(tmp_path, "base-model")
    return config(setup, arms=["closed_book", "rag", "sft", "sft_rag", "oracle"], adapters={"*": str(lora)}, **kw)


def test_oracle_arm_reads_the_gold_chunks_and_is_paired_with_rag(setup):  # noqa: F811
    report = run_eval(config(setup, arms=["rag", "oracle"], k=1), load_generator=GenLoader())
    oracle, rag = report["arms"]["oracle"], report["arms"]["rag"]
    assert oracle["n"] == 4 and oracle["accuracy"] >= rag["accuracy"]
    p = report["pairwise"]["oracle_vs_rag"]
    assert (p["a"], p["b"], p["n"]) == ("rag", "oracle", 4)
    assert p["diff"] == pytest.approx(oracle["accuracy"] - rag["accuracy"], abs=1e-4)
    rows = [json.loads(x) for x in (setup[2] / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    gold = {b["id"]: set(b["sources"]) for b in BENCH}
    for r in (r for r in rows if r["arm"] == "oracle"):
        assert r["sources"] and {s["source"] for s in r["sources"]} <= gold[r["id"]], r
    w1 = next(r for r in rows if r["arm"] == "oracle" and r["id"] == "w1")
    assert w1["output"].startswith("24 months") and "24 months" in w1["prompt"].rsplit("Context:", 1)[-1]
    assert "oracle_vs_rag" in (setup[2] / "report.md").read_text(encoding="utf-8").replace("oracle − rag",
                                                                                          "oracle_vs_rag")


def test_context_items_are_answered_from_their_passages_without_retrieval(setup):  # noqa: F811
    from ragkit.index import Index

    bench, idx, out = setup
    item = dict(GENERAL[-1], id="ctx1")
    bench.write_text(bench.read_text(encoding="utf-8") + json.dumps(item) + "\n", encoding="utf-8")
    spy = SpyIndex(Index.open(idx))
    report = run_eval(config(setup, arms=["closed_book", "rag", "oracle"]), load_generator=GenLoader(), index=spy)
    assert item["question"] not in spy.queries  # neither retrieval metrics nor any arm searched for it
    assert report["retrieval"]["n"] == 4
    rows = [json.loads(x) for x in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    for arm in ("closed_book", "rag", "oracle"):
        r = next(r for r in rows if r["arm"] == arm and r["id"] == "ctx1")
        assert r["scores"]["accuracy"] == 1.0 and [s["source"] for s in r["sources"]] == ["context:1"]
        assert f"(source: context:1) {LETTER}" in r["prompt"]
    assert report["arms"]["closed_book"]["n"] == 5


def test_retention_and_forgetting_from_known_answers(setup, tmp_path, general):  # noqa: F811
    loader = GenLoader()
    report = run_eval(all_arms(setup, tmp_path, general_bench=str(general)), load_generator=loader)
    ret, fg = report["retention"], report["forgetting"]
    assert set(ret) == {"closed_book", "rag", "sft", "sft_rag", "oracle"}
    for r in ret.values():
        assert set(r) == {"accuracy", "em", "f1", "n", "ci95", "by_category"} and r["n"] == 6
        assert {c: v["n"] for c, v in r["by_category"].items()} == {"common": 5, "reading": 1}
    # The base model knows all five capitals and reads the letter; the tuned one only reads the letter.
    assert ret["closed_book"]["accuracy"] == 1.0 and ret["closed_book"]["ci95"] == [1.0, 1.0]
    assert ret["sft"]["accuracy"] == pytest.approx(1 / 6, abs=1e-4)
    lo, hi = ret["sft"]["ci95"]
    assert 0.0 <= lo < 1 / 6 < hi <= 1.0
    # The oracle on a general item: its context, else closed-book (no gold chunk in the domain index).
    assert ret["oracle"]["accuracy"] == 1.0
    assert set(fg) == {"sft", "sft_rag"}
    assert set(fg["sft"]) == {"base", "diff", "ci95", "n", "by_category"}
    # per category: the capitals were forgotten, the reading item was not
    assert fg["sft"]["by_category"]["common"]["diff"] == pytest.approx(-1.0) and fg["sft"]["by_category"]["common"]["n"] == 5
    assert fg["sft"]["by_category"]["reading"]["diff"] == pytest.approx(0.0)
    assert ret["sft"]["by_category"]["common"]["accuracy"] == 0.0
    assert fg["sft"]["base"] == "closed_book" and fg["sft"]["n"] == 6
    assert fg["sft"]["diff"] == pytest.approx(-5 / 6, abs=1e-4) and fg["sft"]["ci95"][1] < 0
    assert fg["sft_rag"]["base"] == "rag" and fg["sft_rag"]["diff"] <= 0
    rows = [json.loads(x) for x in (setup[2] / "retention_items.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 5 * 6 and {r["id"] for r in rows} == {g["id"] for g in GENERAL}
    assert {r["model"] for r in rows if r["arm"] == "sft"} == {"base-model"}
    oracle = {r["id"]: r for r in rows if r["arm"] == "oracle"}
    assert oracle["g1"]["sources"] == [] and "Context" not in oracle["g1"]["prompt"]
    assert [s["source"] for s in oracle["r1"]["sources"]] == ["context:1"]
    md = (setup[2] / "report.md").read_text(encoding="utf-8")
    assert "## Retention (general bench)" in md and "general.jsonl" in md
    assert "| sft | 6 | 16.7 [" in md and "| sft − closed_book | -83.3 |" in md
    # Domain items are untouched by the general bench: items.jsonl holds the domain rows only.
    domain = (setup[2] / "items.jsonl").read_text(encoding="utf-8")
    assert "Name the capital" not in domain
    # A re-run reuses every general-bench row.
    n = loader.n_calls()
    again = run_eval(all_arms(setup, tmp_path, general_bench=str(general)), load_generator=loader)
    assert loader.n_calls() == n and again["forgetting"] == fg


def test_without_a_general_bench_nothing_changes(setup):  # noqa: F811
    report = run_eval(config(setup, arms=["closed_book"]), load_generator=GenLoader())
    assert "retention" not in report and "forgetting" not in report
    assert not (setup[2] / "retention_items.jsonl").exists()
    assert "Retention" not in (setup[2] / "report.md").read_text(encoding="utf-8")


def test_forgetting_needs_both_arms_of_a_pair(setup, general):  # noqa: F811
    report = run_eval(config(setup, arms=["closed_book", "rag"], general_bench=str(general)),
                      load_generator=GenLoader())
    assert set(report["retention"]) == {"closed_book", "rag"} and report["forgetting"] == {}
    assert "Forgetting" not in (setup[2] / "report.md").read_text(encoding="utf-8")


def test_retention_chart_is_drawn_only_with_a_general_bench(setup, tmp_path, general):  # noqa: F811
    from ragkit.eval.charts import write_charts

    report = run_eval(config(setup, arms=["closed_book", "rag"], general_bench=str(general)),
                      load_generator=GenLoader())
    assert (setup[2] / "retention.png").is_file()
    assert "![retention](retention.png)" in (setup[2] / "report.md").read_text(encoding="utf-8")
    plain = {k: v for k, v in report.items() if k not in ("retention", "forgetting")}
    (tmp_path / "plain").mkdir()
    files = write_charts(plain, tmp_path / "plain")
    assert files and not any(f.endswith("retention.png") for f in files)


def test_a_missing_general_bench_is_one_sentence(setup):  # noqa: F811
    with pytest.raises(ValueError, match="general bench file .*nope.jsonl does not exist"):
        config(setup, general_bench="nope.jsonl")


def test_arms_that_send_the_same_prompt_answer_once_with_the_same_rows(setup, tmp_path, general):  # noqa: F811
    """Equivalence: the shared-prompt path (rag = closed_book on a context item, oracle =
    closed_book without gold chunks) gives the rows that answering every arm on its own gives."""
    from ragkit.eval import answering

    shared_loader = GenLoader()
    shared = run_eval(all_arms(setup, tmp_path, general_bench=str(general)), load_generator=shared_loader)
    rows = [json.loads(x) for x in (setup[2] / "retention_items.jsonl").read_text(encoding="utf-8").splitlines()]
    copied = [r for r in rows if r.get("same_as")]
    assert copied and all(r["same_as"] != r["arm"] for r in copied)
    assert {(r["arm"], r["same_as"]) for r in copied if r["id"] == "r1"} >= {("rag", "closed_book"),
                                                                              ("sft_rag", "sft")}

    plain_out = tmp_path / "plain"
    plain_loader = GenLoader()
    orig = answering.prompt_signature
    answering.prompt_signature = lambda *a, **k: None
    try:
        plain = run_eval(all_arms(setup, tmp_path, general_bench=str(general), out=str(plain_out)),
                         load_generator=plain_loader)
    finally:
        answering.prompt_signature = orig
    assert shared_loader.n_calls() < plain_loader.n_calls()
    assert shared["retention"] == plain["retention"] and shared["forgetting"] == plain["forgetting"]
    assert {k: v["accuracy"] for k, v in shared["arms"].items()} == {k: v["accuracy"] for k, v in plain["arms"].items()}
