"""A streamed ingest SIGKILLed mid-way resumes from its last checkpoint: the chunks it finished are
never embedded again, readers see the old version until the resumed one is done, and the result is
the index a clean ingest builds."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ragkit.index.build import ingest
from ragkit.index.store import Index, read_current
from ragkit.index.writer import STAGING

sys.path.insert(0, str(Path(__file__).parent))
from kill_ingest import CountingEmbedder, config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def corpus(d: Path, n: int, tag: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        words = " ".join(f"{tag}{i}w{j}" for j in range(60))  # 60 words: 4 chunks of 20 with overlap 4
        (d / f"{tag}-{i:03d}.txt").write_text(words, encoding="utf-8")
    return d


def rows(idx: Path) -> tuple[list, np.ndarray]:
    v = read_current(idx)
    db = sqlite3.connect(v / "chunks.sqlite")
    got = db.execute("SELECT row, chunk_id, source, text, start, end, tokens FROM chunks ORDER BY row").fetchall()
    db.close()
    return got, np.load(v / "embeddings.npy")


def kill_child(corpus_dir: Path, idx: Path, log: Path, kill_after: int) -> int:
    r = subprocess.run([sys.executable, str(Path(__file__).parent / "kill_ingest.py"), str(corpus_dir), str(idx),
                        str(log), str(kill_after)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    return r.returncode


@pytest.mark.parametrize("first", [False, True], ids=["update", "first-ingest"])
def test_a_killed_ingest_resumes_without_re_embedding_and_equals_a_clean_one(tmp_path, first):
    src = corpus(tmp_path / "c", 3, "old")
    idx = tmp_path / "idx"
    if not first:
        ingest([src], idx, config(), embedder=CountingEmbedder())
    before = read_current(idx)
    corpus(src, 20, "new")  # 80 new chunks: 10 batches of 8
    log = tmp_path / "embed.log"
    assert kill_child(src, idx, log, kill_after=4) == -9  # SIGKILLed during its fifth embed call
    killed_embedded = sum(int(x) for x in log.read_text().split())
    assert killed_embedded == 32
    assert read_current(idx) == before  # readers still see the old version (or none at all)
    if before is not None:
        assert Index.open(idx, embedder=CountingEmbedder()).search("old1w5", k=1, mode="bm25")[0].source == "old-001.txt"
    staged = sqlite3.connect(idx / STAGING / "chunks.sqlite").execute("SELECT count(*) FROM chunks").fetchone()[0]
    assert staged == 32  # four committed batches: the checkpoint

    resumed = CountingEmbedder()
    s = ingest([src], idx, config(), embedder=resumed)
    total_new = 80 + (12 if first else 0)
    assert resumed.embedded == s.chunks_embedded == total_new - 32  # only the chunks the killed run did not finish
    assert s.version_written and not (idx / STAGING).exists()

    clean = tmp_path / "clean"
    ingest([src], clean, config(), embedder=CountingEmbedder())  # the same files in one uninterrupted go
    got, vecs = rows(idx)
    want, want_vecs = rows(clean)
    assert [r[1:] for r in got] == [r[1:] for r in want] and len(got) == 92
    np.testing.assert_allclose(vecs, want_vecs, rtol=0, atol=1e-6)
    # The entries agree but for the mtime stamp, which a file younger than STAMP_MARGIN_NS at
    # hashing does not get: which files were that young depends on the machine's speed.
    def entries(d):
        return {k: {f: v for f, v in e.items() if f != "mtime_ns"}
                for k, e in Index.open(d, embedder=CountingEmbedder()).manifest["files"].items()}

    assert entries(idx) == entries(clean)


def test_a_staging_of_other_files_is_started_over(tmp_path):
    src = corpus(tmp_path / "c", 20, "a")
    idx = tmp_path / "idx"
    assert kill_child(src, idx, tmp_path / "log", kill_after=2) == -9
    (src / "a-000.txt").write_text("changed words here", encoding="utf-8")  # the plan is not the staging's
    e = CountingEmbedder()
    s = ingest([src], idx, config(), embedder=e)
    assert e.embedded == s.chunks == 77  # everything embedded afresh: 19 files of 4 chunks and one of 1
