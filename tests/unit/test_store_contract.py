"""The store contract: every store in the registry, and a test-only toy store registered by one line,
ingests, searches, drops a deleted file, reopens, and names a damaged index in one sentence."""

import importlib.util
import json

import pytest
from toy_store import ROWS, TOY

from ragkit.errors import IndexDamaged, UsageError
from ragkit.index import STORES, Index, IngestConfig, ingest
from ragkit.index.manifest import read_current


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def drop_milvus_keys(version_dir):
    m = json.loads((version_dir / "manifest.json").read_text(encoding="utf-8"))
    del m["milvus"]["collection"]
    (version_dir / "manifest.json").write_text(json.dumps(m), encoding="utf-8")


# Each store with a way to damage what it alone writes (the shared manifest is damaged for all below).
DAMAGE = {
    "faiss": (lambda v: truncate(v / "chunks.sqlite"), "chunks.sqlite"),
    "milvus": (drop_milvus_keys, "milvus"),
    "toy": (lambda v: truncate(v / ROWS), ROWS),
}


@pytest.fixture(params=["faiss", "milvus", "toy"])
def store(request, monkeypatch, fake_embedder):
    if request.param == "milvus" and importlib.util.find_spec("pymilvus") is None:
        pytest.skip("the Milvus store needs pymilvus (pip install 'ragkit[milvus]')")
    monkeypatch.setitem(STORES, "toy", TOY)  # registering a store is this one line
    return request.param


def build(corpus, idx, store):
    return ingest([corpus], idx, IngestConfig(embed_model="fake-embedder", store=store))


def sources(idx):
    index = Index.open(idx)
    try:
        return sorted({c.source for c in index.chunks()}), len(index), index.describe()
    finally:
        index.close()


def test_ingest_then_search_finds_the_chunk_that_holds_the_answer(store, mini_corpus, tmp_path):
    s = build(mini_corpus, tmp_path / "idx", store)
    assert s.files_added == 4 and s.chunks > 0 and s.version_written
    index = Index.open(tmp_path / "idx")
    try:
        assert index.describe()["chunks"] == len(index) == s.chunks
        for mode in ("dense", "bm25", "hybrid"):
            hits = index.search("warranty of the Falcon X2 drone", k=2, mode=mode)
            assert hits and hits[0].rank == 1 and all(0.0 <= h.score <= 1.0 + 1e-6 for h in hits), mode
        assert index.search("电池保修多久", k=1, mode="bm25")[0].source == "zh/保修.md"
        hit = index.search("warranty months", k=1, mode="hybrid")[0]
        assert hit.text == (mini_corpus / hit.source).read_text(encoding="utf-8")[hit.start:hit.end]
        with pytest.raises(UsageError, match="unknown search mode"):
            index.search("warranty", k=1, mode="nonsense")
    finally:
        index.close()


def test_a_file_deleted_from_disk_leaves_the_index_on_the_next_ingest(store, mini_corpus, tmp_path):
    idx = tmp_path / "idx"
    build(mini_corpus, idx, store)
    (mini_corpus / "specs.txt").unlink()
    s = build(mini_corpus, idx, store)
    assert s.files_deleted == 1 and s.files_unchanged == 3 and s.chunks_embedded == 0
    names, n, described = sources(idx)
    assert names == ["warranty.md", "zh/保修.md", "zh/参数.txt"] and described["files"] == 3 and n == s.chunks


def test_an_index_reopens_with_the_same_chunks_and_hits(store, mini_corpus, tmp_path):
    idx = tmp_path / "idx"
    build(mini_corpus, idx, store)
    first = Index.open(idx)
    hits = [(h.chunk_id, h.score) for h in first.search("camera video frames", k=3)]
    chunks = sorted(c.chunk_id for c in first.chunks())
    first.close()
    again = Index.open(idx)
    try:
        assert sorted(c.chunk_id for c in again.chunks()) == chunks
        assert [(h.chunk_id, h.score) for h in again.search("camera video frames", k=3)] == hits
    finally:
        again.close()
    assert build(mini_corpus, idx, store).version_written is False  # nothing changed: no new version


def test_a_damaged_index_is_named_in_one_sentence(store, mini_corpus, tmp_path):
    idx = tmp_path / "idx"
    build(mini_corpus, idx, store)
    damage, what = DAMAGE[store]
    damage(read_current(idx))
    with pytest.raises(IndexDamaged, match=rf"index {idx} is damaged: .*{what}"):
        index = Index.open(idx)
        index.search("warranty", k=1, mode="bm25")
    (read_current(idx) / "manifest.json").write_text("{", encoding="utf-8")
    with pytest.raises(IndexDamaged, match=rf"index {idx} is damaged: manifest.json is not valid JSON"):
        Index.open(idx)


def test_an_unknown_store_is_refused_when_it_is_named(mini_corpus, tmp_path, fake_embedder):
    with pytest.raises(ValueError, match="store must be one of faiss, milvus"):
        IngestConfig(store="cassandra")
