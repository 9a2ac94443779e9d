"""Report building and rendering: the stable JSON keys, markdown tables, charts, run comparison."""

import json

import pytest

from ragkit.eval import report as R


def row(arm, i, acc, cat="knowledge", diff="easy", refused=False, latency=100.0, tokens=10):
    return {"arm": arm, "id": f"q{i}", "category": cat, "difficulty": diff, "model": "m",
            "latency_ms": latency, "completion_tokens": tokens,
            "scores": {"em": acc, "f1": acc, "accuracy": acc, "refused": float(refused), "repetition": 0.0,
                       "length": 3}}


def rows_for(arm, accs, cats=("knowledge", "logic")):
    return [row(arm, i, a, cat=cats[i % len(cats)], diff="easy" if i < len(accs) / 2 else "hard",
                latency=100.0 * (i + 1)) for i, a in enumerate(accs)]


@pytest.fixture
def report():
    rows = {
        "closed_book": rows_for("closed_book", [0.0] * 9 + [1.0]),
        "rag": rows_for("rag", [1.0] * 8 + [0.0] * 2),
    }
    retrieval = {"recall@1": 0.5, "recall@5": 0.8, "recall@10": 0.9, "mrr@10": 0.6, "ndcg@10": 0.65,
                 "answer_in_context": 0.7, "n": 10, "recall_curve": [0.5, 0.6, 0.7, 0.75, 0.8, 0.8, 0.85, 0.85, 0.9, 0.9]}
    return R.build_report(retrieval, rows, {"bench": "b.jsonl", "k": 5, "mode": "hybrid", "judge": None},
                          skipped={"sft": "no tuned model"}, notes=["a note"], n_boot=500)


def test_stable_json_keys(report):
    assert set(report) == {"retrieval", "arms", "pairwise", "skipped_arms", "notes", "config"}
    rag = report["arms"]["rag"]
    for key in ("accuracy", "em", "f1", "refusal_rate", "repetition", "by_category", "by_difficulty", "ci95",
                "latency", "tokens_per_s", "total_s", "answer_length", "n", "errors"):
        assert key in rag, key
    assert rag["accuracy"] == 0.8 and rag["n"] == 10
    assert set(rag["ci95"]) == {"accuracy", "em", "f1"}
    lo, hi = rag["ci95"]["accuracy"]
    assert lo < 0.8 < hi
    assert set(rag["by_category"]) == {"knowledge", "logic"} and set(rag["by_difficulty"]) == {"easy", "hard"}
    assert rag["by_category"]["knowledge"]["n"] == 5 and "ci95" in rag["by_category"]["knowledge"]
    assert "judge" not in rag
    json.dumps(report, allow_nan=False)  # no NaN anywhere


def test_cost_figures(report):
    rag = report["arms"]["rag"]
    # latencies 100..1000 ms: mean 550, median 550, p95 by linear interpolation 955
    assert rag["latency"] == {"mean_ms": 550.0, "p50_ms": 550.0, "p95_ms": 955.0}
    assert rag["total_s"] == 5.5
    assert rag["tokens_per_s"] == pytest.approx(100 / 5.5, abs=0.1)


def test_pairwise_is_paired_and_signed(report):
    p = report["pairwise"]["rag_vs_closed_book"]
    assert (p["a"], p["b"], p["metric"], p["n"]) == ("closed_book", "rag", "accuracy", 10)
    assert p["diff"] == pytest.approx(0.7)  # 8 items gained, 1 lost
    assert p["ci95"][0] > 0 and p["significant"]
    # Unpaired, the same two accuracies would be compared as independent samples; paired, an
    # arm that is right exactly where the other is wrong shows the full difference.
    # Arms given in another order still compare as "rag minus closed_book".
    reordered = R.pairwise({"rag": rows_for("rag", [1.0] * 4), "closed_book": rows_for("closed_book", [0.0] * 4)},
                           n_boot=200)
    assert list(reordered) == ["rag_vs_closed_book"] and reordered["rag_vs_closed_book"]["diff"] == 1.0
    flip = R.pairwise({"a": rows_for("a", [0.0, 1.0] * 10), "b": rows_for("b", [1.0, 0.0] * 10)}, n_boot=300)
    assert flip["b_vs_a"]["diff"] == 0.0 and not flip["b_vs_a"]["significant"]


def test_markdown_tables(report):
    md = R.render_markdown(report, ["accuracy.png"])
    assert "| arm | n | accuracy % [95% CI]" in md
    assert "| rag | 10 | 80.0 [" in md
    assert "| arm | knowledge (n=5) | logic (n=5) |" in md
    assert "| rag − closed_book | +70.0 |" in md
    assert "Arm `sft` skipped: no tuned model" in md and "- a note" in md
    assert "![accuracy](accuracy.png)" in md
    assert "recall@5" in md and "0.800" in md


