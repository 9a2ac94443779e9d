"""Using a trained adapter: merge it into the base, export it as a GGUF LoRA for llama.cpp, verify.

    from ragkit.train.export import merge, export_gguf_adapter, verify, resolve_adapter
    merge("runs/lora", "runs/merged")                       # W' = W + B·A·(alpha/r), a transformers dir
    export_gguf_adapter("runs/lora", "runs/lora.gguf")      # next to the unchanged base GGUF
    verify("runs/lora", "runs/lora.gguf")                   # hf+peft vs llama.cpp+adapter, greedy
    resolve_adapter("runs/lora.gguf")                       # ("gguf", Path(...)) or ("peft", Path(...))

GGUF adapter layout (what llama.cpp's llama_adapter_lora_init checks, and what its
convert_lora_to_gguf.py writes): general.architecture equal to the base model's, general.type =
"adapter", adapter.type = "lora", adapter.lora.alpha (f32; llama.cpp scales by alpha / rank); for
every adapted weight a pair `<base tensor name>.lora_a` (numpy shape [rank, in]) and `.lora_b`
([out, rank]), i.e. PEFT's own layouts. Llama-architecture GGUF files store q_proj/k_proj with their
rows permuted (rotary halves interleaved) relative to transformers; B·A is in transformers' row
order, so lora_b of q and k gets the same row permutation (A is untouched: it acts on the input).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from ..errors import ExportError, ModelNotFound, RagkitError, UsageError
from ..extras import require
from ..generate import clear_cache, load_generator
from ..generate.base import Decoding
from ..generate.prompts import answer_stop, format_prompt
from ..lang import detect_language
from ..models import resolve_llm
from .data import load_tokenizer, resolve_base
from .lora import load_model

ADAPTER_META = "ragkit_adapter.json"  # written by `ragkit train` next to the PEFT adapter
PERMUTE_QK_ARCHS = {"llama"}  # GGUF architectures whose converter permutes q/k rows
_MODEL_TYPE_TO_ARCH = {"llama": "llama", "mistral": "llama", "gemma3_text": "gemma3", "gemma3": "gemma3",
                       "gemma2": "gemma2", "gemma": "gemma", "qwen2": "qwen2", "qwen3": "qwen3", "phi3": "phi3"}


# ---------------------------------------------------------------------------- adapters on disk


def _gguf_type(path: Path) -> str | None:
    from gguf import GGUFReader

    try:
        f = GGUFReader(str(path)).fields.get("general.type")
    except (ValueError, OSError):
        return None
    return f.contents() if f is not None else "model"


def resolve_adapter(path: str | Path) -> tuple[str, Path]:
    """("peft", adapter dir) or ("gguf", adapter file) for a path given as --adapter."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"adapter {p} does not exist; train one with `ragkit train` first")
    if p.is_file() and p.name == "adapter_config.json":
        p = p.parent
    if p.is_dir():
        if (p / "adapter_config.json").is_file():
            return "peft", p
        ggufs = [f for f in sorted(p.glob("*.gguf")) if _gguf_type(f) == "adapter"]
        if len(ggufs) == 1:
            return "gguf", ggufs[0]
        raise UsageError(f"{p} holds no adapter_config.json (PEFT) nor a single GGUF LoRA adapter")
    with p.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise UsageError(f"{p} is neither a PEFT adapter directory nor a GGUF LoRA adapter file")
    kind = _gguf_type(p)
    if kind != "adapter":
        raise UsageError(f"{p} is a full GGUF model (general.type={kind}), not a LoRA adapter; pass it as --model")
    return "gguf", p


def write_adapter_meta(out: Path, config, base, style: str, model, train_ex, data_hash: str) -> None:
    """ragkit_adapter.json: what `adapter_meta` reads back (base, prompt style, sample questions)."""
    cfg = model.get_base_model().config
    cfg = getattr(cfg, "text_config", None) or cfg
    samples = []
    for e in train_ex:  # a few distinct trained questions for `export-gguf --verify`
        if len(samples) < 8 and all(s["question"] != e.question for s in samples):
            samples.append({"question": e.question, "answer": e.answer, "lang": e.lang})
    meta = {
        "format": 1, "base": base.spec if base.info is not None and base.spec.lower() == base.info.name else
        str(base.path), "base_path": str(base.path), "base_is_gguf": base.gguf,
        "prompt_style": style, "fewshot_examples": config.fewshot_examples, "model_type": cfg.model_type,
        "n_layers": cfg.num_hidden_layers, "n_head": cfg.num_attention_heads,
        "n_head_kv": getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads,
        "data_sha256": data_hash, "samples": samples,
    }
    (out / ADAPTER_META).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")


