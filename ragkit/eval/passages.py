"""Passages an eval arm is given instead of retrieving them: an item's own `context`, or the oracle's.

The oracle arm reads the gold source's chunks: those of the item's `sources` that hold an answer
string (in the index's chunk order, at most `cap`), else the gold chunk that scores best for the
question. It is the rag arm's ceiling: rag below oracle is retrieval's fault, oracle below 100% is
the model's (it had the answer in front of it). Given passages carry score 1.0 (nothing ranked
them) and never meet the refusal threshold (ragkit.pipeline).

    gold = gold_chunks(index, items)      # one pass over the index, whatever the store
    hits = oracle_passages(item, gold, lambda q: index.search(q, k=1000, mode="hybrid"), cap=5)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ..types import BenchItem, Chunk, Hit
from . import metrics

# How deep the fallback looks for a gold chunk in the question's ranking; past it the first gold
# chunk is taken (a corpus of a few thousand chunks is searched whole).
FALLBACK_DEPTH = 1000


def context_hits(texts: Sequence[str]) -> list[Hit]:
    """An item's context passages as hits, sources `context:1`, `context:2`, ..."""
    return [Hit(rank=i, chunk_id=f"context:{i}", source=f"context:{i}", score=1.0, text=t, page=None,
                start=0, end=len(t)) for i, t in enumerate(texts, 1)]


def chunk_hit(rank: int, c: Chunk) -> Hit:
    return Hit(rank=rank, chunk_id=c.chunk_id, source=c.source, score=1.0, text=c.text, page=c.page,
               start=c.start, end=c.end, title=c.title)


def gold_chunks(index, items: Iterable[BenchItem]) -> list[Chunk]:
    """Every chunk of a source some item names as gold, in the index's chunk order (one pass over
    `index.chunks()`, which both stores offer)."""
    wanted = {s for it in items for s in it.sources}
    return [c for c in index.chunks() if c.source in wanted]


def oracle_passages(item: BenchItem, chunks: Sequence[Chunk], search: Callable[[str], list[Hit]],
                    cap: int) -> list[Hit]:
    """The oracle's passages for `item` (see the module docstring); [] when the index holds no
    chunk of its gold sources. `search(question)` ranks chunks for the fallback."""
    if item.context:
        return context_hits(item.context)
    gold = [c for c in chunks if c.source in set(item.sources)]
    chosen = [c for c in gold if metrics.contains_answer(c.text, item.answers)][:cap]
    if not chosen and gold:
        by_id = {c.chunk_id: c for c in gold}
        best = next((by_id[h.chunk_id] for h in search(item.question) if h.chunk_id in by_id), gold[0])
        chosen = [best]
    return [chunk_hit(i, c) for i, c in enumerate(chosen, 1)]


def index_search(index, mode: str) -> Callable[[str], list[Hit]]:
    """The fallback's ranking: the index's own search, deep enough to reach most gold chunks."""
    depth = max(1, min(len(index), FALLBACK_DEPTH))
    return lambda question: list(index.search(question, k=depth, mode=mode))
