import pytest

from ragkit.errors import SettingsError
from ragkit.index import IngestConfig, ingest
from ragkit.integrations.langchain import RagkitRetriever


def test_langchain_retriever_returns_ragkit_hits_as_documents(mini_corpus, tmp_path, fake_embedder):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, IngestConfig(embed_model="fake-embedder"))
    retriever = RagkitRetriever.from_dir(str(idx), k=2, mode="bm25")
    docs = retriever.invoke("Falcon X2 warranty")  # two files match; bm25 returns only matching chunks
    assert len(docs) == 2
    assert docs[0].metadata["source"] == "warranty.md" and docs[0].metadata["rank"] == 1
    assert docs[0].page_content.startswith("# Warranty")
    assert docs[0].id == docs[0].metadata["chunk_id"]


@pytest.mark.parametrize("bad, match", [({"mode": "nonsense"}, "mode"), ({"k": 0}, "k"), ({"k": "five"}, "k")])
def test_a_bad_setting_is_refused_when_the_retriever_is_made(mini_corpus, tmp_path, fake_embedder, bad, match):
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, IngestConfig(embed_model="fake-embedder"))
    with pytest.raises(SettingsError, match=match):
        RagkitRetriever.from_dir(str(idx), **bad)
