"""Document frequencies of ragkit's BM25 words, kept beside a Milvus index's manifest.

The Milvus store puts BM25 on the FAISS store's absolute scale by dividing by the best score a
query could reach, which needs each query word's document frequency. Counting it in Milvus
(TEXT_MATCH ... count(*)) took over a second a word on milvus-lite already at 10k chunks, so ingest
keeps the counts instead: a sorted array of 64-bit word codes and one of counts, written into each version
directory (so a crashed ingest leaves the old counts with the old manifest), updated by adding the
new chunks' words and subtracting the replaced chunks' words: the cost of one changed file is
that file's words plus one merge over the vocabulary (numpy, milliseconds at 1M chunks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

CODES, COUNTS = "df_codes.npy", "df_counts.npy"


def code(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "big")


def chunk_codes(words: Iterable[str]) -> set[int]:
    return {code(w) for w in words}


class DocFreq:
    def __init__(self, codes: np.ndarray | None = None, counts: np.ndarray | None = None):
        self.codes = np.zeros(0, dtype=np.uint64) if codes is None else codes
        self.counts = np.zeros(0, dtype=np.int64) if counts is None else counts

    @classmethod
    def load(cls, version_dir: Path | None) -> DocFreq:
        if version_dir is None or not (version_dir / CODES).is_file():
            return cls()
        return cls(np.load(version_dir / CODES, allow_pickle=False), np.load(version_dir / COUNTS, allow_pickle=False))

    def save(self, version_dir: Path) -> None:
        np.save(version_dir / CODES, self.codes, allow_pickle=False)
        np.save(version_dir / COUNTS, self.counts, allow_pickle=False)

    @staticmethod
    def of_chunks(chunks: Iterable[list[str]], sign: int = 1) -> DocFreq:
        """The counts of these chunks alone, to merge (one list of BM25 words a chunk:
        lang.tokenize_for_search of its text; sign=-1 for chunks to subtract). Codes repeat until merged."""
        codes = np.array([c for words in chunks for c in chunk_codes(words)], dtype=np.uint64)
        return DocFreq(codes, np.full(len(codes), sign, dtype=np.int64))

    def merged(self, *others: DocFreq) -> DocFreq:
        """These counts plus the others', sorted by code (a word whose count falls to 0 goes)."""
        codes = np.concatenate([self.codes, *(o.codes for o in others)])
        counts = np.concatenate([self.counts, *(o.counts for o in others)])
        uniq, inv = np.unique(codes, return_inverse=True)
        total = np.bincount(inv, weights=counts, minlength=len(uniq)).astype(np.int64)
        keep = total > 0
        return DocFreq(uniq[keep], total[keep])

    def updated(self, added: list[list[str]], removed: list[list[str]]) -> DocFreq:
        """Counts after adding the chunks with BM25 words `added` and dropping those with `removed`."""
        return self.merged(DocFreq.of_chunks(added), DocFreq.of_chunks(removed, -1))

    def lookup(self, words: list[str]) -> list[int]:
        if not len(self.codes):
            return [0] * len(words)
        q = np.array([code(w) for w in words], dtype=np.uint64)
        i = np.clip(np.searchsorted(self.codes, q), 0, len(self.codes) - 1)
        return [int(c) if hit else 0 for c, hit in zip(self.counts[i], self.codes[i] == q)]
