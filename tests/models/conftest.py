"""Fixtures for the tests with real models: one ONNX export cache for the whole test session.

The ONNX backend exports and quantises the embedding model once per cache directory (about half
a minute); every test here shares one session-wide RAGKIT_CACHE, so that happens once per run,
while RAGKIT_HOME stays isolated per test (tests/conftest.py).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def ragkit_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("ragkit-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("RAGKIT_CACHE", str(cache))
    yield cache
    mp.undo()
