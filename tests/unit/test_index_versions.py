"""Defect 2 of issue 14: a re-ingest must not break searches in flight or a long-lived Index."""

import multiprocessing as mp
import os
import threading
import time

from ragkit.index import Index, IngestConfig, ingest, versions
from ragkit.index.manifest import read_current

FAKE = IngestConfig(embed_model="fake-embedder")


def test_open_index_switches_to_a_new_version_between_queries(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    index = Index.open(idx)
    first = index.version
    assert first == read_current(idx).name
    assert "38 minutes" in index.search("flight time minutes", k=1, mode="bm25")[0].text
    (mini_corpus / "specs.txt").write_text("Falcon X2 flight time is now 41 minutes.", encoding="utf-8")
    s = ingest([mini_corpus], idx, FAKE)
    assert s.version_written and s.version != first
    assert "41 minutes" in index.search("flight time minutes", k=1, mode="bm25")[0].text  # same object
    assert index.version == s.version and index.describe()["version"] == s.version
    assert (idx / first).is_dir()  # retired, not deleted: other readers may still be on it


def test_unchanged_reingest_writes_no_new_version(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    before, stamp = read_current(idx), os.stat(idx / "CURRENT").st_ino
    again = ingest([mini_corpus], idx, FAKE)
    assert not again.version_written and again.version == before.name
    assert os.stat(idx / "CURRENT").st_ino == stamp and sorted(p.name for p in idx.glob("v-*")) == [before.name]


class _Gate:
    """A fake embedder whose first call blocks until released: a query held mid-flight."""

    name, dim = "fake-embedder", 64

    def __init__(self, inner):
        self.inner, self.entered, self.release = inner, threading.Event(), threading.Event()

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def embed(self, texts, on_batch=None):
        self.entered.set()
        self.release.wait(30)
        return self.inner.embed(texts, on_batch)


def test_query_in_flight_keeps_its_version_while_ingest_reaps(mini_corpus, tmp_path, fake_embedder, monkeypatch):
    monkeypatch.setattr(versions, "REAP_GRACE_S", 0.0)
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    old = read_current(idx)
    gate = _Gate(fake_embedder)
    index = Index.open(idx, embedder=gate)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("hits", index.search("warranty months", k=2)))
    t.start()
    assert gate.entered.wait(10)  # the hybrid query has read BM25 of the old version and waits
    (mini_corpus / "warranty.md").write_text("The warranty is now 36 months.", encoding="utf-8")
    ingest([mini_corpus], idx, FAKE)
    ingest([mini_corpus / "specs.txt"], idx, FAKE)  # a second ingest reaps what it can: not the leased one
    assert old.is_dir()
    gate.release.set()
    t.join(10)
    assert out["hits"] and "24 months" in out["hits"][0].text  # answered wholly from the old version
    assert "36 months" in index.search("warranty months", k=1)[0].text
    (mini_corpus / "new.txt").write_text("rotors", encoding="utf-8")
    ingest([mini_corpus], idx, FAKE)
    assert not old.exists()  # no reader left on it: reaped


def _hold(idx, ready, stop):
    index = Index.open(idx)
    index.search("warranty", k=1, mode="bm25")
    open(ready, "w").close()
    while not os.path.exists(stop):
        time.sleep(0.02)


def test_a_reader_in_another_process_keeps_its_version(mini_corpus, tmp_path, fake_embedder, monkeypatch):
    monkeypatch.setattr(versions, "REAP_GRACE_S", 0.0)
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    old = read_current(idx)
    ready, stop = tmp_path / "ready", tmp_path / "stop"
    child = mp.get_context("fork").Process(target=_hold, args=(idx, str(ready), str(stop)))
    child.start()
    try:
        deadline = time.time() + 20
        while not ready.exists() and time.time() < deadline:
            time.sleep(0.02)
        for i in range(2):
            (mini_corpus / "new.txt").write_text(f"rotors {i}", encoding="utf-8")
            ingest([mini_corpus], idx, FAKE)
        assert old.is_dir()
    finally:
        stop.touch()
        child.join(10)
    (mini_corpus / "new.txt").write_text("rotors again", encoding="utf-8")
    ingest([mini_corpus], idx, FAKE)
    assert not old.exists() and len(list(idx.glob("v-*"))) == 1
