"""`ingest --device cuda`: sentence-transformers on the GPU in fp16, vectors close to the CPU's. Skipped without CUDA."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.models,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_cuda_embedder_is_fp16_and_agrees_with_the_cpu():
    from ragkit.embed import load_embedder

    gpu = load_embedder("all-minilm-l6-v2", batch_size=512, backend="torch", device="cuda")
    cpu = load_embedder("all-minilm-l6-v2", backend="torch", device="cpu")
    param = next(gpu.model.parameters())
    assert param.is_cuda and param.dtype == torch.float16
    texts = [f"The Kestrel M3 mower part {i} has a warranty of {i % 5 + 1} years." for i in range(1000)]
    a, b = gpu.embed(texts), cpu.embed(texts)
    assert a.dtype == np.float32 and a.shape == b.shape
    assert float((a * b).sum(axis=1).min()) > 0.999  # cosine of fp16 GPU vs fp32 CPU vectors


def test_ingest_with_device_cuda(tmp_path):
    from pathlib import Path

    from ragkit.index import Index, IngestConfig, ingest

    corpus = Path(__file__).resolve().parents[2] / "data" / "corpus"
    s = ingest([corpus], tmp_path / "idx", IngestConfig(device="cuda", embed_backend="torch", batch_size=512))
    idx = Index.open(tmp_path / "idx")
    assert s.chunks_embedded == len(idx) > 0 and idx.manifest["embedding"]["backend"] == "torch"
    assert idx.search("warranty of the Kestrel M3", k=3)
