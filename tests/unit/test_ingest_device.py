import pytest

from ragkit.embed import load_embedder, resolve_device
from ragkit.errors import UsageError


def test_cpu_and_auto_resolve_and_a_missing_gpu_is_one_sentence(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == resolve_device("auto") == resolve_device(None) == "cpu"
    with pytest.raises(UsageError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(UsageError, match="choose cpu, cuda or auto"):
        resolve_device("tpu")


def test_cuda_needs_the_torch_backend():
    with pytest.raises(UsageError, match="runs the torch backend"):
        load_embedder("all-minilm-l6-v2", backend="onnx-int8", device="cuda")
