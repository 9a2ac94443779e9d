"""The Milvus store (milvus-lite) against the FAISS store: parity, incremental ingest, refusals, crash safety."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ragkit.errors import IndexIncompatible, IndexLocked, UsageError
from ragkit.index import Index, IngestConfig, ingest
from ragkit.index.manifest import read_current

FAISS = IngestConfig(embed_model="fake-embedder", store="faiss")
MILVUS = IngestConfig(embed_model="fake-embedder", store="milvus")
QUERIES = ["warranty of the Falcon X2 drone", "flight time minutes", "camera video frames",
           "电池保修多久", "最大抗风等级", "服务中心 发票"]


def opened(idx):
    index = Index.open(idx)
    try:
        return sorted({c.source for c in index.chunks()}), len(index)
    finally:
        index.close()


@pytest.mark.parametrize("analyzer", ["jieba", "ragkit"])
def test_both_stores_return_the_same_top_hits(mini_corpus, tmp_path, fake_embedder, analyzer):
    ingest([mini_corpus], tmp_path / "f", FAISS)
    ingest([mini_corpus], tmp_path / "m", IngestConfig(embed_model="fake-embedder", store="milvus",
                                                       milvus_analyzer=analyzer))
    faiss, milvus = Index.open(tmp_path / "f"), Index.open(tmp_path / "m")
    assert type(milvus).__name__ == "MilvusIndex" and milvus.describe()["store"] == "milvus"
    assert sorted(c.chunk_id for c in faiss.chunks()) == sorted(c.chunk_id for c in milvus.chunks())
    for q in QUERIES:
        for mode in ("dense", "bm25", "hybrid"):
            f, m = faiss.search(q, k=3, mode=mode), milvus.search(q, k=3, mode=mode)
            best = {h.chunk_id for h in f if abs(h.score - f[0].score) < 1e-4}  # ties count as the same hit
            assert m[0].chunk_id in best, (q, mode, [h.chunk_id for h in f], [h.chunk_id for h in m])
            assert 0.0 <= m[0].score <= 1.0
            if mode == "dense" or analyzer == "ragkit":  # same vectors; same words, k1 and b: same scores
                assert m[0].score == pytest.approx(f[0].score, abs=1e-3), (q, mode)
    hit = milvus.search("电池保修多久", k=1)[0]
    assert hit.text == (mini_corpus / "zh" / "保修.md").read_text(encoding="utf-8")[hit.start : hit.end]
    milvus.close()


def test_incremental_add_change_delete_on_milvus(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, MILVUS)
    fake_embedder.embedded.clear()
    again = ingest([mini_corpus], idx, IngestConfig(embed_model="fake-embedder"))  # store from the manifest
    assert again.files_unchanged == 4 and fake_embedder.embedded == []
    (mini_corpus / "new.txt").write_text("The charging dock uses 19 volts.", encoding="utf-8")
    (mini_corpus / "specs.txt").write_text("Falcon X2 flight time is now 41 minutes.", encoding="utf-8")
    (mini_corpus / "zh" / "参数.txt").unlink()
    s = ingest([mini_corpus], idx, MILVUS)
    assert (s.files_added, s.files_changed, s.files_unchanged, s.files_deleted) == (1, 1, 2, 1)
    assert sorted(fake_embedder.embedded) == ["Falcon X2 flight time is now 41 minutes.", "The charging dock uses 19 volts."]
    assert opened(idx)[0] == ["new.txt", "specs.txt", "warranty.md", "zh/保修.md"]
    index = Index.open(idx)
    hits = index.search("flight time minutes", k=5, mode="bm25")
    assert "41 minutes" in hits[0].text and not any("38 minutes" in h.text for h in hits)
    rows = index.client.query(index.collection, filter="", output_fields=["count(*)"])[0]["count(*)"]
    assert rows == len(index)  # replaced and deleted files' rows are gone, not just hidden
    fresh = tmp_path / "fresh"
    ingest([mini_corpus], fresh, MILVUS)  # incremental document frequencies equal a rebuild's
    rebuilt = Index.open(fresh)
    assert index.df.codes.tolist() == rebuilt.df.codes.tolist() and index.df.counts.tolist() == rebuilt.df.counts.tolist()
    assert index.bm25_bound("电池 warranty") == pytest.approx(rebuilt.bm25_bound("电池 warranty"))
    index.close()
    rebuilt.close()


def test_milvus_refusals(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, MILVUS)
    with pytest.raises(IndexIncompatible, match="fake-embedder"):
        ingest([mini_corpus], idx, IngestConfig(embed_model="all-minilm-l6-v2"))
    with pytest.raises(IndexIncompatible, match="milvus store, not faiss"):
        ingest([mini_corpus], idx, FAISS)
    with pytest.raises(IndexIncompatible, match="fake-embedder"):
        Index.open(idx, embed_model="all-minilm-l6-v2")
    with pytest.raises(UsageError, match="--ray"):
        ingest([mini_corpus], tmp_path / "ray", IngestConfig(embed_model="fake-embedder", store="milvus", ray=""))
    with pytest.raises(UsageError, match="ending in .db"):
        ingest([mini_corpus], tmp_path / "other", IngestConfig(embed_model="fake-embedder", store="milvus",
                                                               milvus_uri="store.sqlite"))


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import conftest  # registers the fake embedder
    import ragkit.index.versions as versions
    from ragkit.index import IngestConfig, ingest

    def stall(directory, version):  # rows of the new version are inserted and flushed: die before the swap
        open({flag!r}, "w").close()
        time.sleep(60)

    versions.swap = stall
    ingest([{corpus!r}], {idx!r}, IngestConfig(embed_model="fake-embedder"))
""")


