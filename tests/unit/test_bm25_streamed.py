import numpy as np

from ragkit.index.bm25 import BM25Index
from ragkit.lang import tokenize_for_search


def test_bm25_built_from_streamed_ids_scores_as_the_list_build():
    texts = ["The Falcon X2 drone has a warranty of 24 months", "", "隼鸟 M3 割草机器人 保修 两年",
             "Send warranty claims to Brightwater", "a b c a a"]
    tokens = [tokenize_for_search(t) for t in texts]
    plain = BM25Index.build([list(t) for t in tokens])
    streamed = BM25Index.build_streamed(iter(tokens))
    assert streamed.n_docs == plain.n_docs == 5
    for q in ["warranty", "割草机器人 保修", "a c", "nothing like it", "Falcon drone months"]:
        np.testing.assert_allclose(streamed.normalized_scores(q), plain.normalized_scores(q), rtol=1e-6)
