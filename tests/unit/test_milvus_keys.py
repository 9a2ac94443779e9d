"""Row keys of the Milvus store (index/milvus/keys.py): they name exactly the live rows, so deletes go by key."""

import pytest

from ragkit.index import Index, IngestConfig, ingest
from ragkit.index.manifest import read_current
from ragkit.index.milvus import build as milvus_build
from ragkit.index.milvus.keys import KEYS, SOURCES, RowKeys

MILVUS = IngestConfig(embed_model="fake-embedder", store="milvus")


def test_row_keys_find_update_and_drop_by_source():
    keys = RowKeys().updated((), [("a.txt", 5), ("b.txt", 2), ("a.txt", 9), ("c.txt", 1)])
    assert sorted(keys.of(["a.txt"])) == [5, 9] and keys.of(["b.txt", "c.txt"]) == [2, 1]
    assert keys.of(["missing.txt"]) == []
    later = keys.updated(["a.txt", "missing.txt"], [("a.txt", 11), ("d.txt", 3)])
    assert later.of(["a.txt"]) == [11] and later.of(["d.txt"]) == [3] and len(later) == 4
    assert len(keys) == 4  # updated() returns a new RowKeys


def live_rows(index) -> tuple[dict[str, list[int]], int]:
    """{source: sorted keys} of the rows a reader sees, and how many rows the collection holds."""
    rows = index.client.query(index.collection, filter=index.filter, output_fields=["source"])
    by_source: dict[str, list[int]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(int(r["pk"]))
    total = index.client.query(index.collection, filter="", output_fields=["count(*)"])[0]["count(*)"]
    return {s: sorted(k) for s, k in by_source.items()}, total


def check_keys(idx):
    index = Index.open(idx)
    try:
        keys = RowKeys.load(index.version_dir)
        rows, total = live_rows(index)
        assert keys is not None and {s: sorted(keys.of([s])) for s in rows} == rows
        assert len(keys) == total == len(index)  # nothing but the live rows is left in the collection
    finally:
        index.close()


def test_row_keys_name_exactly_the_live_rows(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, MILVUS)
    check_keys(idx)
    (mini_corpus / "specs.txt").write_text("Falcon X2 flight time is now 41 minutes.", encoding="utf-8")
    (mini_corpus / "new.txt").write_text("The charging dock uses 19 volts.", encoding="utf-8")
    (mini_corpus / "zh" / "参数.txt").unlink()
    s = ingest([mini_corpus], idx, MILVUS)
    assert (s.files_added, s.files_changed, s.files_deleted) == (1, 1, 1)
    check_keys(idx)
    assert not (idx / milvus_build.PENDING).exists()


def test_a_version_without_row_keys_gets_them_from_milvus(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, MILVUS)
    for name in (KEYS, SOURCES):  # as a version written before keys were kept
        (read_current(idx) / name).unlink()
    (mini_corpus / "specs.txt").write_text("Falcon X2 flight time is now 41 minutes.", encoding="utf-8")
    assert ingest([mini_corpus], idx, MILVUS).files_changed == 1
    check_keys(idx)
    index = Index.open(idx)
    hits = index.search("flight time minutes", k=5, mode="bm25")
    assert "41 minutes" in hits[0].text and not any("38 minutes" in h.text for h in hits)
    index.close()


def test_an_ingest_stopped_after_its_swap_is_finished_by_the_next(mini_corpus, tmp_path, fake_embedder, monkeypatch):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, MILVUS)
    connect = milvus_build.connect

    def failing_deletes(*args, **kwargs):  # the new version goes live, then deleting the old rows fails
        client = connect(*args, **kwargs)
        client.delete = lambda *a, ids=None, **k: (_ for _ in ()).throw(RuntimeError("connection lost"))
        return client

    monkeypatch.setattr(milvus_build, "connect", failing_deletes)
    (mini_corpus / "specs.txt").write_text("Falcon X2 flight time is now 41 minutes.", encoding="utf-8")
    with pytest.raises(RuntimeError, match="connection lost"):
        ingest([mini_corpus], idx, MILVUS)
    monkeypatch.setattr(milvus_build, "connect", connect)
    assert (idx / milvus_build.PENDING).exists()
    index = Index.open(idx)
    hits = index.search("flight time minutes", k=5, mode="bm25")  # live, the old rows hidden
    assert "41 minutes" in hits[0].text and not any("38 minutes" in h.text for h in hits)
    assert live_rows(index)[1] > len(index)  # ... but still in the collection
    index.close()
    assert ingest([mini_corpus], idx, MILVUS).files_unchanged == 4  # nothing to add: it only cleans up
    check_keys(idx)
    assert not (idx / milvus_build.PENDING).exists()


def test_the_milvus_ingest_inserts_as_it_reads(mini_corpus, tmp_path, fake_embedder, monkeypatch):
    """Rows go to Milvus a batch at a time while files are still being read: the corpus is never held."""
    read, at_insert = [], []
    read_one = milvus_build.read_one
    monkeypatch.setattr(milvus_build, "read_one", lambda f, *a, **k: read.append(f) or read_one(f, *a, **k))
    connect = milvus_build.connect

    def spying(*args, **kwargs):
        client = connect(*args, **kwargs)
        insert = client.insert
        client.insert = lambda *a, **k: at_insert.append(len(read)) or insert(*a, **k)
        return client

    monkeypatch.setattr(milvus_build, "connect", spying)
    monkeypatch.setattr(milvus_build, "INSERT_BATCH", 1)
    s = ingest([mini_corpus], tmp_path / "idx", MILVUS)
    assert len(read) == 4 and len(at_insert) == s.chunks_embedded == s.chunks
    assert at_insert[0] < len(read)  # the first row went in before the last file was read
    check_keys(tmp_path / "idx")


def test_a_file_that_breaks_later_keeps_its_last_rows_on_milvus(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, MILVUS)
    (mini_corpus / "specs.txt").write_bytes(b"\x00\x01binary junk\x00")
    (mini_corpus / "new.txt").write_text("The charging dock uses 19 volts.", encoding="utf-8")
    s = ingest([mini_corpus], idx, MILVUS)
    assert len(s.skipped) == 1 and "kept its last indexed version" in s.skipped[0][1] and s.files_added == 1
    index = Index.open(idx)
    assert "38 minutes" in index.search("flight time minutes", k=1, mode="bm25")[0].text
    index.close()
    check_keys(idx)
