"""The eval runner with a fake generator over a real (fake-embedded) index: arms, resume, judge, coverage."""

from __future__ import annotations

import json
import re

import pytest

from ragkit.errors import ContextOverflow
from ragkit.eval.config import EvalConfig, select_items
from ragkit.eval.runner import run_eval
from ragkit.types import BenchItem, Completion

BENCH = [
    {"id": "w1", "question": "How long is the Falcon X2 warranty?", "answers": ["24 months"],
     "sources": ["warranty.md"], "category": "warranty", "difficulty": "easy"},
    {"id": "w2", "question": "How long are batteries covered?", "answers": ["12 months"],
     "sources": ["warranty.md"], "category": "warranty", "difficulty": "medium"},
    {"id": "s1", "question": "What is the flight time of the Falcon X2?", "answers": ["38 minutes"],
     "sources": ["specs.txt"], "category": "specs", "difficulty": "easy"},
    {"id": "z1", "question": "猎鹰 X2 的续航时间是多少？", "answers": ["三十八分钟"],
     "sources": ["zh/参数.txt"], "category": "specs", "difficulty": "hard"},
]
FACTS = ["24 months", "12 months", "38 minutes", "三十八分钟"]


class FakeGenerator:
    """Answers with the first known fact in the *context* (after the last 'Context'/'资料' label);
    closed-book it does not know; with an adapter it "learned" every fact but the batteries one."""

    backend = "fake"
    prompt_style = "fewshot"
    max_passages = None
    context_length = 4096

    def __init__(self, model, adapter=None, replies=None):
        self.model = model
        self.adapter = adapter
        self.replies = replies  # judge mode: a list of canned replies, used in turn
        self.calls: list[str] = []

    def count_tokens(self, text):
        return len(text.split())

    def render_chat(self, messages):
        return "\n".join(m["content"] for m in messages)

    def generate(self, prompt, decoding, on_token=None):
        self.calls.append(prompt)
        if self.replies is not None:
            reply = self.replies[(len(self.calls) - 1) % len(self.replies)]
            if reply == "CRASH":
                raise RuntimeError("judge server went away")
            return Completion(text=reply)
        question = prompt.rsplit("Question: ", 1)[-1].rsplit("问题: ", 1)[-1]
        if "overflow" in question:
            raise ContextOverflow("too long")
        # Only the last block is the real question; earlier blocks are the worked examples.
        ctx = re.split(r"Context:|资料:", prompt)[-1] if ("Context:" in prompt or "资料:" in prompt) else ""
        text = "I don't know"
        if self.adapter and "batteries" not in question:
            text = next((f for f, q in zip(FACTS, ("warranty", "batteries", "flight", "续航")) if q in question), text)
        for f in FACTS:
            if f in ctx and "Question" in prompt.split(f)[-1] + "问题":
                text = f
                break
        return Completion(text=text, prompt_tokens=len(prompt.split()), completion_tokens=len(text.split()),
                          total_ms=1.0)


class Loader:
    """Stands in for ragkit.generate.load_generator and records what was loaded."""

    def __init__(self, judge_replies=None):
        self.loaded: list[tuple] = []
        self.gens: dict[tuple, FakeGenerator] = {}
        self.judge_replies = judge_replies

    def __call__(self, model, backend=None, *, adapter=None, base_url=None, lang="en", n_ctx=None):
        key = (model, adapter)
        if key not in self.gens:
            self.loaded.append((model, adapter, lang))
            replies = self.judge_replies if model == "judge-model" else None
            self.gens[key] = FakeGenerator(model, adapter, replies)
        return self.gens[key]

    def n_calls(self):
        return sum(len(g.calls) for g in self.gens.values())


@pytest.fixture(autouse=True)
def no_charts(request, monkeypatch):
    """Charts cost a second per run (matplotlib); only the test that checks them draws them."""
    if "report_and_items" not in request.node.name:
        monkeypatch.setattr("ragkit.eval.charts.write_charts", lambda report, out: [])


@pytest.fixture
def setup(tmp_path, mini_corpus, fake_embedder):
    from ragkit.index import IngestConfig, ingest

    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, IngestConfig(embed_model="fake-embedder"))
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(b, ensure_ascii=False) + "\n" for b in BENCH), encoding="utf-8")
    return bench, idx, tmp_path / "out"


def config(setup, **kw):
    bench, idx, out = setup
    base = {"bench": str(bench), "index": str(idx), "out": str(out), "mode": "bm25", "min_score": 0.0,
                "models": {"*": "base-model"}, "n_boot": 200}
    base.update(kw)
    return EvalConfig(**base)


