"""A command whose optional part is not installed says which extra to install, in one sentence."""

import importlib.util

import pytest
from click.testing import CliRunner

from ragkit import extras
from ragkit.cli import main
from ragkit.errors import MissingExtra


@pytest.fixture
def without(monkeypatch):
    """Make find_spec report the given top-level modules as not installed."""
    real = importlib.util.find_spec

    def hide(*names):
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name in names else real(name, *a, **k))

    return hide


def test_require_names_the_extra_and_what_is_missing(without):
    without("peft")
    with pytest.raises(MissingExtra, match=r"ragkit train needs the 'train' extra \(peft is not installed\): "
                                            r"pip install 'ragkit\[train\]'"):
        extras.require("train", "ragkit train")


@pytest.mark.parametrize("args, extra", [
    (["serve", "--index", "idx"], "serve"),
    (["train", "--data", "DATA", "--base", "smollm2-135m", "--out", "OUT"], "train"),
    (["ingest", "DOCS", "--index", "OUT", "--store", "milvus", "--embed-model", "fake-embedder"], "milvus"),
])
def test_the_cli_says_which_extra_to_install(without, tmp_path, args, extra):
    without(*extras.EXTRAS[extra])
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    args = [str(data) if a == "DATA" else str(tmp_path / "out") if a == "OUT" else str(tmp_path) if a == "DOCS"
            else a for a in args]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    assert f"needs the '{extra}' extra" in r.output and f"pip install 'ragkit[{extra}]'" in r.output
    assert "Traceback" not in r.output
