"""The CLI over ingest/search/bench/eval --retrieval-only, driven with CliRunner and the fake embedder."""

import json

from click.testing import CliRunner

from ragkit.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_ingest_search_json_schema(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    r = run("ingest", mini_corpus, "--index", idx, "--embed-model", "fake-embedder", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["files_added"] == 4 and summary["skipped"] == []
    r = run("search", "How long is the battery warranty?", "--index", idx, "-k", "2", "--json")
    assert r.exit_code == 0
    hits = json.loads(r.output)["hits"]
    assert len(hits) == 2
    assert set(hits[0]) == {"rank", "chunk_id", "source", "score", "text", "page", "start", "end"}
    assert hits[0]["source"] == "warranty.md"


def test_human_output_and_skipped_files_exit_code(mini_corpus, tmp_path, fake_embedder):
    (mini_corpus / "junk.pdf").write_bytes(b"not a pdf")
    r = run("ingest", mini_corpus, "--index", tmp_path / "idx", "--embed-model", "fake-embedder")
    assert r.exit_code == 3
    assert "4 added" in r.output and "skipped" in r.output and "junk.pdf" in r.output
    r = run("search", "电池保修", "--index", tmp_path / "idx", "-k", "1")
    assert r.exit_code == 0 and "zh/保修.md" in r.output


def test_errors_are_one_line_without_traceback(tmp_path, mini_corpus, fake_embedder):
    r = run("search", "anything", "--index", tmp_path / "missing")
    assert r.exit_code == 1
    assert r.output.strip().startswith("Error: no index at") and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    run("ingest", mini_corpus, "--index", tmp_path / "idx", "--embed-model", "fake-embedder")
    r = run("search", "   ", "--index", tmp_path / "idx")
    assert r.exit_code == 2 and "query is empty" in r.output
    r = run("ingest", mini_corpus, "--index", tmp_path / "i2", "--chunk-size", "8")
    assert r.exit_code == 2 and "chunk_size" in r.output


def test_bench_validate(tmp_path):
    good = {"id": "a", "question": "q", "answers": ["x"], "sources": ["s"], "category": "knowledge", "difficulty": "easy"}
    p = tmp_path / "b.jsonl"
    p.write_text(json.dumps(good) + "\n" + "{oops\n", encoding="utf-8")
    r = run("bench", "validate", p)
    assert r.exit_code == 1 and ":2: invalid JSON" in r.output
    p.write_text(json.dumps(good) + "\n", encoding="utf-8")
    r = run("bench", "validate", p, "--json")
    assert r.exit_code == 0 and json.loads(r.output) == {"file": str(p), "items": 1, "statuses": {"draft": 1},
                                                       "errors": []}


def test_eval_retrieval_only_writes_report(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    run("ingest", mini_corpus, "--index", idx, "--embed-model", "fake-embedder")
    bench = tmp_path / "bench.jsonl"
    items = [
        {"id": "1", "question": "How long is the Falcon X2 warranty?", "answers": ["24 months"],
         "sources": ["warranty.md"], "category": "knowledge", "difficulty": "easy"},
        {"id": "2", "question": "猎鹰 X2 的续航时间是多少？", "answers": ["三十八分钟"],
         "sources": ["zh/参数.txt"], "category": "knowledge", "difficulty": "easy"},
    ]
    bench.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    out = tmp_path / "out"
    r = run("eval", "--bench", bench, "--index", idx, "--retrieval-only", "--out", out)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["retrieval"]) >= {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "n"}
    assert report["retrieval"]["n"] == 2 and report["retrieval"]["recall@5"] == 1.0


def test_issue14_repro_same_relative_path_in_two_roots(tmp_path, fake_embedder, monkeypatch):
    """The exact repro of issue 14, defect 1, through the CLI."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    (tmp_path / "A" / "readme.md").write_text("X XRAYALPHA\n")
    (tmp_path / "A" / "onlyx.md").write_text("x\n")
    (tmp_path / "B" / "readme.md").write_text("Y YANKEEBRAVO\n")
    fake = ["--embed-model", "fake-embedder", "--json"]

    def sources(index, word):
        r = run("search", word, "--index", index, "--mode", "bm25", "--json")
        assert r.exit_code == 0, r.output
        return [h["source"] for h in json.loads(r.output)["hits"]]

    assert run("ingest", "A", "--index", "I", *fake).exit_code == 0
    assert json.loads(run("ingest", "B", "--index", "I", *fake).output)["files_deleted"] == 0
    assert sources("I", "XRAYALPHA") == ["readme.md"] and sources("I", "YANKEEBRAVO") == ["B/readme.md"]
    for _ in range(2):
        r = run("ingest", "A", "B", "--index", "I2", *fake)
        assert r.exit_code == 0, r.output
    assert json.loads(r.output)["version_written"] is False
    assert sources("I2", "XRAYALPHA") == ["readme.md"] and sources("I2", "YANKEEBRAVO") == ["B/readme.md"]
    r = run("ingest", "A", "A", "--index", "I3", *fake)
    assert r.exit_code == 0 and json.loads(r.output)["files_added"] == 2
    r = run("ingest", "B", "--index", "I", "--sync", *fake)
    assert json.loads(r.output)["files_deleted"] == 2 and sources("I", "XRAYALPHA") == []


def test_ingest_suggests_an_approximate_index_past_the_measured_size(mini_corpus, tmp_path, fake_embedder, monkeypatch):
    from ragkit.index.faiss import writer

    r = run("ingest", mini_corpus, "--index", tmp_path / "small", "--embed-model", "fake-embedder")
    assert r.exit_code == 0 and "hint:" not in r.output
    monkeypatch.setattr(writer, "ANN_HINT_CHUNKS", 2)  # as if the corpus were a million chunks
    r = run("ingest", mini_corpus, "--index", tmp_path / "flat", "--embed-model", "fake-embedder")
    assert r.exit_code == 0 and "hint:" in r.output and "--dense-index hnsw" in r.output
    r = run("ingest", mini_corpus, "--index", tmp_path / "hnsw", "--embed-model", "fake-embedder", "--dense-index", "hnsw")
    assert r.exit_code == 0 and "hint:" not in r.output  # already approximate
