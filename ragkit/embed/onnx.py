"""Sentence embeddings through ONNX Runtime: the sentence-transformers pipeline, faster on a CPU.

Why: embedding is nearly all of an ingest's time, and eager PyTorch leaves speed on the table on
a CPU. ONNX Runtime with fused BERT kernels runs the same weights ~1.15x faster; int8 dynamic
quantisation of the matrix products takes a whole ingest to ~1.9x LangChain's torch path, at a
cosine of ~0.987 (min ~0.97) to the torch vectors and unchanged recall on the benches
(evals/perf/ingest_speed.py). int8 activation ranges are per batch, so a text's int8 vector
varies slightly with its batch (cos > 0.98). The GPU stays with torch: this backend is for CPUs.

How: the sentence-transformers model's transformer is exported once (torch.onnx.export, fused by
onnxruntime.transformers' optimizer, checked against torch) and cached with its int8 version
under $RAGKIT_CACHE or ~/.cache/ragkit/cache/onnx, keyed by a hash of the model directory's file
names, sizes and mtimes. Files are written to a temporary name and renamed, so concurrent
processes never read half a model. Tokenisation (truncated at the model's max_seq_length), the
pooling from the model's Pooling config (mean or cls) and L2 normalisation are replicated here;
any other module or pooling raises OnnxUnsupported, and load_embedder falls back to torch.

    OnnxEmbedder("all-minilm-l6-v2", quantize=True).embed(["some text"])   # (1, 384) float32
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import OnnxUnsupported
from ..models import ragkit_home, resolve_embedder
from ..settings import EMBED
from .tokenizer import load_tokenizer  # not transformers' AutoTokenizer: it imports torch

log = logging.getLogger(__name__)

# Bump when the export or quantisation recipe changes: the cache key includes it.
RECIPE = {"fp32": "fp32-v1", "int8": "int8-v1"}
FUSABLE = {"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra"}  # ORT's "bert" fusions
_CHECK_TEXTS = ["A short one.", "一个中文句子，用来检查导出的模型。",
                "A longer English sentence, padded less than the others, so padding is exercised too."]


def cache_dir() -> Path:
    return Path(os.environ.get("RAGKIT_CACHE") or ragkit_home() / "cache") / "onnx"


def model_key(path: Path, variant: str) -> str:
    """Hash of the model directory's file names, sizes and mtimes, and the export variant."""
    h = hashlib.sha256(RECIPE[variant].encode())
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def read_st_config(path: Path) -> tuple[Path, str, int | None]:
    """(transformer directory, pooling mode, max_seq_length) of a sentence-transformers model."""
    if not (path / "modules.json").is_file():  # a plain transformers directory: sentence-transformers mean-pools
        return path, "mean", None
    transformer, pooling = None, "mean"
    for m in json.loads((path / "modules.json").read_text(encoding="utf-8")):
        kind = m.get("type", "").rsplit(".", 1)[-1]
        if kind == "Transformer" and transformer is None:
            transformer = path / m.get("path", "")
        elif kind == "Pooling":
            cfg = _read_json(path / m.get("path", "") / "config.json")
            mode = cfg.get("pooling_mode")
            if mode is None:  # the legacy pooling_mode_* flags; none set means mean
                mode = [k[13:] for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True] or ["mean"]
            modes = [{"mean_tokens": "mean", "cls_token": "cls"}.get(x, x) for x in ([mode] if isinstance(mode, str) else mode)]
            if len(modes) != 1 or modes[0] not in ("mean", "cls") or cfg.get("include_prompt") is False:
                raise OnnxUnsupported(f"pooling {'+'.join(modes)} is not supported by the ONNX backend (mean or cls only)")
            pooling = modes[0]
        elif kind != "Normalize":  # embed() normalises anyway
            raise OnnxUnsupported(f"module {m.get('type')} is not supported by the ONNX backend")
    if transformer is None:
        raise OnnxUnsupported("no Transformer module in modules.json")
    st_cfg = _read_json(transformer / "sentence_bert_config.json") or _read_json(path / "sentence_bert_config.json")
    if st_cfg.get("do_lower_case"):
        raise OnnxUnsupported("do_lower_case models are not supported by the ONNX backend")
    if _read_json(path / "config_sentence_transformers.json").get("default_prompt_name"):
        raise OnnxUnsupported("models with a default prompt are not supported by the ONNX backend")
    return transformer, pooling, st_cfg.get("max_seq_length")


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Pooling as sentence-transformers does it, then L2 normalisation; float32."""
    hidden = hidden.astype(np.float32, copy=False)
    if mode == "cls":  # the first attended token (left padding included)
        v = hidden[np.arange(len(hidden)), mask.argmax(axis=1)]
    else:
        m = mask[..., None].astype(np.float32)
        v = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _tmp(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


class OnnxEmbedder:
    def __init__(self, name_or_path: str = "all-minilm-l6-v2", quantize: bool = True,
                 batch_size: int = EMBED.batch_size, threads: int | None = None):
        self.name, path = resolve_embedder(name_or_path)
        self.path = Path(path)
        self.backend = "onnx-int8" if quantize else "onnx"
        self.batch_size = batch_size
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import onnxruntime as ort
        except ImportError:
            raise OnnxUnsupported("onnxruntime is not installed (pip install onnxruntime)") from None
        self._tdir, self.pooling, max_len = read_st_config(self.path)

        self._tokenizer = load_tokenizer(self._tdir, max_len)
        config = _read_json(self._tdir / "config.json")
        if not max_len and config.get("max_position_embeddings", -1) > 0:  # as sentence-transformers caps it
            self._tokenizer.model_max_length = min(self._tokenizer.model_max_length, config["max_position_embeddings"])
        self.max_tokens = int(self._tokenizer.model_max_length)
        # The chunk splitter counts tokens thousands of times: a private copy of the Rust tokenizer
        # counts the same tokens at half the cost, free of the wrapper's per-call truncation state.
        backend = getattr(self._tokenizer, "backend_tokenizer", None)
        self._counter = None
        if backend is not None:
            from tokenizers import Tokenizer

            self._counter = Tokenizer.from_str(backend.to_str())
            self._counter.no_truncation(), self._counter.no_padding()
        self.dim = int(config.get("hidden_size") or config.get("dim") or 0)
        self._inputs = [n for n in self._tokenizer.model_input_names
                        if n in ("input_ids", "attention_mask", "token_type_ids")]
        if not {"input_ids", "attention_mask"} <= set(self._inputs):
            raise OnnxUnsupported(f"tokenizer inputs {self._tokenizer.model_input_names} are not supported")

        self.model_file = self._model_file("int8" if quantize else "fp32", config.get("model_type"))
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                              else os.cpu_count())
        self._session = ort.InferenceSession(str(self.model_file), so, providers=["CPUExecutionProvider"])
        if not self.dim:
            self.dim = int(self._session.get_outputs()[0].shape[-1])

    # -- the cached model files ----------------------------------------------------------------
    def _model_file(self, variant: str, model_type: str | None) -> Path:
        final = cache_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.name)[:60]}-{model_key(self.path, variant)}-{variant}.onnx"
        if final.is_file():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        fp32 = final if variant == "fp32" else self._model_file("fp32", model_type)
        tmp = _tmp(final)
        handlers = logging.getLogger().handlers[:]  # the quantiser's logging.warning would install one
        log.info("building the %s ONNX model of %s (once) at %s", variant, self.name, final)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                logging.disable(logging.WARNING)  # the exporter and quantiser's advice is not for our users
                if variant == "fp32":
                    self._export(tmp, model_type)
                else:
                    self._quantize(fp32, tmp)
            self._check(tmp, fp32 if variant == "int8" else None)
            os.replace(tmp, final)  # atomic: other processes see no file or the whole file
        except OnnxUnsupported:
            raise
        except Exception as e:
            raise OnnxUnsupported(f"could not build the {variant} ONNX model of {self.name}: {e}") from e
        finally:
            logging.disable(logging.NOTSET)
            logging.getLogger().handlers[:] = handlers
            tmp.unlink(missing_ok=True)
        return final

    def _export(self, out: Path, model_type: str | None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        hf = getattr(st[0], "model", None) or st[0].auto_model
        if hasattr(hf, "set_attn_implementation"):
            with contextlib.suppress(ValueError, NotImplementedError):
                hf.set_attn_implementation("eager")  # plain ops the ORT fusions recognise
        names = self._inputs

        class Wrapper(torch.nn.Module):  # keyword arguments, whatever order forward() declares
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, *args):
                return self.model(**dict(zip(names, args))).last_hidden_state

        enc = st.tokenizer(_CHECK_TEXTS[:2], padding=True, return_tensors="pt")
        axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
        raw = out.with_suffix(".raw")
        try:
            with torch.no_grad():
                torch.onnx.export(Wrapper(hf).eval(), tuple(enc[n] for n in names), str(raw), input_names=names,
                                  output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
                                  dynamo=False)
            if model_type in FUSABLE:
                from onnxruntime.transformers.optimizer import optimize_model

                cfg = _read_json(self._tdir / "config.json")
                heads = cfg.get("num_attention_heads") or cfg.get("n_heads") or 0
                opt = optimize_model(str(raw), model_type="bert", num_heads=heads, hidden_size=self.dim, opt_level=0)
                opt.save_model_to_file(str(out))
            else:
                os.replace(raw, out)
            enc = st.tokenizer(_CHECK_TEXTS, padding=True, return_tensors="pt")
            with torch.no_grad():
                self._reference = pool(hf(**{n: enc[n] for n in names}).last_hidden_state.numpy(),
                                       enc["attention_mask"].numpy(), self.pooling)
        finally:
            raw.unlink(missing_ok=True)

    @staticmethod
    def _quantize(fp32: Path, out: Path) -> None:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # The MatMuls and fused Attention (where the time goes), not the embedding Gathers; per-channel
        # signed weights; 7-bit weights keep the u8s8 kernels of CPUs without VNNI from saturating.
        # On 317 sample-corpus chunks: cos to torch mean 0.987, min 0.973 (all ops, 8-bit: 0.983, 0.954).
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         op_types_to_quantize=["MatMul", "Attention"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})

    def _check(self, model: Path, fp32: Path | None) -> None:
        """The new file must reproduce torch (fp32) or the fp32 file (int8) on texts of several lengths."""
        import onnxruntime as ort

        def run(f: Path) -> np.ndarray:
            return self._run(ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]), _CHECK_TEXTS)

        got = run(model)
        want = run(fp32) if fp32 is not None else self._reference
        worst = float((got * want).sum(axis=1).min())
        if worst < (0.95 if fp32 is not None else 0.9999):
            raise OnnxUnsupported(f"the ONNX model of {self.name} does not reproduce the torch model (cos {worst:.4f})")

    # -- the Embedder protocol -----------------------------------------------------------------
    def _forward(self, session, enc, idx) -> np.ndarray:
        """Pad the chosen tokenised texts as the tokenizer would (its side, its pad ids), run, pool."""
        pad_ids = {"input_ids": self._tokenizer.pad_token_id or 0, "attention_mask": 0,
                   "token_type_ids": getattr(self._tokenizer, "pad_token_type_id", 0) or 0}
        left = self._tokenizer.padding_side == "left"
        width = max(len(enc["input_ids"][j]) for j in idx)
        feed = {}
        for name in self._inputs:
            a = np.full((len(idx), width), pad_ids[name], dtype=np.int64)
            for r, j in enumerate(idx):
                row = enc[name][j]
                if left:
                    a[r, width - len(row):] = row
                else:
                    a[r, : len(row)] = row
            feed[name] = a
        return pool(session.run(None, feed)[0], feed["attention_mask"], self.pooling)

    def _encode(self, texts: list[str]):
        return self._tokenizer(texts, truncation=True, max_length=self.max_tokens, verbose=False)

    def _run(self, session, texts: list[str]) -> np.ndarray:
        return self._forward(session, self._encode(texts), list(range(len(texts))))

    def count_tokens(self, text: str) -> int:
        if self._counter is not None:
            return len(self._counter.encode(text, add_special_tokens=False).ids)
        return len(self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def embed(self, texts: list[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        enc = self._encode(texts)  # tokenised once, padded per batch
        # Sorted by token count, not characters: a Chinese chunk is short in characters but long in
        # tokens, so character order pads mixed corpora more (sample corpus: 23% padding vs 10%).
        order = np.argsort([-len(ids) for ids in enc["input_ids"]], kind="stable")
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            out[idx] = self._forward(self._session, enc, idx)
            if on_batch:
                on_batch(len(idx))
        return out
