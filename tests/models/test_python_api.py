"""The README's Python API snippet runs as written and exits cleanly: llama.cpp's model is freed
before the interpreter tears down (it printed "Exception ignored in: <function Llama.__del__ ...>
TypeError: 'NoneType' object is not callable" at every exit before generators were closed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.models


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    snippet = next((b for b in blocks if "Pipeline" in b), None)
    assert snippet, "the README shows the Python API"
    return snippet


def test_the_readme_python_snippet_runs_and_exits_cleanly(tmp_path):
    # The snippet's relative paths, in a folder of its own: a two-file data/corpus.
    corpus = tmp_path / "data" / "corpus"
    corpus.mkdir(parents=True)
    for name in ("en/warranty-policy-2025.md", "zh/company-profile.md"):
        shutil.copy(ROOT / "data/corpus" / name, corpus / Path(name).name)
    snippet = readme_snippet().replace('load_generator("qwen2.5-coder-1.5b")', 'load_generator("smollm2-135m")')
    out = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip(), "it prints an answer"
    assert "Exception ignored" not in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
