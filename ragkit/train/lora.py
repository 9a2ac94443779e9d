"""The model side of `ragkit train`: pick the device and precision, load the base, estimate the
memory a step needs, wrap it in a peft LoRA, the learning-rate schedule, and the loss on answer
tokens (with the two CPU savings described in train.py)."""

from __future__ import annotations

import math
import warnings

from ..errors import ModelNotFound, OutOfMemory, UsageError
from .data import IGNORE, BaseSpec

# peft still calls a transformers method that 5.x renamed (train and merge both hit it); the
# warning tells a user nothing they can act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)


# ---------------------------------------------------------------------------- the base model


def load_model(base: BaseSpec, dtype=None, device: str = "cpu", quantization_config=None):
    import torch
    from transformers import AutoModelForCausalLM

    kw = {"dtype": dtype or torch.float32, "local_files_only": True}
    if base.gguf:
        kw["gguf_file"] = base.path.name
    if quantization_config is not None:
        kw.update(quantization_config=quantization_config, device_map={"": device})
    try:
        model = AutoModelForCausalLM.from_pretrained(str(base.path.parent if base.gguf else base.path), **kw)
    except (OSError, ValueError) as e:
        raise ModelNotFound(f"transformers could not load {base.path}: {str(e).splitlines()[0]}") from e
    return model if quantization_config is not None else model.to(device)


# ---------------------------------------------------------------------------- device, schedule


def lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return f


def device_and_precision(config):
    import torch

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("device cuda (--device) was asked for but torch sees no CUDA GPU")
    p = config.precision
    if p == "auto":
        p = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device.startswith("cuda") else "fp32"
    if p == "fp16" and not device.startswith("cuda"):
        raise UsageError("fp16 training needs a CUDA GPU; on CPU use fp32 (or bf16 where the CPU supports it)")
    if config.load_in_4bit and not device.startswith("cuda"):
        raise UsageError("4-bit QLoRA (load_in_4bit, --qlora) needs a CUDA GPU (bitsandbytes); on CPU train in "
                         "fp32 without it")
    return device, p, {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[p]


# ---------------------------------------------------------------------------- memory


def _available_bytes(device: str) -> int | None:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return None


def check_memory(need: int, device: str, what: str) -> None:
    avail = _available_bytes(device)
    if avail is not None and need > avail:
        raise OutOfMemory(
            f"{what} needs about {need / 2**30:.1f} GiB but only {avail / 2**30:.1f} GiB is free on {device}; "
            "lower --batch-size or --max-len, add --gradient-checkpointing, or use a smaller base"
        )


def training_bytes(model, batch: int, seq: int, bytes_per: int, checkpointing: bool, loaded: bool = False) -> int:
    """Rough peak memory of one step: weights, LoRA state and the activations kept for backward;
    with `loaded`, what is still to be allocated once the weights are in memory (what to compare
    with the memory free after loading: counting the weights twice refused a 1.5B on 24 GB).

    Frozen weights need no saved inputs, so a layer keeps about 10 hidden-size and 4 MLP-size values
    per token (norms, q/k/v, LoRA dropout, MLP gates); SDPA keeps no attention matrix. Calibrated on
    SmolLM2-135M: batch 8 x 502 tokens estimated 8.5 GB, measured peak RSS 8.0 GB.
    """
    cfg = getattr(model.config, "text_config", None) or model.config
    h, layers = cfg.hidden_size, cfg.num_hidden_layers
    inter = getattr(cfg, "intermediate_size", 4 * h)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) * 16
    per_layer = batch * seq * (10 * h + 4 * inter) * bytes_per
    acts = (batch * seq * h * bytes_per * layers + per_layer) if checkpointing else per_layer * layers
    return int((0 if loaded else weights) + trainable + 1.2 * acts + 2**30)


def is_oom(e: BaseException) -> bool:
    import torch

    msg = str(e).lower()
    return isinstance(e, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(e, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg))


# ---------------------------------------------------------------------------- LoRA and loss


def check_targets(model, targets) -> None:
    import torch

    if targets == "all-linear":
        return
    names = [n for n, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head")})
        raise UsageError(f"target module {', '.join(missing)} is not in this model; its linear layers are: "
                         f"{', '.join(linear)} (or use --target-modules all-linear)")


def add_lora(model, config):
    from peft import LoraConfig, get_peft_model

    check_targets(model, config.target_modules)
    return get_peft_model(model, LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                            target_modules=config.target_modules, bias="none", task_type="CAUSAL_LM"))


def split_model(peft_model):
    """(decoder, output head, softcap) of the wrapped causal LM, or None when its layout is unknown."""
    inner = peft_model.get_base_model()
    decoder = getattr(inner, "model", None)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    if decoder is None or head is None:
        return None
    cfg = getattr(inner.config, "text_config", None) or inner.config
    return decoder, head, getattr(cfg, "final_logit_softcapping", None)


def _prefix_hidden(decoder, batch, p: int):
    """Hidden states of positions p.. of every row, the first p tokens (equal in all rows) run once."""
    import torch

    ids = batch["input_ids"]
    kw = _cache_kwarg(decoder)
    cache = getattr(decoder(input_ids=ids[:1, :p], use_cache=True), kw)
    cache.batch_repeat_interleave(ids.shape[0])
    pos = torch.arange(p, ids.shape[1], device=ids.device).unsqueeze(0).expand(ids.shape[0], -1)
    out = decoder(input_ids=ids[:, p:], attention_mask=batch["attention_mask"], position_ids=pos, use_cache=True,
                  **{kw: cache})
    return out.last_hidden_state


def _cache_kwarg(decoder) -> str:
    """The KV-cache argument's name: `cache` since transformers 5.x deprecated `past_key_values`."""
    import inspect

    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def loss_sum(peft_model, batch, split=None, prefix: int = 0):
    """(summed cross-entropy over answer tokens, their number) for one micro-batch.

    With `split` the head runs on answer positions only, and with `prefix` > 0 the first `prefix`
    tokens (shared by all rows, all prompt) run once; without `split`, the model's own forward.
    """
    import torch
    import torch.nn.functional as F

    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE  # position i predicts token i + 1
    targets = labels[keep]
    if split is None:
        out = peft_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
        logits = out.logits[:, :-1][keep]
    else:
        decoder, head, cap = split
        if prefix:
            hidden, keep = _prefix_hidden(decoder, batch, prefix)[:, :-1], keep[:, prefix:]
        else:
            out = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
            hidden = out.last_hidden_state[:, :-1]
        logits = head(hidden[keep])
        if cap:
            logits = torch.tanh(logits / cap) * cap
    return F.cross_entropy(logits.float(), targets, reduction="sum"), int(targets.numel())


def fast_paths(peft_model, batch, prefix: int) -> tuple[object, bool]:
    """(split or None, whether prefix sharing is exact): each kept only if it matches the plain forward."""
    import torch

    split = split_model(peft_model)
    if split is None:
        return None, False
    was = peft_model.training
    peft_model.eval()
    try:
        with torch.no_grad():
            ref, _ = loss_sum(peft_model, batch, None)
            if not torch.allclose(loss_sum(peft_model, batch, split)[0], ref, rtol=1e-3, atol=1e-3):
                return None, False
            try:
                shared = prefix > 0 and torch.allclose(loss_sum(peft_model, batch, split, prefix)[0], ref,
                                                       rtol=1e-3, atol=1e-3)
            except (AttributeError, TypeError, ValueError, RuntimeError):
                shared = False  # an architecture whose cache cannot be reused this way
    finally:
        peft_model.train(was)
    return split, shared
