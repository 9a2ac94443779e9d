import numpy as np
import pytest

from ragkit.index.bm25 import BM25Index
from ragkit.index.fusion import FusionWeights, fuse, top_k
from ragkit.lang import detect_language, tokenize_for_search


def test_top_k_orders_by_score_then_index():
    s = np.array([0.1, 0.9, 0.5, 0.9, 0.0])
    assert top_k(s, 3).tolist() == [1, 3, 2]
    assert top_k(s, 10).tolist() == [1, 3, 2, 0, 4]


def test_fuse_is_convex_and_clipped():
    d = np.array([1.0, -0.3, 0.5])
    s = np.array([0.0, 1.0, 2.0])
    assert fuse(d, s, 0.5).tolist() == pytest.approx([0.5, 0.5, 0.75])
    assert fuse(d, s, 1.0).tolist() == pytest.approx([1.0, 0.0, 0.5])


def test_language_aware_weight():
    w = FusionWeights(dense=0.6, dense_foreign=0.1)
    assert w.for_language("en", ["en"]) == 0.6
    assert w.for_language("zh", ["en"]) == 0.1
    assert w.for_language("zh", None) == 0.6  # unknown model: trust it
    with pytest.raises(ValueError):
        FusionWeights(dense=1.5)


def test_noise_dense_scores_cannot_overturn_a_clear_bm25_winner_for_a_foreign_query():
    # An English-only embedder gives Chinese text near-random cosines; BM25 found the answer.
    rng = np.random.default_rng(0)
    sparse = np.zeros(50)
    sparse[7] = 0.8
    sparse[3] = 0.3
    for _ in range(20):
        noise = rng.uniform(0.2, 0.9, size=50)
        fused = fuse(noise, sparse, FusionWeights().for_language("zh", ["en"]))
        assert top_k(fused, 1)[0] == 7


def test_bm25_normalised_scores_are_bounded_and_penalise_unknown_words():
    docs = ["隼鸟 M3 割草机器人的最大坡度为百分之四十", "电池保修十八个月", "the blade should be replaced every three months"]
    bm = BM25Index.build([tokenize_for_search(d) for d in docs])
    s = bm.normalized_scores("割草机器人最大坡度")
    assert s.argmax() == 0 and 0 < s.max() <= 1.0
    exact = bm.normalized_scores("blade replaced months").max()
    diluted = bm.normalized_scores("blade replaced months spaceship telescope").max()
    assert diluted < exact
    assert bm.normalized_scores("完全无关的问题").max() == 0.0
    assert bm.normalized_scores("？？").max() == 0.0


def test_tokenizer_mixes_jieba_and_latin_words():
    toks = tokenize_for_search("Ｍ３ 的最大坡度是多少？The Blade")
    assert "m3" in toks and "blade" in toks and "the" not in toks
    assert "坡度" in toks


def test_detect_language():
    assert detect_language("X200 的保修期是多久？") == "zh"
    assert detect_language("How long is the warranty?") == "en"
