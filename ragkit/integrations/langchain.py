"""A LangChain retriever over a ragkit index, so a LangChain chain can use ragkit's hybrid search.

    from ragkit.integrations.langchain import RagkitRetriever
    retriever = RagkitRetriever.from_dir(".ragkit/demo-index", k=5)
    docs = retriever.invoke("What is the maximum slope of the M3?")

Each Document carries the hit's source, score, page, character span and chunk id in metadata.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

from ..extras import require

require("langchain", "ragkit.integrations.langchain")  # before the imports it guards: one sentence, not a traceback
from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402

from ..index import Index  # noqa: E402
from ..settings import RETRIEVAL, RetrievalSettings  # noqa: E402


class RagkitRetriever(BaseRetriever):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any  # a Store from ragkit.index.Index.open (Any: pydantic need not validate it)
    k: int = RETRIEVAL.k
    mode: str = RETRIEVAL.mode

    def __init__(self, **kwargs: Any) -> None:
        # k and mode are checked where the retriever is made, by the settings the CLI uses:
        # RagkitRetriever(mode="nonsense") raises SettingsError here, not on the first invoke
        RetrievalSettings(**{f: kwargs[f] for f in ("k", "mode") if f in kwargs})
        super().__init__(**kwargs)

    @classmethod
    def from_dir(cls, directory: str, **kwargs) -> RagkitRetriever:
        return cls(index=Index.open(directory), **kwargs)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(
                page_content=h.text,
                id=h.chunk_id,
                metadata={"source": h.source, "score": h.score, "page": h.page, "start": h.start,
                          "end": h.end, "rank": h.rank, "chunk_id": h.chunk_id},
            )
            for h in self.index.search(query, k=self.k, mode=self.mode)
        ]
