"""Defect 1 of issue 14: two inputs with the same relative path lost data, then crashed for good."""

import json
import sqlite3

import numpy as np
import pytest

from ragkit.errors import RagkitError
from ragkit.index import Index, IngestConfig, ingest
from ragkit.index.manifest import read_current

FAKE = IngestConfig(embed_model="fake-embedder")


@pytest.fixture
def ab(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir(), b.mkdir()
    (a / "readme.md").write_text("X XRAYALPHA", encoding="utf-8")
    (a / "onlyx.md").write_text("x", encoding="utf-8")
    (b / "readme.md").write_text("Y YANKEEBRAVO", encoding="utf-8")
    return a, b


def found(idx, word):
    return [h.source for h in Index.open(idx).search(word, k=5, mode="bm25")]


def test_second_root_with_the_same_relative_path_keeps_the_first(ab, tmp_path, fake_embedder):
    a, b = ab
    idx = tmp_path / "I"
    ingest([a], idx, FAKE)
    s = ingest([b], idx, FAKE)
    assert (s.files_added, s.files_changed, s.files_deleted) == (1, 0, 0)
    assert found(idx, "XRAYALPHA") == ["readme.md"] and found(idx, "YANKEEBRAVO") == ["B/readme.md"]
    assert sorted(Index.open(idx).manifest["files"]) == ["B/readme.md", "onlyx.md", "readme.md"]


def test_two_roots_in_one_ingest_twice_does_not_crash(ab, tmp_path, fake_embedder):
    a, b = ab
    idx = tmp_path / "I2"
    ingest([a, b], idx, FAKE)
    s = ingest([a, b], idx, FAKE)  # was: sqlite3.IntegrityError, forever after
    assert s.files_unchanged == 3 and not s.version_written
    assert found(idx, "XRAYALPHA") == ["readme.md"] and found(idx, "YANKEEBRAVO") == ["B/readme.md"]


def test_repeated_argument_indexes_each_file_once(ab, tmp_path, fake_embedder):
    a, _ = ab
    idx = tmp_path / "I3"
    s = ingest([a, a, a / "readme.md"], idx, FAKE)
    assert s.files_added == 2 and len(Index.open(idx)) == 2


def test_roots_with_the_same_folder_name_get_distinct_labels(tmp_path, fake_embedder):
    for parent in ("x", "y", "z"):
        (tmp_path / parent / "docs").mkdir(parents=True)
        (tmp_path / parent / "docs" / "a.md").write_text(f"doc from {parent}", encoding="utf-8")
    idx = tmp_path / "idx"
    ingest([tmp_path / p / "docs" for p in "xyz"], idx, FAKE)
    assert sorted(Index.open(idx).manifest["files"]) == ["a.md", "docs-2/a.md", "docs/a.md"]


def test_only_files_gone_from_a_walked_folder_are_deleted_and_sync_drops_the_rest(ab, tmp_path, fake_embedder):
    a, b = ab
    idx = tmp_path / "I"
    ingest([a], idx, FAKE)
    ingest([b], idx, FAKE)
    (a / "onlyx.md").unlink()
    s = ingest([b], idx, FAKE)  # A was not walked: its deleted file stays until A is ingested
    assert s.files_deleted == 0 and "onlyx.md" in Index.open(idx).manifest["files"]
    s = ingest([a], idx, FAKE)
    assert s.files_deleted == 1 and sorted(Index.open(idx).manifest["files"]) == ["B/readme.md", "readme.md"]
    s = ingest([b], idx, FAKE, sync=True)
    assert s.files_deleted == 1 and sorted(Index.open(idx).manifest["files"]) == ["B/readme.md"]


def test_single_root_keeps_bench_style_names(tmp_path, fake_embedder):
    corpus = tmp_path / "corpus"
    (corpus / "en").mkdir(parents=True)
    (corpus / "en" / "m3-release-notes-2.1.md").write_text("Release notes", encoding="utf-8")
    idx = tmp_path / "idx"
    ingest([corpus], idx, FAKE)
    ingest([corpus / "en"], idx, FAKE)  # a folder inside the root: the same files, the same names
    assert list(Index.open(idx).manifest["files"]) == ["en/m3-release-notes-2.1.md"]


def test_a_constraint_error_leaves_the_index_usable(ab, tmp_path, fake_embedder, monkeypatch):
    import ragkit.index.reading as build  # chunking happens as a file is read

    a, _ = ab
    idx = tmp_path / "I"
    ingest([a], idx, FAKE)
    before = read_current(idx)
    (a / "new.md").write_text("new words", encoding="utf-8")
    (a / "onlyx.md").write_text("x changed", encoding="utf-8")
    real = build.chunk_documents
    monkeypatch.setattr(build, "chunk_documents",
                        lambda *a, **k: [c.__class__(**{**c.__dict__, "chunk_id": "same-0-0"}) for c in real(*a, **k)])
    with pytest.raises(RagkitError, match="stored twice"):
        ingest([a], idx, FAKE)
    monkeypatch.undo()
    assert read_current(idx) == before and found(idx, "XRAYALPHA") == ["readme.md"]
    assert ingest([a], idx, FAKE).files_added == 1 and found(idx, "words") == ["new.md"]


def test_an_index_broken_by_the_old_name_clash_is_repaired(ab, tmp_path, fake_embedder):
    """Old ragkit stored A's and B's readme chunks under one name; the next ingest always failed."""
    a, b = ab
    idx = tmp_path / "I2"
    ingest([b], idx, FAKE)
    v = read_current(idx)
    db = sqlite3.connect(v / "chunks.sqlite")  # plant A's readme chunk under B's name, as the bug did
    db.execute("INSERT INTO chunks VALUES (1, 'aaaaaaaaaaaa-0-0', 'readme.md', 'X XRAYALPHA', 0, 11, NULL, NULL, '{}', "
               "'x xrayalpha')")
    db.commit()
    db.close()
    np.save(v / "embeddings.npy", np.vstack([np.load(v / "embeddings.npy"), np.zeros((1, 64), np.float32)]))
    m = json.loads((v / "manifest.json").read_text())
    m["n_chunks"] = 2
    m["artifacts"].update({"chunks.sqlite": (v / "chunks.sqlite").stat().st_size,
                           "embeddings.npy": (v / "embeddings.npy").stat().st_size})
    (v / "manifest.json").write_text(json.dumps(m))
    s = ingest([b, a], idx, FAKE)
    assert s.version_written
    assert found(idx, "XRAYALPHA") == ["A/readme.md"] and found(idx, "YANKEEBRAVO") == ["readme.md"]
