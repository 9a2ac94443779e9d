"""Shared fixtures: an isolated RAGKIT_HOME for every test, and a fast fake embedder.

The fake embedder hashes character bigrams into a small vector: deterministic, instant, and
good enough that texts sharing words land near each other, so retrieval tests mean something
without loading a model. Tests that need real models are marked `models`.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from ragkit.embed import register_embedder


class FakeEmbedder:
    name = "fake-embedder"
    dim = 64

    def __init__(self):
        self.embedded: list[str] = []  # every text embedded, so tests can count re-embedding

    def count_tokens(self, text: str) -> int:
        # One token per CJK character or Latin word, like a BERT-style tokenizer roughly does.
        return len(re.findall(r"[\u4e00-\u9fff]|[A-Za-z0-9]+", text))

    def embed(self, texts, on_batch=None):
        self.embedded.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            t = t.lower()
            for a, b in zip(t, t[1:]):
                h = int(hashlib.md5((a + b).encode()).hexdigest()[:8], 16)
                out[i, h % self.dim] += 1.0
            n = np.linalg.norm(out[i])
            if n:
                out[i] /= n
        if on_batch:
            on_batch(len(texts))
        return out


_shared_fake = FakeEmbedder()
register_embedder("fake-embedder", lambda: _shared_fake)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "ragkit-home"
    monkeypatch.setenv("RAGKIT_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture
def fake_embedder():
    _shared_fake.embedded.clear()
    return _shared_fake


@pytest.fixture
def mini_corpus(tmp_path):
    """A small bilingual corpus: two English files, two Chinese files."""
    root = tmp_path / "corpus"
    (root / "zh").mkdir(parents=True)
    (root / "warranty.md").write_text(
        "# Warranty\n\nThe Falcon X2 drone has a warranty of 24 months. Batteries are covered for 12 months.\n\n"
        "## Claims\n\nSend claims to the service centre in Brightwater with the receipt.\n",
        encoding="utf-8",
    )
    (root / "specs.txt").write_text(
        "Falcon X2 specifications. Flight time is 38 minutes. Maximum wind resistance is level 5. "
        "The camera records 4K video at 60 frames per second.\n",
        encoding="utf-8",
    )
    (root / "zh" / "保修.md").write_text(
        "# 保修政策\n\n猎鹰 X2 无人机整机保修期为二十四个月。电池保修十二个月。\n\n维修请联系明水市服务中心，并携带购机发票。\n",
        encoding="utf-8",
    )
    (root / "zh" / "参数.txt").write_text(
        "猎鹰 X2 技术参数。续航时间为三十八分钟。最大抗风等级为五级。相机可以每秒六十帧录制四K视频。\n",
        encoding="utf-8",
    )
    return root
