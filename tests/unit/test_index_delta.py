"""The delta segment (index/delta.py, index/segments.py): fast path against plain path.

An incremental ingest of a few files writes base links + delta + tombstones; its search results
(ids, order, scores) must equal those of a full rebuild of the same final corpus, for every mode
and both languages, after a change, an addition, a deletion and a change back.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest

from ragkit.errors import IndexDamaged, IndexIncompatible
from ragkit.index import Index, IngestConfig, ingest, versions
from ragkit.index.manifest import read_current
from ragkit.ingest.chunking import ChunkingConfig

SMALL = ChunkingConfig(chunk_size=24, chunk_overlap=4)
DELTA = IngestConfig(embed_model="fake-embedder", chunking=SMALL, delta_fraction=1.0)
PLAIN = IngestConfig(embed_model="fake-embedder", chunking=SMALL)
QUERIES = ["Falcon X2 warranty months battery", "flight time minutes wind", "service centre receipt claims",
           "camera video frames", "rotor blades replacement", "猎鹰 无人机 保修期", "续航时间 分钟",
           "服务中心 发票", "相机 视频", "螺旋桨 更换"]

EN = [
    "The Falcon X2 drone has a warranty of 24 months. Batteries are covered for 12 months. Claims go to the "
    "service centre in Brightwater with the receipt. Water damage is not covered by the warranty.",
    "Falcon X2 specifications. Flight time is 38 minutes. Maximum wind resistance is level 5. The camera "
    "records 4K video at 60 frames per second. The gimbal has three axes.",
    "Rotor blades wear out. Replace the rotor blades every 200 flights or after any crash. Spare blades "
    "come in packs of four. Use the supplied wrench, never pliers, to fit the blades.",
    "Firmware updates arrive monthly. Connect the drone to the app over Wi-Fi and keep the battery above "
    "half charge. An update takes ten minutes; do not switch the drone off while it runs.",
    "Storing the drone: keep batteries at 60 percent charge in a cool dry place. Check them every three "
    "months. A swollen battery must never be charged again; bring it to the service centre.",
    "Flying in rain is not allowed. Wind above level 5 makes the drone drift. The return home function "
    "starts when the battery falls under 15 percent or the signal is lost for ten seconds.",
]
ZH = [
    "猎鹰 X2 无人机整机保修期为二十四个月。电池保修十二个月。维修请联系明水市服务中心，并携带购机发票。进水损坏不在保修范围内。",
    "猎鹰 X2 技术参数。续航时间为三十八分钟。最大抗风等级为五级。相机可以每秒六十帧录制四K视频。云台为三轴。",
    "螺旋桨会磨损。每飞行两百次或任何撞击之后请更换螺旋桨。备用螺旋桨四个一包。安装时请使用随附的扳手。",
    "固件每月更新一次。请通过无线网络连接应用，并保持电池电量在一半以上。更新需要十分钟，期间请勿关机。",
]


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    (root / "zh").mkdir(parents=True)
    for i, text in enumerate(EN):
        (root / f"en{i}.txt").write_text(text + "\n", encoding="utf-8")
    for i, text in enumerate(ZH):
        (root / "zh" / f"zh{i}.txt").write_text(text + "\n", encoding="utf-8")
    return root


def results(idx, mode: str, k: int = 8) -> list[list[tuple[str, float]]]:
    index = Index.open(idx)
    try:
        return [[(h.chunk_id, h.score) for h in index.search(q, k=k, mode=mode)] for q in QUERIES]
    finally:
        index.close()


def assert_same(got, want, tol: float = 1e-4) -> None:
    """Equal ids, order and scores, except that chunks with tied scores may come in either order
    (and a tie at the k-th place may be cut either way)."""
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w)
        assert np.allclose([s for _, s in g], [s for _, s in w], atol=tol), (g, w)
        i = 0
        while i < len(w):
            j = i
            while j < len(w) and abs(w[j][1] - w[i][1]) <= tol:
                j += 1
            if j < len(w):  # a tie group wholly inside the top k: the same chunks
                assert {c for c, _ in g[i:j]} == {c for c, _ in w[i:j]}, (g, w)
            i = j


def rebuilt(corpus, tmp_path, name: str):
    """A full rebuild of the corpus as it is now, in a fresh index directory."""
    idx = tmp_path / name
    ingest([corpus], idx, PLAIN)
    return idx


def delta_of(idx) -> dict | None:
    return json.loads((read_current(idx) / "manifest.json").read_text()).get("delta")


def check_equal(idx, full) -> None:
    for mode in ("dense", "bm25", "hybrid"):
        assert_same(results(idx, mode), results(full, mode))
    a, b = Index.open(idx), Index.open(full)
    assert len(a) == len(b)
    assert sorted(c.chunk_id for c in a.chunks()) == sorted(c.chunk_id for c in b.chunks())
    a.close()
    b.close()


def test_delta_search_equals_a_full_rebuild(corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([corpus], idx, DELTA)
    assert delta_of(idx) is None
    (corpus / "en1.txt").write_text(EN[1].replace("38 minutes", "41 minutes") + " Rotor blades last longer now.",
                                    encoding="utf-8")
    (corpus / "zh" / "zh1.txt").write_text(ZH[1].replace("三十八", "四十一") + "螺旋桨更耐用。", encoding="utf-8")
    s = ingest([corpus], idx, DELTA)
    d = delta_of(idx)
    assert s.files_changed == 2 and d is not None and d["files"] == 2 and d["tombstones"] > 0
    check_equal(idx, rebuilt(corpus, tmp_path, "full1"))
    # an added file, a deleted file and the delta carried over: still one delta over the same base
    (corpus / "en9.txt").write_text("Propeller guards protect the rotor blades in the first flights.", encoding="utf-8")
    (corpus / "en3.txt").unlink()
    s = ingest([corpus], idx, DELTA)
    d = delta_of(idx)
    assert s.files_added == 1 and s.files_deleted == 1 and d["files"] == 3
    check_equal(idx, rebuilt(corpus, tmp_path, "full2"))
    assert not any("Firmware updates" in c.text for c in Index.open(idx).chunks())
    # a file changed back to what the base holds: its base rows stay tombstoned, the delta serves it
    (corpus / "en1.txt").write_text(EN[1] + "\n", encoding="utf-8")
    ingest([corpus], idx, DELTA)
    check_equal(idx, rebuilt(corpus, tmp_path, "full3"))


def test_delta_after_deletions_only(corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([corpus], idx, DELTA)
    (corpus / "en2.txt").unlink()
    (corpus / "zh" / "zh2.txt").unlink()
    s = ingest([corpus], idx, DELTA)
    assert s.files_deleted == 2 and delta_of(idx)["chunks"] == 0 and s.chunks_embedded == 0
    check_equal(idx, rebuilt(corpus, tmp_path, "full"))
    assert not any(h.source == "en2.txt" for h in Index.open(idx).search("rotor blades", k=20, mode="bm25"))


def test_delta_embeds_only_the_changed_file_and_leaves_the_base_files_alone(corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([corpus], idx, DELTA)
    base = read_current(idx)
    names = ["chunks.sqlite", "embeddings.npy", "dense.faiss"] + [f"bm25/{p.name}" for p in (base / "bm25").iterdir()]
    before = {n: (os.stat(base / n).st_ino, os.stat(base / n).st_mtime_ns) for n in names}
    fake_embedder.embedded.clear()
    (corpus / "en4.txt").write_text("Storing the drone: keep batteries at half charge.", encoding="utf-8")
    s = ingest([corpus], idx, DELTA)
    assert fake_embedder.embedded == ["Storing the drone: keep batteries at half charge."]
    assert s.chunks_embedded == 1
    new = read_current(idx)
    assert new != base
    assert {n: (os.stat(new / n).st_ino, os.stat(new / n).st_mtime_ns) for n in names} == before  # hard links
    fake_embedder.embedded.clear()
    (corpus / "en5.txt").write_text("Flying in rain is not allowed.", encoding="utf-8")
    ingest([corpus], idx, DELTA)  # the earlier delta's chunk is carried over with its vector, not re-embedded
    assert fake_embedder.embedded == ["Flying in rain is not allowed."]
    assert {n: (os.stat(read_current(idx) / n).st_ino, os.stat(read_current(idx) / n).st_mtime_ns)
            for n in names} == before


def test_compaction_by_flag_and_by_size(corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([corpus], idx, DELTA)
    (corpus / "en0.txt").write_text("The warranty is now 36 months.", encoding="utf-8")
    ingest([corpus], idx, DELTA)
    assert delta_of(idx) is not None
    describe = Index.open(idx).describe()
    assert describe["delta"]["files"] == 1 and describe["chunks"] == len(Index.open(idx))
    s = ingest([corpus], idx, IngestConfig(embed_model="fake-embedder", chunking=SMALL, compact=True))
    assert s.version_written and delta_of(idx) is None and s.chunks_embedded == 0
    check_equal(idx, rebuilt(corpus, tmp_path, "full"))
    # the default 10%: one small file of 24 chunks is within it, three files' chunks are not
    (corpus / "en0.txt").write_text("The warranty is now 48 months.", encoding="utf-8")
    ingest([corpus], idx, PLAIN)
    assert delta_of(idx)["chunks"] == 1
    for i in (1, 2):
        (corpus / f"en{i}.txt").write_text(EN[i] + " Revised.", encoding="utf-8")
    ingest([corpus], idx, PLAIN)
    assert delta_of(idx) is None


def test_a_reader_keeps_its_version_and_a_failed_delta_leaves_the_old_one(corpus, tmp_path, fake_embedder,
                                                                         monkeypatch):

    monkeypatch.setattr(versions, "REAP_GRACE_S", 0.0)
    idx = tmp_path / "idx"
    ingest([corpus], idx, DELTA)
    old = Index.open(idx, auto_refresh=False)
    (corpus / "en1.txt").write_text("Flight time is 45 minutes.", encoding="utf-8")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(versions, "swap", boom)
    with pytest.raises(KeyboardInterrupt):
        ingest([corpus], idx, DELTA)
    assert read_current(idx).name == old.version and len(list(idx.glob("v-*"))) == 1
    monkeypatch.undo()
    monkeypatch.setattr(versions, "REAP_GRACE_S", 0.0)
    ingest([corpus], idx, DELTA)
    assert delta_of(idx) is not None
    assert "38 minutes" in old.search("flight time minutes", k=1, mode="bm25")[0].text  # its lease held
    assert (idx / old.version).is_dir()
    assert "45 minutes" in Index.open(idx).search("flight time minutes", k=1, mode="bm25")[0].text
    old.close()
    (corpus / "en2.txt").write_text("Rotor blades: replace yearly.", encoding="utf-8")
    ingest([corpus], idx, DELTA)
    assert not (idx / old.version).exists()  # reaped; the live version's base links still hold the data
    check_equal(idx, rebuilt(corpus, tmp_path, "full"))


def test_a_damaged_delta_is_one_sentence(corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([corpus], idx, DELTA)
    (corpus / "en0.txt").write_text("The warranty is now 36 months.", encoding="utf-8")
    ingest([corpus], idx, DELTA)
    tomb = read_current(idx) / "delta" / "tombstones.npy"
    tomb.write_bytes(tomb.read_bytes()[:-8])
    with pytest.raises(IndexDamaged, match="tombstones.npy is truncated"):
        Index.open(idx)


def test_model_mismatch_is_refused_on_a_delta_index(corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([corpus], idx, DELTA)
    (corpus / "en0.txt").write_text("The warranty is now 36 months.", encoding="utf-8")
    ingest([corpus], idx, DELTA)
    with pytest.raises(IndexIncompatible, match="fake-embedder"):
        ingest([corpus], idx, IngestConfig(embed_model="all-minilm-l6-v2", chunking=SMALL, delta_fraction=1.0))
    with pytest.raises(IndexIncompatible):
        Index.open(idx, embed_model="all-minilm-l6-v2")


class _Stall:
    """A fake embedder that marks a flag and then hangs: the parent kills the ingest mid-delta."""

    name, dim = "fake-embedder", 64

    def __init__(self, flag: str):
        from ragkit.embed import load_embedder

        self.flag, self.inner = flag, load_embedder("fake-embedder")  # the one tests/conftest.py registers

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def embed(self, texts, on_batch=None):
        open(self.flag, "w").close()
        time.sleep(60)


def _child(corpus, idx, flag):
    ingest([corpus], idx, DELTA, embedder=_Stall(flag))


def test_a_killed_delta_ingest_leaves_the_old_version_answering(corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([corpus], idx, DELTA)
    (corpus / "en0.txt").write_text("The warranty is now 36 months.", encoding="utf-8")
    ingest([corpus], idx, DELTA)
    live = read_current(idx)
    reader = Index.open(idx)  # auto-refresh: it will move to the version the resumed ingest writes
    (corpus / "en1.txt").write_text("Flight time is 45 minutes.", encoding="utf-8")
    flag = tmp_path / "embedding"
    child = mp.get_context("fork").Process(target=_child, args=(corpus, idx, str(flag)))
    child.start()
    deadline = time.time() + 30
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert flag.exists()
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert read_current(idx) == live
    assert "38 minutes" in reader.search("flight time minutes", k=1, mode="bm25")[0].text
    s = ingest([corpus], idx, DELTA)
    assert s.version_written and delta_of(idx)["files"] == 2
    assert "45 minutes" in reader.search("flight time minutes", k=1, mode="bm25")[0].text
    check_equal(idx, rebuilt(corpus, tmp_path, "full"))


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_delta_over_an_approximate_base(corpus, tmp_path, fake_embedder, kind):
    cfg = IngestConfig(embed_model="fake-embedder", chunking=SMALL, delta_fraction=1.0, dense_index=kind)
    idx = tmp_path / "idx"
    ingest([corpus], idx, cfg)
    (corpus / "en1.txt").write_text("Flight time is 45 minutes.", encoding="utf-8")
    (corpus / "en2.txt").unlink()
    ingest([corpus], idx, cfg)
    assert delta_of(idx)["tombstones"] > 0
    full = tmp_path / "full"
    ingest([corpus], full, IngestConfig(embed_model="fake-embedder", chunking=SMALL, dense_index=kind))
    for mode in ("dense", "hybrid"):  # 25 chunks: HNSW's search with efSearch 64 is exhaustive
        assert_same(results(idx, mode), results(full, mode))


@pytest.mark.parametrize("edit", [
    lambda d: {**d, "chunks": d["chunks"] + 1},
    lambda d: {**d, "tombstones": -1},
    lambda d: "many",
])
def test_a_crafted_delta_object_is_one_sentence(corpus, tmp_path, fake_embedder, edit):
    idx = tmp_path / "idx"
    ingest([corpus], idx, DELTA)
    (corpus / "en0.txt").write_text("The warranty is now 36 months.", encoding="utf-8")
    ingest([corpus], idx, DELTA)
    f = read_current(idx) / "manifest.json"
    m = json.loads(f.read_text())
    f.write_text(json.dumps({**m, "delta": edit(m["delta"])}))
    with pytest.raises(IndexDamaged, match="invalid 'delta' object"):
        Index.open(idx)


def test_cli_reports_the_delta_and_compacts(corpus, tmp_path, fake_embedder):
    from click.testing import CliRunner

    from ragkit.cli import main

    args = ["ingest", str(corpus), "--index", str(tmp_path / "i"), "--embed-model", "fake-embedder",
            "--chunk-size", "24", "--chunk-overlap", "4"]
    assert CliRunner().invoke(main, args).exit_code == 0
    (corpus / "en0.txt").write_text("The warranty is now 36 months.", encoding="utf-8")
    assert CliRunner().invoke(main, args).exit_code == 0  # 1 new + 2 replaced rows: over 10% of 24, rebuilt
    assert delta_of(tmp_path / "i") is None
    (corpus / "en0.txt").write_text("The warranty is now 48 months.", encoding="utf-8")
    r = CliRunner().invoke(main, args)  # 1 + 1: within it
    assert r.exit_code == 0 and "delta segment: 1 chunks from 1 files" in r.output
    r = CliRunner().invoke(main, args + ["--compact", "--json"])
    out = json.loads(r.output)
    assert r.exit_code == 0 and out["version_written"] and out["delta"] is None and out["chunks_embedded"] == 0
    assert delta_of(tmp_path / "i") is None


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_delta_of_an_added_file_only(corpus, tmp_path, fake_embedder, kind):
    cfg = IngestConfig(embed_model="fake-embedder", chunking=SMALL, delta_fraction=1.0, dense_index=kind)
    idx = tmp_path / "idx"
    ingest([corpus], idx, cfg)
    (corpus / "zh" / "zh9.txt").write_text("螺旋桨保护罩在首次飞行时保护螺旋桨。", encoding="utf-8")
    ingest([corpus], idx, cfg)
    assert delta_of(idx)["tombstones"] == 0 and delta_of(idx)["chunks"] == 1
    full = tmp_path / "full"
    ingest([corpus], full, IngestConfig(embed_model="fake-embedder", chunking=SMALL, dense_index=kind))
    for mode in ("dense", "bm25", "hybrid"):
        assert_same(results(idx, mode), results(full, mode))


def test_a_reingest_without_dense_index_keeps_the_index_type_and_writes_a_delta(corpus, tmp_path, fake_embedder):
    """Re-ingesting an HNSW index without naming --dense-index keeps HNSW (it used to rebuild the
    whole index as flat) and takes the delta path; naming another type rebuilds as that type."""
    idx = tmp_path / "idx"
    ingest([corpus], idx, IngestConfig(embed_model="fake-embedder", chunking=SMALL, dense_index="hnsw",
                                       delta_fraction=1.0))
    (corpus / "en1.txt").write_text("Flight time is 45 minutes.", encoding="utf-8")
    ingest([corpus], idx, IngestConfig(embed_model="fake-embedder", chunking=SMALL, delta_fraction=1.0))
    manifest = json.loads((read_current(idx) / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["dense_index"] == "hnsw" and delta_of(idx) is not None
    (corpus / "en1.txt").write_text("Flight time is 50 minutes.", encoding="utf-8")
    ingest([corpus], idx, IngestConfig(embed_model="fake-embedder", chunking=SMALL, dense_index="flat",
                                       delta_fraction=1.0))
    manifest = json.loads((read_current(idx) / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["dense_index"] == "flat" and delta_of(idx) is None