def adapter_meta(adapter_dir: str | Path) -> dict:
    """What `ragkit train` recorded about the adapter (base, prompt style, sample questions).

    For a PEFT directory made elsewhere, the base comes from adapter_config.json."""
    d = Path(adapter_dir)
    meta_file = d / ADAPTER_META
    if meta_file.is_file():
        return json.loads(meta_file.read_text(encoding="utf-8"))
    cfg_file = d / "adapter_config.json"
    if not cfg_file.is_file():
        raise UsageError(f"{d} is not a PEFT adapter directory (no adapter_config.json)")
    base = json.loads(cfg_file.read_text()).get("base_model_name_or_path")
    if not base:
        raise UsageError(f"{cfg_file} does not name its base model; pass --base")
    return {"base": base, "base_path": base, "prompt_style": None, "fewshot_examples": 2, "samples": []}


def gguf_adapter_info(path: str | Path) -> dict:
    """The ragkit keys of a GGUF adapter: base (as trained), base_path, prompt_style, alpha."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    out = {}
    for key, name in [("ragkit.base", "base"), ("ragkit.base_path", "base_path"),
                      ("ragkit.prompt_style", "prompt_style"), ("adapter.lora.alpha", "alpha"),
                      ("general.architecture", "architecture")]:
        if key in fields:
            out[name] = fields[key].contents()
    return out


def load_peft(adapter_dir: str | Path, base: str | None = None, device: str = "cpu", dtype=None):
    """(PeftModel in eval mode, tokenizer, meta) for a trained adapter directory."""
    from peft import PeftModel


    meta = adapter_meta(adapter_dir)
    spec = resolve_base(base or meta.get("base_path") or meta["base"])
    tok = load_tokenizer(spec)
    model = load_model(spec, dtype, device)
    model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    meta = {**meta, "base_path": str(spec.path), "base_is_gguf": spec.gguf}
    if not meta.get("prompt_style"):
        meta["prompt_style"] = "chat" if getattr(tok, "chat_template", None) else "fewshot"
    return model, tok, meta


# ---------------------------------------------------------------------------- merge


def merge(adapter_dir: str | Path, out_dir: str | Path, base: str | None = None, dtype: str = "float32") -> dict:
    """Fold the LoRA into the base weights and save a transformers model directory (with tokenizer)."""
    require("train", "ragkit merge")
    import torch

    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in dtypes:
        raise UsageError(f"--dtype must be one of {', '.join(dtypes)}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} is not empty; choose a new --out directory")
    t0 = time.perf_counter()
    model, tok, meta = load_peft(adapter_dir, base)
    merged = model.merge_and_unload()
    # A model loaded from GGUF carries transformers' GGUF "quantizer", which refuses to save;
    # after dequantisation the weights are plain tensors, so drop it.
    if getattr(merged, "hf_quantizer", None) is not None:
        merged.hf_quantizer = None
        merged.is_quantized = False
    if hasattr(merged.config, "quantization_config"):
        del merged.config.quantization_config
    merged.to(dtypes[dtype])
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    info = {"adapter": str(adapter_dir), "base": meta.get("base"), "out": str(out), "dtype": dtype,
            "prompt_style": meta.get("prompt_style"), "seconds": round(time.perf_counter() - t0, 1),
            "size_mb": round(sum(f.stat().st_size for f in out.iterdir() if f.is_file()) / 2**20, 1)}
    (out / "ragkit_merged.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


# ---------------------------------------------------------------------------- GGUF adapter


def permute_qk(w, n_head: int, n_head_kv: int | None = None):
    """The row permutation llama.cpp's converter applies to q_proj/k_proj (numpy or torch, 2-D)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _base_gguf_for(meta: dict, base_gguf: str | Path | None) -> Path | None:
    if base_gguf:
        p = Path(base_gguf).expanduser()
        if not p.is_file():
            raise ModelNotFound(f"base GGUF {p} does not exist")
        return p
    bp = meta.get("base_path")
    if bp and str(bp).lower().endswith(".gguf") and Path(bp).is_file():
        return Path(bp)
    try:  # a bundled name recorded at training time
        _, p = resolve_llm(meta["base"])
        return p if p.suffix.lower() == ".gguf" else None
    except (RagkitError, KeyError):
        return None


def _gguf_hparams(path: Path) -> dict:
    from gguf import GGUFReader

    r = GGUFReader(str(path))
    f = r.fields
    arch = f["general.architecture"].contents()

    def get(key, default=None):
        return f[key].contents() if key in f else default

    return {
        "arch": arch,
        "n_layers": get(f"{arch}.block_count"),
        "n_head": get(f"{arch}.attention.head_count"),
        "n_head_kv": get(f"{arch}.attention.head_count_kv"),
        "shapes": {t.name: [int(x) for x in t.shape] for t in r.tensors},  # ggml ne order
    }