def test_judge_summary_in_report():
    rows = {"rag": [dict(row("rag", i, 1.0), judge=j) for i, j in enumerate([
        {"correct": True, "parsed": True}, {"correct": None, "parsed": False}, {"correct": False, "parsed": True}])]}
    rep = R.build_report({}, rows, {"judge": "llamacpp/x"}, n_boot=200)
    assert rep["arms"]["rag"]["judge"] == {"accuracy": 0.5, "n_graded": 2, "unparseable": 1,
                                           "unparseable_rate": 0.3333}
    assert "judge unparsed" in R.render_markdown(rep)


def test_charts_are_png(report, tmp_path):
    from ragkit.eval.charts import write_charts

    files = write_charts(report, tmp_path)
    assert sorted(p.split("/")[-1] for p in files) == ["accuracy.png", "recall.png"]
    for f in files:
        with open(f, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert write_charts({"arms": {}, "retrieval": {}, "config": {}}, tmp_path / "none") == []


def test_compare_two_runs(report, tmp_path):
    other = json.loads(json.dumps(report))
    other["arms"]["rag"]["accuracy"] = 0.9
    other["arms"]["rag"]["by_category"]["logic"]["accuracy"] = 1.0
    other["retrieval"]["recall@5"] = 0.9
    del other["arms"]["closed_book"]
    cmp = R.compare(report, other)
    assert cmp["arms"]["rag"]["accuracy"] == {"a": 0.8, "b": 0.9, "diff": 0.1}
    assert cmp["arms"]["closed_book"]["accuracy"] == {"a": 0.1, "b": None, "diff": None}
    assert cmp["retrieval"]["recall@5"]["diff"] == 0.1
    assert cmp["by_category"]["rag"]["logic"]["b"] == 1.0
    text = R.render_comparison(cmp, "runA", "runB")
    assert "A = runA" in text and "| rag | accuracy | 80.0 | 90.0 | +10.0 |" in text
    assert "| closed_book | accuracy | 10.0 | – | – |" in text
    assert "retention" not in cmp and "retention A" not in text


def test_compare_sets_retention_side_by_side(report):
    a, b = json.loads(json.dumps(report)), json.loads(json.dumps(report))
    a["retention"] = {"closed_book": {"accuracy": 0.72}, "sft": {"accuracy": 0.72}}
    b["retention"] = {"closed_book": {"accuracy": 0.72}, "sft": {"accuracy": 0.5}}
    cmp = R.compare(a, b)
    assert cmp["retention"]["sft"] == {"a": 0.72, "b": 0.5, "diff": -0.22}
    assert "| sft | 72.0 | 50.0 | -22.0 |" in R.render_comparison(cmp, "A", "B")


def test_load_report_errors(tmp_path):
    from ragkit.errors import UsageError

    with pytest.raises(UsageError, match="no report.json"):
        R.load_report(tmp_path)
    (tmp_path / "report.json").write_text("{broken")
    with pytest.raises(UsageError, match="not valid JSON"):
        R.load_report(tmp_path)


@pytest.mark.parametrize("reply, correct, parsed", [
    ('{"verdict": "correct", "reason": "same value"}', True, True),
    ('Sure! ```json\n{"verdict": "INCORRECT", "reason": "24 vs 18"}\n```', False, True),
    ('{"correct": true}', True, True),
    ('{"verdict": "correct", "reason": "cut off by max_tok', True, True),  # unclosed, field present
    ("The answer is correct.", None, False),  # prose is not a verdict
    ('{"verdict": "maybe"}', None, False),
    ("", None, False),
])
def test_parse_verdict(reply, correct, parsed):
    from ragkit.eval.judge import parse_verdict

    v = parse_verdict(reply)
    assert (v.correct, v.parsed) == (correct, parsed)
    assert v.raw == reply.strip()


def test_judge_prompts_per_style_and_spec():
    from ragkit.eval.judge import RUBRIC, Judge, parse_judge_spec
    from ragkit.types import Completion

    class Gen:
        backend, model = "fake", "m"
        max_passages = None

        def __init__(self, style, reply):
            self.prompt_style, self.reply, self.seen = style, reply, []

        def render_chat(self, messages):
            return "CHAT:" + "|".join(m["content"] for m in messages)

        def generate(self, prompt, decoding, on_token=None):
            self.seen.append((prompt, decoding.stop))
            return Completion(text=self.reply)

    chat = Gen("chat", '{"verdict": "incorrect"}')
    v = Judge(chat).grade("How long?", ["18 months"], "24 months [1]")
    assert v.correct is False and chat.seen[0][0].startswith("CHAT:" + RUBRIC)
    assert "- 18 months" in chat.seen[0][0] and "Answer to grade: 24 months" in chat.seen[0][0]
    base = Gen("fewshot", 'correct", "reason": "same"}')
    v = Judge(base).grade("How long?", ["18 months"], "18 months")
    assert v.correct is True and v.parsed and base.seen[0][1] == ["\n"]
    assert parse_judge_spec("llamacpp/smollm2-135m") == ("llamacpp", "smollm2-135m")
    assert parse_judge_spec("./models/my/judge.gguf") == (None, "./models/my/judge.gguf")
    assert parse_judge_spec("gemma3-270m") == (None, "gemma3-270m")
