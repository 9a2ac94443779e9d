"""The records that flow through ragkit: documents, chunks, hits, answers, bench items (SFT pairs are
JSON records, see ragkit.sft.formats)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Document:
    """One loaded document. `source` is relative to the ingested root.

    `page_starts` holds the character offset at which each page begins (PDF only), so a chunk's
    page can be found from its start offset.
    """

    source: str
    text: str
    title: str | None = None
    page_starts: list[int] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chunk:
    chunk_id: str
    source: str
    text: str
    start: int
    end: int
    page: int | None = None
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hit:
    """A retrieved chunk. Its dict form is the `ragkit search --json` schema."""

    rank: int
    chunk_id: str
    source: str
    score: float
    text: str
    page: int | None
    start: int
    end: int
    title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("title")
        return d


@dataclass
class Citation:
    """A chunk number the answer cited ([1], [2] ...) mapped back to where it came from."""

    number: int
    chunk_id: str
    source: str
    page: int | None
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Completion:
    """What a generator returns for one prompt."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_ms: float | None = None
    total_ms: float = 0.0
    finish_reason: str | None = None


@dataclass
class Answer:
    question: str
    answer: str
    citations: list[Citation]
    hits: list[Hit]
    prompt: str
    prompt_tokens: int
    completion_tokens: int
    timings: dict[str, float]
    backend: str
    model: str
    refused: bool = False
    reasoning: dict | None = None  # the reasoning step's facts, expression and value (reason on/auto)

    def to_dict(self) -> dict[str, Any]:
        extra = {"reasoning": self.reasoning} if self.reasoning is not None else {}
        return {
            "answer": self.answer,
            "citations": [c.to_dict() for c in self.citations],
            "sources": [h.to_dict() for h in self.hits],
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "timings": self.timings,
            "backend": self.backend,
            "model": self.model,
            "refused": self.refused,
            **extra,
        }


@dataclass
class BenchItem:
    id: str
    question: str
    answers: list[str]
    sources: list[str]
    category: str
    difficulty: str
    notes: str | None = None
    context: list[str] | None = None  # the item's own passages: every arm reads these instead of retrieving

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for f in ("notes", "context"):
            if d[f] is None:
                d.pop(f)
        return d