def export_gguf_adapter(
    adapter_dir: str | Path, out_file: str | Path, base_gguf: str | Path | None = None, outtype: str = "f32"
) -> dict:
    """Write the PEFT adapter in `adapter_dir` as a GGUF LoRA adapter for llama.cpp."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    if outtype not in ("f32", "f16"):
        raise UsageError("outtype (--outtype) must be f32 or f16")
    kind, adir = resolve_adapter(adapter_dir)
    if kind != "peft":
        raise UsageError(f"{adapter_dir} is already a GGUF adapter")
    meta = adapter_meta(adir)
    lcfg = json.loads((adir / "adapter_config.json").read_text())
    weights_file = adir / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise ExportError(f"{adir} has no adapter_model.safetensors")
    tensors = load_file(str(weights_file))
    base, hp = _export_target(meta, base_gguf)
    arch_enum = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == hp["arch"]), None)
    if arch_enum is None:
        raise ExportError(f"the gguf package does not know the architecture {hp['arch']!r}")
    names = gguf.get_tensor_name_map(arch_enum, int(hp["n_layers"]))
    rank, alpha = _llamacpp_alpha(lcfg)
    permute = hp["arch"] in PERMUTE_QK_ARCHS
    pairs = _lora_pairs(tensors)
    dt = np.float32 if outtype == "f32" else np.float16
    w = gguf.GGUFWriter(str(out_file), hp["arch"])
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    w.add_string("ragkit.base", str(meta.get("base", "")))
    if base is not None:
        w.add_string("ragkit.base_path", str(base))
    if meta.get("prompt_style"):
        w.add_string("ragkit.prompt_style", meta["prompt_style"])
    written = []
    for hf_name in sorted(pairs, key=_layer_order):
        gname, a, b = _gguf_lora_pair(hf_name, pairs[hf_name], names, hp, base, permute)
        w.add_tensor(gname + ".lora_a", np.ascontiguousarray(a.astype(dt)))
        w.add_tensor(gname + ".lora_b", np.ascontiguousarray(b.astype(dt)))
        written.append(gname)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"adapter": str(adir), "out": str(out_file), "base_gguf": str(base) if base else None,
            "architecture": hp["arch"], "rank": rank, "alpha": alpha, "tensors": len(written) * 2,
            "permuted_qk": permute, "outtype": outtype, "size_mb": round(out_file.stat().st_size / 2**20, 3)}


def _export_target(meta: dict, base_gguf) -> tuple[Path | None, dict]:
    """(base GGUF or None, its hyperparameters): from the base GGUF when there is one, else from
    what ragkit_adapter.json recorded of the model (no tensor shapes to check against then)."""
    base = _base_gguf_for(meta, base_gguf)
    if base is not None:
        return base, _gguf_hparams(base)
    arch = _MODEL_TYPE_TO_ARCH.get(meta.get("model_type", ""), meta.get("model_type"))
    if not arch or not meta.get("n_layers"):
        raise UsageError("the adapter's base is not a GGUF file; pass base_gguf (--base-gguf), the GGUF of the "
                         "same model")
    return None, {"arch": arch, "n_layers": meta["n_layers"], "n_head": meta["n_head"],
                  "n_head_kv": meta["n_head_kv"], "shapes": None}


def _llamacpp_alpha(lcfg: dict) -> tuple[int, float]:
    """(rank, alpha) as llama.cpp applies them: it scales by alpha/rank, so rsLoRA's alpha/sqrt(rank)
    is folded into alpha; per-module patterns have no single GGUF alpha."""
    rank = int(lcfg["r"])
    alpha = float(lcfg["lora_alpha"])
    if lcfg.get("use_rslora"):
        alpha = alpha * math.sqrt(rank)
    if lcfg.get("rank_pattern") or lcfg.get("alpha_pattern"):
        raise ExportError("adapters with per-module rank or alpha patterns cannot be exported to one GGUF alpha")
    return rank, alpha


def _lora_pairs(tensors: dict) -> dict[str, dict]:
    """{HF weight name: {"a": lora_A, "b": lora_B}} from a PEFT state dict."""
    pairs: dict[str, dict] = {}
    for key, arr in tensors.items():
        if ".lora_A." not in key and ".lora_B." not in key:
            raise ExportError(f"the adapter holds {key}, which is not a LoRA A/B weight; it cannot be exported")
        which = "a" if ".lora_A." in key else "b"
        hf_name = key.replace("base_model.model.", "", 1).replace(".lora_A.weight", ".weight").replace(
            ".lora_B.weight", ".weight")
        pairs.setdefault(hf_name, {})[which] = arr
    return pairs


def _gguf_lora_pair(hf_name: str, ab: dict, names, hp: dict, base: Path | None, permute: bool):
    """(llama.cpp tensor name, A, B) for one adapted weight, q/k rows permuted as the converter does,
    checked against the base GGUF's shapes when known."""
    import numpy as np

    if set(ab) != {"a", "b"}:
        raise ExportError(f"the adapter has only one of lora_A/lora_B for {hf_name}")
    gname = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if gname is None:
        raise ExportError(f"no llama.cpp tensor name for {hf_name} in architecture {hp['arch']}")
    a, b = ab["a"].astype(np.float32), ab["b"].astype(np.float32)  # [r, in], [out, r]
    if permute and hf_name.endswith("q_proj.weight"):
        b = permute_qk(b, hp["n_head"], hp["n_head"])
    elif permute and hf_name.endswith("k_proj.weight"):
        b = permute_qk(b, hp["n_head"], hp["n_head_kv"])
    if hp["shapes"] is not None:
        want = hp["shapes"].get(gname)
        if want is None:
            raise ExportError(f"{gname} is not in the base GGUF {base.name}; is it the model the adapter was trained on?")
        if want[:2] != [a.shape[1], b.shape[0]]:
            raise ExportError(f"{gname}: the adapter is for a [{b.shape[0]} x {a.shape[1]}] weight but the base "
                              f"GGUF's is [{want[1]} x {want[0]}]; wrong base model")
    return gname, a, b


