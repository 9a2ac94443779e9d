"""The ONNX embedder's tokenizer (ragkit/embed/tokenizer.py) gives transformers' ids, without torch."""

import subprocess
import sys

from ragkit.embed.tokenizer import FastTokenizer
from ragkit.models import resolve_embedder

TEXTS = ["How long is the M3 battery warranty?", "隼鸟 M3 的电池保修期是多久？", "word " * 400, ""]


def minilm_dir():
    from pathlib import Path

    return Path(resolve_embedder("all-minilm-l6-v2")[1])


def test_ids_equal_transformers_tokenizer_with_truncation():
    from transformers import AutoTokenizer

    ours = FastTokenizer(minilm_dir(), max_length=256)
    theirs = AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True, model_max_length=256)
    got = ours(TEXTS, truncation=True, max_length=256)
    want = theirs(TEXTS, truncation=True, max_length=256, verbose=False)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert got[key] == [list(x) for x in want[key]]
    assert len(got["input_ids"][2]) == 256 and got["input_ids"][2][-1] == theirs.sep_token_id
    assert ours("a b c", add_special_tokens=False)["input_ids"] == theirs("a b c", add_special_tokens=False)["input_ids"]
    assert ours.pad_token_id == theirs.pad_token_id
    assert len(ours) == len(theirs)
    ids = got["input_ids"][0]
    assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids)


def test_the_onnx_embedder_imports_no_torch():
    from ragkit.embed.onnx import OnnxEmbedder

    OnnxEmbedder("all-minilm-l6-v2")  # the first load exports the model (with torch) into RAGKIT_HOME
    code = ("import sys; from ragkit.embed.onnx import OnnxEmbedder; e = OnnxEmbedder('all-minilm-l6-v2'); "
            "e.embed(['hello']); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
