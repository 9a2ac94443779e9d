"""A child ingest for test_ingest_resume.py: a deterministic embedder that logs every text it
embeds to a file (so the parent can count across processes) and SIGKILLs its own process after
a given number of embed calls, the way an OOM killer or a lost machine ends a long ingest."""

from __future__ import annotations

import hashlib
import os
import signal
import sys

import numpy as np


class CountingEmbedder:
    name = "counting-embedder"
    dim = 16

    def __init__(self, log: str | None = None, kill_after: int | None = None):
        self.log, self.kill_after, self.calls, self.embedded = log, kill_after, 0, 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts, on_batch=None):
        if self.kill_after is not None and self.calls >= self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        self.calls += 1
        self.embedded += len(texts)
        if self.log:
            with open(self.log, "a", encoding="utf-8") as fh:
                fh.write(f"{len(texts)}\n")
        out = np.stack([np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], dtype=np.uint8) for t in texts])
        out = out.astype(np.float32) + 1.0
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        if on_batch:
            on_batch(len(texts))
        return out


def config():
    from ragkit.index import IngestConfig
    from ragkit.ingest.chunking import ChunkingConfig

    return IngestConfig(embed_model="counting-embedder", chunking=ChunkingConfig(chunk_size=20, chunk_overlap=4),
                        checkpoint_rows=8)


if __name__ == "__main__":
    from ragkit.index import ingest

    corpus, index, log, kill_after = sys.argv[1:5]
    ingest([corpus], index, config(), embedder=CountingEmbedder(log, int(kill_after)))