def test_arms_report_and_items(setup):
    loader = Loader()
    report = run_eval(config(setup, arms=["closed_book", "rag", "sft", "sft_rag"]), load_generator=loader)
    assert set(report["arms"]) == {"closed_book", "rag"}
    assert set(report["skipped_arms"]) == {"sft", "sft_rag"} and "--adapter" in report["skipped_arms"]["sft"]
    cb, rag = report["arms"]["closed_book"], report["arms"]["rag"]
    assert cb["accuracy"] == 0.0 and cb["refusal_rate"] == 1.0
    assert rag["accuracy"] > cb["accuracy"]
    for key in ("accuracy", "em", "f1", "refusal_rate", "repetition", "by_category", "by_difficulty", "ci95",
                "latency", "tokens_per_s", "total_s"):
        assert key in rag
    assert set(rag["by_category"]) == {"specs", "warranty"} and set(rag["by_difficulty"]) == {"easy", "medium", "hard"}
    assert set(rag["latency"]) == {"mean_ms", "p50_ms", "p95_ms"}
    assert report["pairwise"]["rag_vs_closed_book"]["diff"] == pytest.approx(rag["accuracy"])
    assert set(report["retrieval"]) >= {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10",
                                        "answer_in_context", "recall_curve", "by_category"}
    assert len(report["retrieval"]["recall_curve"]) == 10
    rows = [json.loads(line) for line in (setup[2] / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 8
    r = next(r for r in rows if r["arm"] == "rag" and r["id"] == "w1")
    assert r["prompt"] and r["sources"] and r["sources"][0]["source"] == "warranty.md"
    assert r["output"].startswith("24 months") and r["scores"]["accuracy"] == 1.0 and r["lang"] == "en"
    closed = next(r for r in rows if r["arm"] == "closed_book" and r["id"] == "w1")
    assert closed["sources"] == [] and "Context" not in closed["prompt"]
    for f in ("report.json", "report.md", "accuracy.png", "recall.png", "retrieval_items.jsonl"):
        assert (setup[2] / f).is_file(), f


# The resume tests count generator calls, one per item: whole chunks (context_tokens=0), since a
# refusal from selected evidence is asked again from whole chunks (a second call).
WHOLE = {"context_tokens": 0}


def test_resume_reuses_finished_items_and_redoes_changed_settings(setup):
    loader = Loader()
    run_eval(config(setup, arms=["closed_book", "rag"], **WHOLE), load_generator=loader)
    first = loader.n_calls()
    assert first == 8
    logs = []
    report = run_eval(config(setup, arms=["closed_book", "rag"], **WHOLE), load_generator=loader, log=logs.append)
    assert loader.n_calls() == first  # nothing generated again
    assert any("Reused 8" in m for m in logs)
    assert report["arms"]["rag"]["n"] == 4
    # A different k changes the rag key only: closed_book items are reused.
    run_eval(config(setup, arms=["closed_book", "rag"], k=2, **WHOLE), load_generator=loader)
    assert loader.n_calls() == first + 4
    lines = (setup[2] / "items.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 8  # the superseded rows are gone


def test_interrupted_run_resumes_from_a_torn_file(setup):
    loader = Loader()
    run_eval(config(setup, arms=["rag"], **WHOLE), load_generator=loader)
    items = setup[2] / "items.jsonl"
    lines = items.read_text(encoding="utf-8").splitlines()
    items.write_text("\n".join(lines[:2]) + "\n" + lines[2][:30], encoding="utf-8")  # crash mid-write
    loader2 = Loader()
    report = run_eval(config(setup, arms=["rag"], **WHOLE), load_generator=loader2)
    assert loader2.n_calls() == 2 and report["arms"]["rag"]["n"] == 4


def peft_adapter(tmp_path, base):
    """A directory shaped like `ragkit train` output (the fake generator never reads the weights)."""
    d = tmp_path / "lora-en"
    d.mkdir()
    (d / "adapter_config.json").write_text("{}")
    (d / "ragkit_adapter.json").write_text(json.dumps({"base": base}))
    return d


def test_per_language_models_and_partial_sft_coverage(setup, tmp_path):
    loader = Loader()
    lora = peft_adapter(tmp_path, "en-model")
    report = run_eval(
        config(setup, arms=["closed_book", "sft"], models={"en": "en-model", "zh": "zh-model"},
               adapters={"en": str(lora)}),
        load_generator=loader,
    )
    assert ("en-model", None, "en") in loader.loaded and ("zh-model", None, "zh") in loader.loaded
    assert ("en-model", str(lora), "en") in loader.loaded
    # A PEFT adapter runs on hf while the base arms use the default backend: the report says so.
    assert any("different backends" in n for n in report["notes"])
    assert report["arms"]["sft"]["n"] == 3 and report["arms"]["closed_book"]["n"] == 4
    assert any("sft ran on the 3 items in en only" in n for n in report["notes"])
    # The tuned model learned two of the three English facts; the paired difference uses 3 items.
    assert report["arms"]["sft"]["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["pairwise"]["sft_vs_closed_book"]["n"] == 3


def test_judge_unparseable_replies_are_counted_not_dropped(setup):
    replies = ['{"verdict": "correct", "reason": "same"}', "I think it is right!",
               '{"verdict": "incorrect", "reason": "no"}', "```json\n{\"correct\": true}\n```"]
    loader = Loader(judge_replies=replies)
    report = run_eval(config(setup, arms=["rag"], judge="judge-model"), load_generator=loader)
    j = report["arms"]["rag"]["judge"]
    assert j == {"accuracy": pytest.approx(2 / 3, abs=1e-4), "n_graded": 3, "unparseable": 1,
                 "unparseable_rate": 0.25}
    rows = [json.loads(x) for x in (setup[2] / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sum(1 for r in rows if r["judge"]["parsed"] is False) == 1
    assert "judge unparsed" in (setup[2] / "report.md").read_text(encoding="utf-8")
    # Re-running with the same judge grades nothing again.
    n = loader.n_calls()
    run_eval(config(setup, arms=["rag"], judge="judge-model"), load_generator=loader)
    assert loader.n_calls() == n


def test_interrupted_judging_keeps_its_verdicts(setup):
    ok = '{"verdict": "correct"}'
    with pytest.raises(RuntimeError):
        run_eval(config(setup, arms=["rag"], judge="judge-model"),
                 load_generator=Loader(judge_replies=[ok, ok, "CRASH"]))
    loader = Loader(judge_replies=[ok])
    report = run_eval(config(setup, arms=["rag"], judge="judge-model"), load_generator=loader)
    assert len(loader.gens[("judge-model", None)].calls) == 2  # only the two not yet graded
    assert report["arms"]["rag"]["judge"]["n_graded"] == 4


def test_all_judge_replies_unparseable_gives_null_accuracy_not_nan(setup):
    loader = Loader(judge_replies=["garbage"])
    report = run_eval(config(setup, arms=["rag"], judge="judge-model"), load_generator=loader)
    assert report["arms"]["rag"]["judge"] == {"accuracy": None, "n_graded": 0, "unparseable": 4,
                                              "unparseable_rate": 1.0}
    assert "NaN" not in (setup[2] / "report.json").read_text(encoding="utf-8")


def test_an_overlong_item_is_recorded_as_an_error(setup):
    bench, _idx, _out = setup
    extra = dict(BENCH[0], id="o1", question="overflow this question please")
    bench.write_text(bench.read_text(encoding="utf-8") + json.dumps(extra) + "\n", encoding="utf-8")
    report = run_eval(config(setup, arms=["closed_book"]), load_generator=Loader())
    assert report["arms"]["closed_book"]["errors"] == 1 and report["arms"]["closed_book"]["n"] == 5
    assert any("failed" in n for n in report["notes"])


def test_limit_takes_items_across_categories(setup):
    report = run_eval(config(setup, arms=["rag"], limit=2), load_generator=Loader())
    assert report["arms"]["rag"]["n"] == 2 and set(report["arms"]["rag"]["by_category"]) == {"specs", "warranty"}
    items = [BenchItem(str(i), "q", ["a"], ["s"], c, "easy") for i, c in enumerate("aaaabbc")]
    assert [it.id for it in select_items(items, 3)] == ["0", "4", "6"]
    assert select_items(items, None) == items


def gguf_adapter(path, base):
    """A minimal GGUF LoRA adapter file carrying the keys ragkit reads (no tensors)."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_string("ragkit.base", base)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_adapter_base_and_backend_resolution(tmp_path):
    from ragkit.errors import UsageError
    from ragkit.eval.arms import resolve_adapter

    lora = peft_adapter(tmp_path, "smollm2-135m")
    # The adapter's own base wins over the eval's base model; a PEFT directory needs hf.
    assert resolve_adapter("gemma3-270m", str(lora), None) == ("smollm2-135m", str(lora), "hf")
    with pytest.raises(UsageError, match="export-gguf"):
        resolve_adapter(None, str(lora), "llamacpp")
    g = gguf_adapter(tmp_path / "lora.gguf", "gemma3-270m")
    assert resolve_adapter("smollm2-135m", str(g), None) == ("gemma3-270m", str(g), "llamacpp")
    with pytest.raises(UsageError, match="only the llamacpp"):
        resolve_adapter(None, str(g), "hf")
    with pytest.raises(UsageError, match="does not exist"):
        resolve_adapter(None, str(tmp_path / "nope"), None)


@pytest.mark.parametrize("kw, msg", [
    ({"arms": ["rag", "nope"]}, "unknown arm"),
    ({"k": 0}, "k: must be at least 1"),
    ({"mode": "fuzzy"}, "mode: expected one of dense, bm25 or hybrid"),
    ({"models": {"fr": "x"}}, "models.fr: expected one of"),
    ({"index": None}, "need an index"),
])
def test_config_validation(setup, kw, msg):
    with pytest.raises(ValueError, match=msg):
        config(setup, **kw)


def test_resolved_backend_is_what_load_generator_would_pick(tmp_path):
    from ragkit.generate import resolved_backend

    hf_dir = tmp_path / "hf-model"
    hf_dir.mkdir()
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolved_backend(str(hf_dir)) == "hf"
    assert resolved_backend(str(gguf)) == "llamacpp"
    assert resolved_backend(str(gguf), "hf") == "hf"
    assert resolved_backend("served-model", base_url="http://127.0.0.1:8000/v1") == "openai"