def test_killed_milvus_ingest_leaves_the_old_version_answering(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, MILVUS)
    before = opened(idx)
    live = read_current(idx)
    (mini_corpus / "added.txt").write_text("A brand new document about rotors and propellers.", encoding="utf-8")
    (mini_corpus / "specs.txt").write_text("Falcon X2 flight time is now 41 minutes.", encoding="utf-8")
    flag = tmp_path / "inserted"
    code = CHILD.format(tests=str(Path(__file__).parents[1]), flag=str(flag), corpus=str(mini_corpus), idx=str(idx))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not flag.exists() and time.time() < deadline and child.poll() is None:
            time.sleep(0.1)
        assert flag.exists(), "child never reached the swap"
        t0 = time.perf_counter()
        with pytest.raises(IndexLocked, match="milvus-lite lets one process"):
            Index.open(idx)  # a reader during an ingest: a clear message at once, not a hang
        assert time.perf_counter() - t0 < 5
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert read_current(idx) == live and opened(idx) == before  # the old version still answers
    index = Index.open(idx)
    assert not any("rotors" in h.text or "41 minutes" in h.text for h in index.search("rotors propellers 41 minutes", k=5))
    index.close()
    s = ingest([mini_corpus], idx, MILVUS)  # the dead writer's lock went with it; its rows are dropped
    assert s.files_added == 1 and s.files_changed == 1
    index = Index.open(idx)
    assert "rotors" in index.search("rotors propellers", k=1, mode="bm25")[0].text
    rows = index.client.query(index.collection, filter="", output_fields=["count(*)"])[0]["count(*)"]
    assert rows == len(index)
    index.close()
    live = read_current(idx)  # the rest are retired, reaped once no reader can hold them (versions.py)
    assert [d for d in idx.glob("v-*") if not (d / ".retired").exists()] == [live]


def test_both_stores_find_and_name_sources_alike(mini_corpus, tmp_path, fake_embedder):
    """Two roots (the second labelled), a link out of the folder (not followed), then --sync: same names."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "extra.txt").write_text("Spare propellers ship in packs of four.", encoding="utf-8")
    outside = tmp_path / "outside.txt"
    outside.write_text("A secret outside every root.", encoding="utf-8")
    (mini_corpus / "link.txt").symlink_to(outside)
    runs = {}
    for store in ("faiss", "milvus"):
        idx = tmp_path / store
        cfg = IngestConfig(embed_model="fake-embedder", store=store)
        first = ingest([mini_corpus], idx, cfg)
        second = ingest([other], idx, IngestConfig(embed_model="fake-embedder"))
        after_two = opened(idx)
        synced = ingest([other], idx, IngestConfig(embed_model="fake-embedder"), sync=True)
        runs[store] = ([p for p, _ in first.skipped], second.files_added, after_two, synced.files_deleted,
                       opened(idx))
    assert runs["faiss"] == runs["milvus"]
    skipped, added, (sources, _), deleted, (left, _) = runs["milvus"]
    assert any("link.txt" in p for p in skipped) and "link.txt" not in sources
    assert added == 1 and "other/extra.txt" in sources and deleted == 4 and left == ["other/extra.txt"]


def test_a_manifest_naming_a_bad_store_is_one_sentence(mini_corpus, tmp_path, fake_embedder):
    import json

    from ragkit.errors import IndexDamaged

    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, MILVUS)
    path = read_current(idx) / "manifest.json"
    m = json.loads(path.read_text(encoding="utf-8"))
    for bad in ({"store": "cassandra"}, {"milvus": {"uri": "milvus.db"}}):
        path.write_text(json.dumps({**m, **bad}), encoding="utf-8")
        with pytest.raises(IndexDamaged, match="store|milvus"):
            Index.open(idx)


def test_cli_ingest_and_search_on_milvus(mini_corpus, tmp_path, fake_embedder):
    import json

    from click.testing import CliRunner

    from ragkit.cli import main

    def run(*args):
        return CliRunner().invoke(main, [str(a) for a in args])

    idx = tmp_path / "idx"
    r = run("ingest", mini_corpus, "--index", idx, "--embed-model", "fake-embedder", "--store", "milvus", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["files_added"] == 4
    r = run("search", "How long is the battery warranty?", "--index", idx, "-k", "2", "--json")
    assert r.exit_code == 0, r.output
    hits = json.loads(r.output)["hits"]
    assert len(hits) == 2 and hits[0]["source"] == "warranty.md"
    r = run("ingest", mini_corpus, "--index", idx, "--embed-model", "fake-embedder", "--store", "faiss")
    assert r.exit_code == 1 and "is a milvus store, not faiss" in r.output and "Traceback" not in r.output


def test_an_open_milvus_index_moves_to_the_next_version(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, MILVUS)
    index = Index.open(idx)
    first = index.version
    assert "38 minutes" in index.search("flight time minutes", k=1, mode="bm25")[0].text
    (mini_corpus / "specs.txt").write_text("Falcon X2 flight time is now 41 minutes.", encoding="utf-8")
    ingest([mini_corpus], idx, MILVUS)  # same process: milvus-lite shares its server
    hits = index.search("flight time minutes", k=5, mode="bm25")
    assert index.version != first and "41 minutes" in hits[0].text and not any("38 minutes" in h.text for h in hits)
    index.close()
