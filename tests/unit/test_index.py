"""Ingest and search on the fake embedder: incremental updates, refusals, the lock, crash safety."""

import fcntl
import json
import multiprocessing as mp
import os
import signal
import time

import pytest

from ragkit.errors import IndexIncompatible, IndexLocked, IndexMissing, UsageError
from ragkit.index import Index, IngestConfig, ingest
from ragkit.index.manifest import read_current

FAKE = IngestConfig(embed_model="fake-embedder")


def sources(index_dir):
    return sorted({c.source for c in Index.open(index_dir).chunks()})


def test_ingest_then_search_each_mode(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    summary = ingest([mini_corpus], idx, FAKE)
    assert summary.files_added == 4 and summary.chunks >= 4 and not summary.skipped
    index = Index.open(idx)
    for mode in ("bm25", "dense", "hybrid"):
        hits = index.search("warranty of the Falcon X2 drone", k=2, mode=mode)
        assert hits[0].source == "warranty.md", mode
        assert [h.rank for h in hits] == [1, 2]
    zh = index.search("电池保修多久", k=1, mode="hybrid")[0]
    assert zh.source == "zh/保修.md"
    assert 0.0 <= zh.score <= 1.0
    assert zh.text == (mini_corpus / "zh" / "保修.md").read_text(encoding="utf-8")[zh.start : zh.end]


def test_incremental_add_change_delete_reembeds_only_what_changed(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    first = len(fake_embedder.embedded)

    fake_embedder.embedded.clear()
    again = ingest([mini_corpus], idx, FAKE)
    assert again.files_unchanged == 4 and fake_embedder.embedded == []

    (mini_corpus / "new.txt").write_text("The charging dock uses 19 volts.", encoding="utf-8")
    (mini_corpus / "specs.txt").write_text("Falcon X2 flight time is now 41 minutes.", encoding="utf-8")
    (mini_corpus / "zh" / "参数.txt").unlink()
    s = ingest([mini_corpus], idx, FAKE)
    assert (s.files_added, s.files_changed, s.files_unchanged, s.files_deleted) == (1, 1, 2, 1)
    assert sorted(fake_embedder.embedded) == ["Falcon X2 flight time is now 41 minutes.", "The charging dock uses 19 volts."]
    assert first > 2
    assert sources(idx) == ["new.txt", "specs.txt", "warranty.md", "zh/保修.md"]
    hit = Index.open(idx).search("flight time minutes", k=1, mode="bm25")[0]
    assert "41 minutes" in hit.text


def test_second_folder_adds_without_dropping_the_first(mini_corpus, tmp_path, fake_embedder):
    other = tmp_path / "other"
    other.mkdir()
    (other / "faq.md").write_text("Propellers cost 9 dollars.", encoding="utf-8")
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    ingest([other], idx, FAKE)
    # The first root names its files bare; a later one by its label (sources.py).
    assert "other/faq.md" in sources(idx) and "warranty.md" in sources(idx)


def test_bad_files_are_skipped_and_reported_rest_is_indexed(mini_corpus, tmp_path, fake_embedder):
    (mini_corpus / "broken.pdf").write_bytes(b"%PDF-1.4 nonsense")
    (mini_corpus / "empty.txt").write_bytes(b"")
    s = ingest([mini_corpus], tmp_path / "idx", FAKE)
    reasons = dict((os.path.basename(p), r) for p, r in s.skipped)
    assert set(reasons) == {"broken.pdf", "empty.txt"}
    assert "PDF" in reasons["broken.pdf"] and "empty" in reasons["empty.txt"]
    assert s.files_added == 4


def test_file_that_breaks_later_keeps_its_last_good_version(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    (mini_corpus / "specs.txt").write_bytes(b"\x00\x01binary junk\x00")
    s = ingest([mini_corpus], idx, FAKE)
    assert len(s.skipped) == 1
    assert "specs.txt" in sources(idx)


def test_model_mismatch_is_refused(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    with pytest.raises(IndexIncompatible, match="fake-embedder"):
        ingest([mini_corpus], idx, IngestConfig(embed_model="all-minilm-l6-v2"))
    with pytest.raises(IndexIncompatible, match="built with embedding model 'fake-embedder'"):
        Index.open(idx, embed_model="all-minilm-l6-v2")


def test_chunking_change_is_refused(mini_corpus, tmp_path, fake_embedder):
    from ragkit.ingest.chunking import ChunkingConfig

    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    with pytest.raises(IndexIncompatible, match="chunked with size"):
        ingest([mini_corpus], idx, IngestConfig(embed_model="fake-embedder", chunking=ChunkingConfig(100, 10)))


def test_bad_input_messages(tmp_path, mini_corpus):
    with pytest.raises(IndexMissing, match="ragkit ingest"):
        Index.open(tmp_path / "nope")
    with pytest.raises(UsageError, match="no such file"):
        ingest([tmp_path / "missing"], tmp_path / "idx", FAKE)
    not_index = tmp_path / "photos"
    not_index.mkdir()
    (not_index / "cat.jpg").write_bytes(b"x")
    with pytest.raises(UsageError, match="not a ragkit index"):
        ingest([mini_corpus], not_index, FAKE)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no readable documents"):
        ingest([empty], tmp_path / "idx2", FAKE)
    with pytest.raises(UsageError, match="query is empty"):
        ingest([mini_corpus], tmp_path / "idx3", FAKE)
        Index.open(tmp_path / "idx3").search("  ")


def test_lock_refuses_a_second_writer_and_leaves_index_intact(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    before = read_current(idx)
    fd = os.open(idx / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another ingest holds the index
    try:
        with pytest.raises(IndexLocked, match="another ragkit ingest"):
            ingest([mini_corpus], idx, FAKE)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert read_current(idx) == before
    assert len(Index.open(idx).search("warranty", k=1, mode="bm25")) == 1


class _StallingEmbedder:
    """Signals that embedding started, then blocks until the test kills the process."""

    name = "fake-embedder"
    dim = 64

    def __init__(self, flag):
        self.flag = flag

    def count_tokens(self, text):
        return len(text.split())

    def embed(self, texts, on_batch=None):
        open(self.flag, "w").close()
        time.sleep(60)


def _child_ingest(corpus, idx, flag):
    ingest([corpus], idx, FAKE, embedder=_StallingEmbedder(flag))


def test_killed_ingest_leaves_the_old_index_usable(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    before = sources(idx)
    (mini_corpus / "added.txt").write_text("A brand new document about rotors.", encoding="utf-8")
    flag = tmp_path / "embedding-started"
    child = mp.get_context("fork").Process(target=_child_ingest, args=(mini_corpus, idx, str(flag)))
    child.start()
    deadline = time.time() + 30
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert flag.exists(), "child never reached the embedding step"
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert sources(idx) == before  # old version still live and readable
    s = ingest([mini_corpus], idx, FAKE)  # the dead writer's lock is gone with it
    assert s.files_added == 1 and "added.txt" in sources(idx)
    # The killed run left no manifest-less version behind; the retired one waits out its grace period.
    assert all((v / "manifest.json").is_file() for v in idx.glob("v-*"))
    assert len(list(idx.glob("v-*"))) == 2


def test_interrupt_while_writing_removes_the_partial_version(mini_corpus, tmp_path, fake_embedder, monkeypatch):
    import ragkit.index.versions as versions

    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    before = read_current(idx)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(versions, "swap", boom)
    (mini_corpus / "added.txt").write_text("rotors", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        ingest([mini_corpus], idx, FAKE)
    assert read_current(idx) == before
    assert [p.name for p in idx.glob("v-*")] == [before.name]


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_dense_indexes(mini_corpus, tmp_path, fake_embedder, kind):
    idx = tmp_path / kind
    ingest([mini_corpus], idx, IngestConfig(embed_model="fake-embedder", dense_index=kind))
    hits = Index.open(idx).search("Falcon X2 warranty 24 months", k=1, mode="dense")
    assert hits and hits[0].source == "warranty.md"


def test_a_single_query_searches_faiss_on_one_thread_and_puts_the_setting_back(mini_corpus, tmp_path, fake_embedder,
                                                                               monkeypatch):
    import faiss

    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    index = Index.open(idx)
    before = index.search("warranty of the Falcon X2 drone", k=3, mode="dense")
    faiss.omp_set_num_threads(2)
    seen = []
    search = faiss.IndexFlatIP.search

    def spy(self, *args, **kwargs):
        seen.append(faiss.omp_get_max_threads())
        return search(self, *args, **kwargs)

    monkeypatch.setattr(faiss.IndexFlatIP, "search", spy)
    hits = index.search("warranty of the Falcon X2 drone", k=3, mode="dense")
    assert seen == [1] and faiss.omp_get_max_threads() == 2  # one thread inside, the caller's outside
    assert [(h.chunk_id, h.score) for h in hits] == [(h.chunk_id, h.score) for h in before]
    index.close()


@pytest.mark.parametrize("store", ["faiss", "milvus"])
def test_an_unchanged_file_is_known_by_its_size_and_mtime_and_not_read(mini_corpus, tmp_path, fake_embedder,
                                                                       monkeypatch, store):
    from ragkit.index import reading

    an_hour_ago = time.time() - 3600
    for f in mini_corpus.rglob("*"):
        if f.is_file():
            os.utime(f, (an_hour_ago, an_hour_ago))
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, IngestConfig(embed_model="fake-embedder", store=store))
    manifest = read_current(idx) / "manifest.json"
    m = json.loads(manifest.read_text(encoding="utf-8"))
    assert all("mtime_ns" in info for info in m["files"].values())
    for info in m["files"].values():  # as an index written before mtimes were recorded
        del info["mtime_ns"]
    manifest.write_text(json.dumps(m, ensure_ascii=False), encoding="utf-8")
    hashed = []
    file_hash = reading.file_hash
    monkeypatch.setattr(reading, "file_hash", lambda path: hashed.append(path.name) or file_hash(path))
    (mini_corpus / "specs.txt").write_text("Falcon X2 flight time is now 41 minutes.", encoding="utf-8")
    assert ingest([mini_corpus], idx, FAKE).files_changed == 1 and len(hashed) == 4  # no mtimes: all hashed
    files = json.loads((read_current(idx) / "manifest.json").read_text(encoding="utf-8"))["files"]
    assert [s for s, info in files.items() if "mtime_ns" not in info] == ["specs.txt"]  # too young to trust
    hashed.clear()
    again = ingest([mini_corpus], idx, FAKE)  # written under 2 s ago: its mtime is not trusted yet
    assert again.files_unchanged == 4 and hashed == ["specs.txt"]
    if store == "faiss":
        hashed.clear()
        ingest([mini_corpus], idx, IngestConfig(embed_model="fake-embedder", compact=True))
        assert sorted(hashed) == ["specs.txt", "warranty.md", "保修.md", "参数.txt"]  # --compact reads every file