def _layer_order(name: str):
    parts = name.split(".")
    nums = [int(p) for p in parts if p.isdigit()]
    return (nums[0] if nums else -1, name)


# ---------------------------------------------------------------------------- verify


def verify(
    adapter_dir: str | Path,
    gguf_adapter: str | Path,
    base_gguf: str | Path | None = None,
    questions: list[str] | None = None,
    max_tokens: int = 32,
) -> dict:
    """Greedy answers from hf+peft and from llama.cpp with the GGUF adapter, side by side.

    Both go through `ragkit.generate.load_generator`, the path `ragkit ask --adapter` takes, and each
    renders its own prompt (HF chat template vs the GGUF's template in llama.cpp), so the check
    covers prompt agreement too. Questions default to the trained ones in ragkit_adapter.json. The
    bare base GGUF is decoded as well, to show that the adapter changes llama.cpp's output at all.
    """

    adapter_dir = Path(adapter_dir)
    meta = adapter_meta(adapter_dir)
    base = _base_gguf_for(meta, base_gguf)
    if base is None:
        raise UsageError("verification needs the base model as GGUF; pass --base-gguf")
    qs = questions or [s["question"] for s in meta.get("samples", [])][:5]
    if not qs:
        raise UsageError("no questions to verify with: the adapter records none; pass some")
    style = meta.get("prompt_style")
    n_ex = meta.get("fewshot_examples", 2)
    hf_base = meta.get("base_path") or str(base)

    def answers(gen) -> tuple[list[str], list[str]]:
        dec = Decoding(max_tokens=max_tokens, stop=answer_stop(gen.prompt_style))
        prompts = [format_prompt(q, None, gen.prompt_style, detect_language(q), gen.render_chat, n_ex) for q in qs]
        return [gen.generate(p, dec).text.strip() for p in prompts], prompts

    try:
        hf, hf_prompts = answers(load_generator(hf_base, "hf", adapter=str(adapter_dir), prompt_style=style))
        clear_cache()
        lc, lc_prompts = answers(load_generator(str(base), "llamacpp", adapter=str(gguf_adapter), prompt_style=style))
        clear_cache()
        bare, _ = answers(load_generator(str(base), "llamacpp", prompt_style=style))
    finally:
        clear_cache()
    rows = [{"question": q, "hf_peft": h, "llamacpp_lora": lora, "llamacpp_base": b, "agree": h == lora}
            for q, h, lora, b in zip(qs, hf, lc, bare)]
    return {
        "prompts": len(rows),
        "agreement": round(sum(r["agree"] for r in rows) / len(rows), 3),
        "same_prompt_text": sum(a == b for a, b in zip(hf_prompts, lc_prompts)),
        "adapter_changed_output": sum(r["llamacpp_lora"] != r["llamacpp_base"] for r in rows),
        "base_gguf": str(base),
        "rows": rows,
    }
