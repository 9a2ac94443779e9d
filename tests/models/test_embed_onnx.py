"""The ONNX Runtime embedder against sentence-transformers, its export cache, and index backends."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from ragkit.cli import main
from ragkit.embed import SentenceTransformerEmbedder, load_embedder
from ragkit.embed.onnx import OnnxEmbedder, model_key, read_st_config
from ragkit.errors import IndexIncompatible, OnnxUnsupported
from ragkit.index import Index, IngestConfig, ingest
from ragkit.models import bundled_path

pytestmark = pytest.mark.models

SENTENCES = [
    "How long is the warranty on the drone battery?",
    "The Falcon X2 flies for 38 minutes on one charge.",
    "ok",
    "无人机的电池保修多久？",
    "猎鹰 X2 续航时间为三十八分钟，最大抗风等级为五级。",
    "A long paragraph that runs past the model's 256-token limit, so truncation is exercised. " * 30,
]


@pytest.fixture(scope="module")
def torch_embedder():
    return SentenceTransformerEmbedder("all-minilm-l6-v2", device="cpu")


@pytest.fixture(scope="module")
def fp32():
    return OnnxEmbedder("all-minilm-l6-v2", quantize=False, batch_size=4)


@pytest.fixture(scope="module")
def int8():
    return OnnxEmbedder("all-minilm-l6-v2", quantize=True, batch_size=4)


def _cos(a, b):
    return (a * b).sum(axis=1)


def test_fp32_matches_sentence_transformers(torch_embedder, fp32):
    want = torch_embedder.embed(SENTENCES)
    got = fp32.embed(SENTENCES)  # batch_size 4: two batches, padded differently than torch's
    assert got.dtype == np.float32 and got.shape == want.shape == (len(SENTENCES), 384)
    assert _cos(got, want).min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert (fp32.name, fp32.dim, fp32.max_tokens, fp32.backend) == ("all-minilm-l6-v2", 384, 256, "onnx")
    for s in SENTENCES:  # chunk sizes are counted in the same tokens
        assert fp32.count_tokens(s) == torch_embedder.count_tokens(s)


def test_int8_close_to_sentence_transformers(torch_embedder, int8):
    want = torch_embedder.embed(SENTENCES)
    got = int8.embed(SENTENCES)
    assert int8.backend == "onnx-int8"
    assert _cos(got, want).min() > 0.97
    # Each int8 vector is still nearest to its own torch vector.
    assert ((got @ want.T).argmax(axis=1) == np.arange(len(SENTENCES))).all()


def test_export_is_cached(fp32, int8, ragkit_cache, monkeypatch):
    # Only this model's files: other models' tests share the session's cache (e5's export, say).
    files = {p.name: p.stat().st_mtime_ns for p in (ragkit_cache / "onnx").glob("all-minilm-l6-v2-*.onnx")}
    assert {fp32.model_file.name, int8.model_file.name} <= set(files) and len(files) == 2
    assert not list((ragkit_cache / "onnx").glob(".*.tmp"))  # no temporary file left behind

    def boom(*a, **k):
        raise AssertionError("re-exported although the cache holds the model")

    monkeypatch.setattr(OnnxEmbedder, "_export", boom)
    monkeypatch.setattr(OnnxEmbedder, "_quantize", boom)
    again = OnnxEmbedder("all-minilm-l6-v2", quantize=True)
    assert again.model_file == int8.model_file
    assert {p.name: p.stat().st_mtime_ns for p in (ragkit_cache / "onnx").glob("all-minilm-l6-v2-*.onnx")} == files
    np.testing.assert_allclose(again.embed(SENTENCES[:2]), int8.embed(SENTENCES[:2]), atol=1e-6)


def test_cache_key_follows_model_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    k = model_key(tmp_path, "fp32")
    assert model_key(tmp_path, "int8") != k
    (tmp_path / "config.json").write_text('{"changed": 1}')
    assert model_key(tmp_path, "fp32") != k


def test_unsupported_pooling_falls_back_to_torch(tmp_path):
    """A model whose pooling the ONNX path does not replicate must not silently embed differently."""
    src = bundled_path("all-minilm-l6-v2")
    model = tmp_path / "max-pooled"
    model.mkdir()
    for f in src.iterdir():
        if f.is_file():
            (model / f.name).symlink_to(f)
    (model / "1_Pooling").mkdir()
    cfg = json.loads((src / "1_Pooling" / "config.json").read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_max_tokens=True)
    (model / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(OnnxUnsupported, match="max"):
        read_st_config(model)
    with pytest.warns(UserWarning, match="using torch"):
        emb = load_embedder(str(model), backend="onnx-int8")
    assert emb.backend == "torch"


def test_index_keeps_its_backend(mini_corpus, tmp_path):
    idx = tmp_path / "idx"
    r = CliRunner().invoke(main, ["ingest", str(mini_corpus), "--index", str(idx), "--embed-backend", "onnx-int8"])
    assert r.exit_code == 0, r.output
    index = Index.open(idx)
    assert index.manifest["embedding"]["backend"] == "onnx-int8"
    assert isinstance(index.embedder, OnnxEmbedder) and index.embedder.backend == "onnx-int8"
    # The query side reproduces the stored vectors (int8 activation ranges are per batch, hence not exact).
    texts = [c.text for c in index.chunks()]
    alone = np.stack([index.embedder.embed([t])[0] for t in texts])
    cos = _cos(alone, np.asarray(index.vectors))
    assert cos.min() > 0.98
    assert index.search("How many minutes can it fly?", k=1, mode="dense")[0].source == "specs.txt"
    index.close()

    # Extending it with another backend would mix int8 and fp32 vectors: refused; the default follows the index.
    (mini_corpus / "more.txt").write_text("The Falcon X2 weighs 900 grams.\n", encoding="utf-8")
    with pytest.raises(IndexIncompatible, match="onnx-int8"):
        ingest([mini_corpus], idx, IngestConfig(embed_backend="onnx"))
    summary = ingest([mini_corpus], idx, IngestConfig())
    assert summary.files_added == 1
    assert Index.open(idx).manifest["embedding"]["backend"] == "onnx-int8"
    shutil.rmtree(idx)
