"""Document → chunks, sized in the embedding model's tokens, split at Chinese and English sentence ends.

Built on langchain-text-splitters' RecursiveCharacterTextSplitter: it tries blank lines, then
lines, then sentence ends (。！？；… and '. ! ? ;'), then clauses, then words, keeping each
separator at the end of the piece it closes so sentences stay whole.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..types import Chunk, Document

SEPARATORS = [
    "\n\n",
    "\n",
    "。",
    "！",
    "？",
    "；",
    "…",
    ". ",
    "! ",
    "? ",
    "; ",
    "，",
    ", ",
    "、",
    " ",
    "",
]


@dataclass
class ChunkingConfig:
    chunk_size: int = 200  # tokens of the embedding model
    chunk_overlap: int = 40

    def __post_init__(self) -> None:
        if self.chunk_size < 16:
            raise ValueError("chunk_size must be at least 16 tokens")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError("chunk_overlap must be >= 0 and smaller than chunk_size")


_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _splitter(config: ChunkingConfig, count_tokens: Callable[[str], int]):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        keep_separator="end",
        chunk_size=config.chunk_size,
        chunk_overlap=config.chunk_overlap,
        length_function=count_tokens,
        strip_whitespace=True,
    )


def chunk_id(source: str, content_hash: str, doc_index: int, chunk_index: int) -> str:
    # Stable while the file is unchanged, distinct for two copies of one file at different paths.
    key = hashlib.sha1(f"{source}\0{content_hash}".encode()).hexdigest()[:12]
    return f"{key}-{doc_index}-{chunk_index}"


def chunk_documents(
    docs: list[Document],
    content_hash: str,
    config: ChunkingConfig,
    count_tokens: Callable[[str], int],
) -> list[Chunk]:
    """Split one file's documents into chunks with offsets, page and heading."""
    splitter = _splitter(config, count_tokens)
    chunks: list[Chunk] = []
    for d_i, doc in enumerate(docs):
        headings = [(m.start(), m.group(1)) for m in _HEADING.finditer(doc.text)]
        heading_starts = [h[0] for h in headings]
        cursor = 0
        for c_i, piece in enumerate(splitter.split_text(doc.text)):
            start = doc.text.find(piece, cursor)
            if start < 0:  # cannot happen with strip-only splitting, but never lose a chunk over it
                start = max(doc.text.find(piece), 0)
            end = start + len(piece)
            cursor = start + 1
            page = None
            if doc.page_starts:
                page = bisect.bisect_right(doc.page_starts, start)  # 1-based
            h = bisect.bisect_right(heading_starts, start) - 1
            title = headings[h][1] if h >= 0 else doc.title
            chunks.append(
                Chunk(
                    chunk_id=chunk_id(doc.source, content_hash, d_i, c_i),
                    source=doc.source,
                    text=piece,
                    start=start,
                    end=end,
                    page=page,
                    title=title,
                    metadata=dict(doc.metadata),
                )
            )
    return chunks
