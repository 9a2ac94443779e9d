"""Defects 5 and 7 of issue 14: a damaged or crafted index gives one sentence; nothing is followed elsewhere."""

import json
import shutil

import pytest

from ragkit.errors import IndexDamaged, IndexIncompatible, RagkitError
from ragkit.index import Index, IngestConfig, ingest
from ragkit.index.manifest import read_current

FAKE = IngestConfig(embed_model="fake-embedder")


@pytest.fixture
def idx(mini_corpus, tmp_path, fake_embedder):
    d = tmp_path / "idx"
    ingest([mini_corpus], d, FAKE)
    return d


def search_all(d):
    index = Index.open(d)
    for mode in ("bm25", "dense", "hybrid"):
        index.search("warranty", k=2, mode=mode)


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("name", ["dense.faiss", "chunks.sqlite", "embeddings.npy", "bm25/params.index.json",
                                  "bm25/vocab.index.json"])
def test_truncated_or_missing_artifact_is_one_sentence(idx, name):
    f = read_current(idx) / name
    truncate(f)
    with pytest.raises(IndexDamaged, match=rf"is damaged: {name} is truncated"):
        search_all(idx)
    f.unlink()
    with pytest.raises(IndexDamaged, match=rf"is damaged: {name} is missing"):
        search_all(idx)


def test_damaged_artifact_of_the_same_size_is_one_sentence(idx):
    f = read_current(idx) / "dense.faiss"
    f.write_bytes(b"\0" * f.stat().st_size)
    with pytest.raises(IndexDamaged, match="dense.faiss is unreadable"):
        search_all(idx)


def test_reingest_rebuilds_a_damaged_dense_index(idx, mini_corpus):
    truncate(read_current(idx) / "dense.faiss")
    s = ingest([mini_corpus], idx, FAKE)
    assert s.version_written and s.chunks_embedded == 0
    search_all(idx)


@pytest.mark.parametrize("edit,match", [
    (lambda m: "{not json", "not valid JSON"),
    (lambda m: [1, 2], "not a JSON object"),
    (lambda m: {k: v for k, v in m.items() if k != "embedding"}, "no 'embedding'"),
    (lambda m: {**m, "fusion": {"evil": 1}}, "fusion weights"),
    (lambda m: {**m, "fusion": {"dense": 7}}, "fusion weights"),
    (lambda m: {**m, "n_chunks": "many"}, "chunk count"),
    (lambda m: {**m, "dense_index": "../../x"}, "dense index"),
    (lambda m: {**m, "embedding": {**m["embedding"], "dim": -1}}, "dimension"),
    (lambda m: {**m, "files": {"a": 3}}, "entry for 'a'"),
])
def test_invalid_manifest_is_one_sentence(idx, edit, match):
    f = read_current(idx) / "manifest.json"
    m = edit(json.loads(f.read_text()))
    f.write_text(m if isinstance(m, str) else json.dumps(m))
    with pytest.raises(IndexDamaged, match=match):
        Index.open(idx)


def test_manifest_cannot_name_any_path_as_its_model(idx):
    f = read_current(idx) / "manifest.json"
    m = json.loads(f.read_text())
    m["embedding"]["model"] = "/etc"
    f.write_text(json.dumps(m))
    with pytest.raises(IndexIncompatible, match="neither bundled nor recorded"):
        Index.open(idx)
    m["embedding"].update(path="/etc", fingerprint="0" * 64)
    f.write_text(json.dumps(m))
    with pytest.raises(RagkitError, match="not a model directory"):
        Index.open(idx)


@pytest.mark.parametrize("pointer", ["/etc", "../other/v-1", "v-1/../../other", "", "v-nope"])
def test_current_is_confined_to_the_index(idx, tmp_path, pointer):
    other = tmp_path / "other"
    shutil.copytree(idx, other)
    (idx / "CURRENT").write_text(pointer)
    with pytest.raises(IndexDamaged, match="CURRENT"):
        Index.open(idx)
    with pytest.raises(IndexDamaged, match="CURRENT"):  # ingest refuses too, and deletes nothing
        ingest([tmp_path / "corpus"], idx, FAKE)
    assert len(list(idx.glob("v-*"))) == 1


def test_current_through_a_symlinked_version_is_refused(idx, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(idx, other)
    (idx / "v-evil").symlink_to(read_current(other))
    (idx / "CURRENT").write_text("v-evil")
    with pytest.raises(IndexDamaged, match="CURRENT"):
        Index.open(idx)


def test_a_planted_lock_link_is_one_sentence(idx, mini_corpus, tmp_path):
    (idx / ".lock").unlink()
    (idx / ".lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(IndexDamaged, match=".lock cannot be opened"):
        ingest([mini_corpus], idx, FAKE)
    assert not (tmp_path / "elsewhere").exists()


def _st_dir(tmp_path):
    d = tmp_path / "st-model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "weights.bin").write_bytes(b"w" * 100)
    return d


def test_local_embedder_is_recorded_by_absolute_path_and_fingerprint(mini_corpus, tmp_path, fake_embedder,
                                                                       monkeypatch):
    import ragkit.embed as embed

    model = _st_dir(tmp_path)
    loaded = []
    monkeypatch.setattr(embed, "load_embedder", lambda src, **k: loaded.append(src) or fake_embedder)
    monkeypatch.chdir(tmp_path)
    ingest([mini_corpus], tmp_path / "idx", IngestConfig(embed_model="st-model"))  # relative, as typed
    emb = json.loads((read_current(tmp_path / "idx") / "manifest.json").read_text())["embedding"]
    assert emb["path"] == str(model.resolve()) and len(emb["fingerprint"]) == 64
    monkeypatch.chdir(mini_corpus)  # another directory: a './st-model' here must not matter
    Index.open(tmp_path / "idx").search("warranty", k=1, mode="dense")
    assert loaded[-1] == str(model.resolve())
    (model / "weights.bin").write_bytes(b"x" * 100)
    with pytest.raises(IndexIncompatible, match="changed since"):
        Index.open(tmp_path / "idx")
    with pytest.raises(IndexIncompatible, match="changed since"):  # nor are new chunks embedded with it
        ingest([mini_corpus], tmp_path / "idx", IngestConfig(embed_model=str(model)))
    shutil.rmtree(model)
    with pytest.raises(IndexIncompatible, match="no longer exists"):
        Index.open(tmp_path / "idx")
