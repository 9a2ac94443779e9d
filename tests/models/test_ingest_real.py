"""End to end through the CLI with the real bundled embedding model (all-MiniLM-L6-v2)."""

import json

import pytest
from click.testing import CliRunner

from ragkit.cli import main

pytestmark = pytest.mark.models


def test_real_embedder_ingest_and_search(mini_corpus, tmp_path):
    idx = tmp_path / "idx"
    runner = CliRunner()
    r = runner.invoke(main, ["ingest", str(mini_corpus), "--index", str(idx), "--json"])
    assert r.exit_code == 0, r.output
    manifest_dir = (idx / (idx / "CURRENT").read_text().strip())
    manifest = json.loads((manifest_dir / "manifest.json").read_text())
    assert manifest["embedding"] == {"model": "all-minilm-l6-v2", "dim": 384, "languages": ["en"],
                                     "backend": "onnx-int8"}
    assert set(manifest["files"]) == {"warranty.md", "specs.txt", "zh/保修.md", "zh/参数.txt"}

    for query, mode, expected in [
        ("How many minutes can it fly?", "dense", "specs.txt"),
        ("Where do I send a warranty claim?", "hybrid", "warranty.md"),
        ("续航时间是多少", "hybrid", "zh/参数.txt"),
        ("电池保修多久", "bm25", "zh/保修.md"),
    ]:
        r = runner.invoke(main, ["search", query, "--index", str(idx), "-k", "1", "--mode", mode, "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["hits"][0]["source"] == expected, (query, mode)
