"""`ingest --ray` on a local Ray: the embedding moves to an actor pool, the index stays the one a
plain ingest builds (same chunks, vectors within float tolerance)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ragkit.errors import UsageError
from ragkit.index import IngestConfig, ingest
from ragkit.index.manifest import read_current

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ragkit[ray]')")
# A local Ray's own servers (GCS, raylet, object store) listen on every interface whatever
# node address is given, and test servers here must listen on loopback only: run these by hand,
# RAGKIT_RAY_TESTS=1 pytest tests/unit/test_ray_ingest.py, on a machine where that is acceptable.
pytestmark = pytest.mark.skipif(os.environ.get("RAGKIT_RAY_TESTS") != "1",
                                reason="a local Ray listens beyond loopback; opt in with RAGKIT_RAY_TESTS=1")
ROOT = Path(__file__).resolve().parents[2]


def rows(idx: Path):
    v = read_current(idx)
    db = sqlite3.connect(v / "chunks.sqlite")
    got = db.execute("SELECT chunk_id, source, text, start, end, tokens FROM chunks ORDER BY row").fetchall()
    db.close()
    return got, np.load(v / "embeddings.npy")


def test_ray_ingest_equals_a_plain_one(mini_corpus, tmp_path, fake_embedder, monkeypatch):
    # Ray's workers unpickle the test's fake embedder by reference: they must find conftest and ragkit.
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}:{ROOT / 'tests'}")
    plain = tmp_path / "plain"
    ingest([mini_corpus], plain, IngestConfig(embed_model="fake-embedder"), embedder=fake_embedder)
    fake_embedder.embedded.clear()
    try:
        cfg = IngestConfig(embed_model="fake-embedder", ray="local", ray_actors=1, ray_cpus=1, batch_size=2,
                           checkpoint_rows=2)  # several groups, rows written two at a time
        s = ingest([mini_corpus], tmp_path / "ray", cfg, embedder=fake_embedder)
    finally:
        ray.shutdown()
    assert fake_embedder.embedded == []  # nothing was embedded in this process: the actors did it
    got, vecs = rows(tmp_path / "ray")
    want, want_vecs = rows(plain)
    assert s.chunks_embedded == len(want) > 0 and got == want
    np.testing.assert_allclose(vecs, want_vecs, rtol=0, atol=1e-6)


def test_a_path_after_ray_is_refused_in_one_sentence(mini_corpus, tmp_path, fake_embedder):
    cfg = IngestConfig(embed_model="fake-embedder", ray="data/corpus")
    with pytest.raises(UsageError, match="not a Ray address"):
        ingest([mini_corpus], tmp_path / "i", cfg, embedder=fake_embedder)
    assert not (tmp_path / "i").exists()


@pytest.mark.parametrize("args, want", [(["--ray"], "local"), (["--ray=ray://head:10001"], "ray://head:10001"),
                                        ([], None)])
def test_the_cli_ray_option_takes_an_optional_address(mini_corpus, tmp_path, monkeypatch, args, want):
    from click.testing import CliRunner

    import ragkit.index as build
    from ragkit.cli import main

    seen = {}

    def fake_ingest(paths, index_dir, config, **kw):
        seen["ray"], seen["device"] = config.ray, config.device
        raise SystemExit(0)

    monkeypatch.setattr(build, "ingest", fake_ingest)
    r = CliRunner().invoke(main, ["ingest", str(mini_corpus), "--index", str(tmp_path / "i"), "--device", "cpu", *args])
    assert r.exit_code == 0 and seen == {"ray": want, "device": "cpu"}
