"""LoRA SFT for `ragkit train`: a plain torch + peft training loop, no HF Trainer.

    from ragkit.sft.train import TrainConfig, train
    summary = train(TrainConfig(data="sft.jsonl", base="smollm2-135m", out="runs/lora"))

In order: read the data (data.py renders every question with the prompt `ragkit ask` uses), resolve
the base (a bundled name, a GGUF file dequantised by transformers' `gguf_file=`, or an HF
directory), check the memory it will need, wrap it in a peft LoRA, then per epoch run length-grouped
micro-batches with gradient accumulation, AdamW, linear warm-up and cosine decay, evaluate on a
held-out slice, checkpoint. Two savings keep CPU training fast, both checked against the plain
forward on the first batch and dropped if they disagree:
- the output head runs on answer positions only (the loss ignores the prompt's logits anyway);
- the prompt prefix every example of a language shares (system prompt, chat template, few-shot
  examples; a third of the tokens on the sample data) is computed once per micro-batch, and its
  keys/values reused by every row.

Output directory: the adapter (adapter_config.json, adapter_model.safetensors), ragkit_adapter.json
(base, prompt style, a few trained questions for `export-gguf --verify`), train_summary.json, and
checkpoints/ (one per epoch, plus the newest --save-every one) for --resume.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ..errors import OutOfMemory, UsageError
from ..progress import NullProgress, Progress
from ..settings import CommaList, Settings
from .checkpoints import latest_checkpoint, load_checkpoint, prune_step_checkpoints, save_checkpoint
from .data import (
    IGNORE,
    collate,
    encode_all,
    length_grouped_batches,
    load_tokenizer,
    prompt_format,
    prompt_style_for,
    resolve_base,
    select_examples,
    shared_prefixes,
)
from .export import write_adapter_meta
from .lora import add_lora, check_memory, fast_paths, is_oom, load_model, loss_sum, training_bytes

SUMMARY = "train_summary.json"
_RESUME_KEYS = ("base", "prompt_style", "fewshot_examples", "languages", "rank", "alpha", "dropout",
                "target_modules", "batch_size", "grad_accum", "max_len", "seed", "lr", "eval_fraction")


class TrainOptions(Settings):
    """Everything about a training run but its data, base and output (an experiment's
    `train.options`, `ragkit train`'s options): the one place their defaults live."""

    eval_data: str | None = None
    eval_fraction: float = 0.05  # held-out slice when no eval_data (none under 20 examples)
    languages: CommaList | None = None  # question languages to keep; None: a bundled model's own; ["all"]
    prompt_style: Literal["chat", "fewshot"] | None = None  # None: the model's (chat template → chat)
    fewshot_examples: int = 2  # worked examples in few-shot prompts, as `ragkit ask` uses
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: list[str] | str = Field(default_factory=lambda: ["q_proj", "v_proj"])
    epochs: int = 3
    lr: float = 2e-4
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    batch_size: int = 8
    grad_accum: int | None = None  # None: enough micro-batches for an effective batch of 16
    max_len: int = 512
    max_grad_norm: float = 1.0
    seed: int = 0
    gradient_checkpointing: bool = False
    share_prefix: bool = True  # compute the shared prompt prefix once per micro-batch
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # bf16/fp16: autocast, CUDA
    load_in_4bit: bool = False  # QLoRA (bitsandbytes, CUDA)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # CPU threads; None: all cores
    early_stopping: int | None = None  # stop after N epochs without a better eval loss; keep the best
    resume: bool = False
    save_every: int | None = None  # also checkpoint every N optimizer steps
    max_steps: int | None = None  # stop after N optimizer steps (smoke tests, benchmarks)

    @model_validator(mode="after")
    def _check(self):
        if isinstance(self.target_modules, str):
            t = self.target_modules.strip()
            self.target_modules = t if t == "all-linear" else [m.strip() for m in t.split(",") if m.strip()]
        self.languages = self.languages or None
        checks = [
            (bool(self.target_modules), "target_modules is empty; use e.g. q_proj,v_proj or all-linear"),
            (self.rank >= 1, "rank must be >= 1"),
            (self.alpha > 0, "alpha must be > 0"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.lr > 0, "learning rate must be > 0"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.grad_accum is None or self.grad_accum >= 1, "grad_accum must be >= 1"),
            (self.max_len >= 16, "max_len must be >= 16"),
            (0 <= self.eval_fraction < 0.5, "eval_fraction must be in [0, 0.5)"),
            (0 <= self.fewshot_examples <= 3, "fewshot_examples must be between 0 and 3"),
            (not self.languages or self.languages == ["all"] or set(self.languages) <= {"en", "zh"},
             "languages must be en and/or zh, or all"),
            (self.early_stopping is None or self.early_stopping >= 1, "early_stopping must be >= 1"),
            (self.save_every is None or self.save_every >= 1, "save_every must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        if self.grad_accum is None:
            self.grad_accum = max(1, math.ceil(16 / self.batch_size))
        return self


class TrainConfig(TrainOptions):
    data: str
    base: str
    out: str


def lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return f


# ---------------------------------------------------------------------------- training


def _device_and_precision(config: TrainConfig):
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
        raise UsageError("4-bit QLoRA (load_in_4bit, --qlora) needs a CUDA GPU (bitsandbytes); on CPU train in fp32 without it")
    return device, p, {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[p]


def _eval_loss(model, items, batch_size, pad_id, device, autocast, split) -> float | None:
    import torch

    if not items:
        return None
    model.eval()
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    total, count = 0.0, 0
    with torch.no_grad(), autocast():
        for s in range(0, len(order), batch_size):
            b = collate([items[i] for i in order[s:s + batch_size]], pad_id)
            loss, n = loss_sum(model, {k: v.to(device) for k, v in b.items()}, split)
            total, count = total + float(loss), count + n
    model.train()
    return round(total / max(1, count), 4)


def train(config: TrainConfig, progress: Progress | None = None) -> dict:
    """Train a LoRA adapter into config.out and return the summary written to train_summary.json."""
    import contextlib
    import sys

    if "torch" not in sys.modules:
        # libgomp busy-waits by default: on shared or oversubscribed cores a 2-thread step then runs
        # many times slower (measured here: 140 s instead of 5 s for one tiny run). Set before torch loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    progress = progress or NullProgress()
    t_start = time.perf_counter()
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"out (--out) {out} is a file; give a directory")
    ckpt = latest_checkpoint(out) if out.is_dir() else None
    if ckpt is not None and not config.resume:
        raise UsageError(f"{out} already holds a training run; resume it (resume=True, --resume) or choose another out directory")
    base = resolve_base(config.base)
    train_ex, eval_ex, examples, data_hash, eval_hash = select_examples(config, progress, base)  # fails fast
    device, precision, amp_dtype = _device_and_precision(config)
    threads = config.threads or os.cpu_count() or 1
    if device == "cpu":
        torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    random.seed(config.seed)

    if base.gguf:
        from gguf import GGUFReader

        n_params = sum(int(t.n_elements) for t in GGUFReader(str(base.path)).tensors)
        check_memory(int(n_params * 4 * 1.3) + 2**29, device, f"loading {base.path.name}")
    progress.message(f"loading {base.spec} ({base.path.name})")
    tokenizer = load_tokenizer(base)
    style = prompt_style_for(base, tokenizer, config.prompt_style)
    fmt = prompt_format(style, tokenizer, config.fewshot_examples)
    train_items, dropped = encode_all(tokenizer, fmt, train_ex, config.max_len)
    eval_items, eval_dropped = encode_all(tokenizer, fmt, eval_ex, config.max_len)
    if not train_items:
        raise UsageError(f"every prompt is longer than max_len (--max-len) {config.max_len} tokens; raise it")

    qcfg = None
    if config.load_in_4bit:
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise UsageError("4-bit QLoRA needs bitsandbytes: pip install bitsandbytes")
        from transformers import BitsAndBytesConfig

        qcfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=amp_dtype or torch.bfloat16)
    try:
        model = load_model(base, amp_dtype if device.startswith("cuda") and amp_dtype else torch.float32, device, qcfg)
    except RuntimeError as e:
        if is_oom(e):
            raise OutOfMemory(f"{base.spec} does not fit in the memory of {device}") from e
        raise
    model.config.use_cache = False
    if qcfg is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = add_lora(model, config)
    longest = max(len(e.input_ids) for e in train_items)
    check_memory(training_bytes(model, config.batch_size, longest, 2 if amp_dtype else 4,
                                config.gradient_checkpointing), device,
                 f"training at batch {config.batch_size} x {longest} tokens")

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(math.ceil(len(train_items) / config.batch_size) / config.grad_accum)
    total_steps = min(steps_per_epoch * config.epochs, config.max_steps or 1 << 62)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(max(1, round(config.warmup_ratio * total_steps)), total_steps))
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.split(":")[0], dtype=amp_dtype)

    fingerprint = {**{k: getattr(config, k) for k in _RESUME_KEYS}, "prompt_style": style,
                   "data_hash": data_hash, "eval_hash": eval_hash}
    state = {"epoch": 0, "next_group": 0, "global_step": 0, "step_losses": [], "epoch_losses": [],
             "eval_losses": [], "tokens": 0, "padded_tokens": 0, "target_tokens": 0, "train_seconds": 0.0,
             "best_eval": None, "best_epoch": None, "bad_epochs": 0, "stopped_early": False,
             "epoch_loss_sum": 0.0, "epoch_loss_n": 0, "fingerprint": fingerprint}
    if config.resume and ckpt is None:
        progress.message(f"no checkpoint in {out}; starting from the beginning")
    if ckpt is not None:
        saved = json.loads((ckpt / "state.json").read_text())["fingerprint"]
        diff = [k for k, v in fingerprint.items() if saved.get(k) != v]
        if diff:
            raise UsageError(f"the checkpoint in {out} was made with other settings ({diff[0]}: "
                             f"{saved.get(diff[0])!r}, now {fingerprint[diff[0]]!r}); use the same settings "
                             "or another --out")
        state = load_checkpoint(ckpt, model, optimizer, scheduler, scaler)
        progress.message(f"resuming from {ckpt.name} (step {state['global_step']})")
    out.mkdir(parents=True, exist_ok=True)
    write_adapter_meta(out, config, base, style, model, train_ex, data_hash)

    pad_id = tokenizer.pad_token_id
    lengths = [len(e.input_ids) for e in train_items]
    groups = [e.group for e in train_items]
    prefixes = shared_prefixes(train_items, groups)
    probe_group = max(prefixes, key=lambda g: (groups.count(g), g))
    probe = [e for e in train_items if e.group == probe_group][:4]
    split, shared = fast_paths(model, {k: v.to(device) for k, v in collate(probe, pad_id).items()},
                                prefixes[probe_group] if config.share_prefix and not config.gradient_checkpointing
                                else 0)
    if not shared:
        prefixes = dict.fromkeys(prefixes, 0)
    model.train()
    epoch = state["epoch"]
    done = state["global_step"] >= total_steps
    try:
        while epoch < config.epochs and not done and not state["stopped_early"]:
            batches = length_grouped_batches(lengths, config.batch_size, config.seed * 1000 + epoch, groups)
            steps = [batches[i:i + config.grad_accum] for i in range(0, len(batches), config.grad_accum)]
            start = state["next_group"] if state["epoch"] == epoch else 0
            if start >= len(steps):  # resumed from an epoch's end checkpoint
                epoch += 1
                state.update(epoch=epoch, next_group=0)
                continue
            if not start:
                state.update(epoch_loss_sum=0.0, epoch_loss_n=0)
            progress.stage(f"epoch {epoch + 1}/{config.epochs}", len(steps))
            progress.advance(start)
            for si in range(start, len(steps)):
                t0 = time.perf_counter()
                micro = [(collate([train_items[i] for i in b], pad_id), prefixes[groups[b[0]]]) for b in steps[si]]
                n_target = sum(int((m["labels"][:, 1:] != IGNORE).sum()) for m, _ in micro)
                step_loss = 0.0
                for m, prefix in micro:
                    m = {k: v.to(device) for k, v in m.items()}
                    with autocast():
                        loss, _ = loss_sum(model, m, split, prefix)
                    scaled = loss / max(1, n_target)
                    (scaler.scale(scaled) if scaler else scaled).backward()
                    step_loss += float(loss.detach())
                    state["tokens"] += int(m["attention_mask"].sum())
                    state["padded_tokens"] += int(m["input_ids"].numel())
                if scaler:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["train_seconds"] += time.perf_counter() - t0
                state["global_step"] += 1
                state["next_group"], state["epoch"] = si + 1, epoch
                state["target_tokens"] += n_target
                state["epoch_loss_sum"] += step_loss
                state["epoch_loss_n"] += n_target
                state["step_losses"].append(round(step_loss / max(1, n_target), 4))
                progress.advance(1, loss=f"{state['step_losses'][-1]:.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}",
                                 tok_s=f"{state['tokens'] / max(1e-9, state['train_seconds']):.0f}")
                done = state["global_step"] >= total_steps
                if config.save_every and state["global_step"] % config.save_every == 0 and si + 1 < len(steps):
                    save_checkpoint(out / "checkpoints" / f"step-{state['global_step']:06d}", model, optimizer,
                                     scheduler, scaler, state)
                    prune_step_checkpoints(out, keep=f"step-{state['global_step']:06d}")
                if done:
                    break
            progress.done()
            _end_epoch(state, epoch, config,
                       _eval_loss(model, eval_items, config.batch_size * 2, pad_id, device, autocast, split), progress)
            save_checkpoint(out / "checkpoints" / f"epoch-{epoch + 1}", model, optimizer, scheduler, scaler, state)
            prune_step_checkpoints(out, keep=None)
            epoch += 1
            state.update(epoch=epoch, next_group=0)
    except (RuntimeError, MemoryError) as e:
        if is_oom(e):
            raise OutOfMemory(
                f"training ran out of memory on {device} at batch {config.batch_size}; lower --batch-size "
                "or --max-len, or add --gradient-checkpointing (completed epochs are checkpointed)"
            ) from e
        raise

    # The adapter the user gets: the best eval epoch under early stopping, else the last state.
    best = state["best_epoch"]
    if config.early_stopping and best and (out / "checkpoints" / f"epoch-{best}").is_dir():
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(out / "checkpoints" / f"epoch-{best}" /
                                                       "adapter_model.safetensors")))
    model.save_pretrained(str(out))
    acfg = json.loads((out / "adapter_config.json").read_text())
    acfg["base_model_name_or_path"] = str(base.path)
    (out / "adapter_config.json").write_text(json.dumps(acfg, indent=2))

    secs = max(1e-9, state["train_seconds"])
    summary = {
        "config": config.model_dump(),
        "base": {"spec": base.spec, "path": str(base.path), "gguf": base.gguf, "prompt_style": style},
        "data": {"file": str(config.data), "sha256": data_hash, "eval_file": config.eval_data,
                 "eval_sha256": eval_hash, "examples": len(examples), "train_examples": len(train_items),
                 "eval_examples": len(eval_items), "dropped_too_long": dropped + eval_dropped,
                 "languages": {g: groups.count(g) for g in sorted(set(groups))},
                 "tokens_per_epoch": sum(lengths), "answer_tokens_per_epoch": sum(e.n_target for e in train_items)},
        "device": device, "precision": precision, "threads": threads if device == "cpu" else None,
        "trainable_params": sum(p.numel() for p in trainable),
        "steps": state["global_step"], "steps_planned": total_steps, "epochs_completed": len(state["epoch_losses"]),
        "stopped_early": state["stopped_early"], "best_epoch": best,
        "losses": {"step": state["step_losses"], "epoch_train": state["epoch_losses"],
                   "epoch_eval": state["eval_losses"]},
        "seconds": round(time.perf_counter() - t_start, 1), "train_seconds": round(secs, 1),
        "tokens": state["tokens"], "tokens_per_s": round(state["tokens"] / secs, 1),
        "padded_tokens_per_s": round(state["padded_tokens"] / secs, 1),
        "answer_tokens_per_s": round(state["target_tokens"] / secs, 1),
        "answer_only_head": split is not None, "shared_prefix_tokens": {g: n for g, n in prefixes.items() if n},
        "adapter_size_mb": round((out / "adapter_model.safetensors").stat().st_size / 2**20, 3),
        "peak_rss_mb": _peak_rss_mb(), "resumed": ckpt is not None,
    }
    (out / SUMMARY).write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    return summary


def _end_epoch(state: dict, epoch: int, config: TrainConfig, ev: float | None, progress) -> None:
    """Record the epoch's losses; decide early stopping."""
    state["epoch_losses"].append(round(state["epoch_loss_sum"] / max(1, state["epoch_loss_n"]), 4))
    state["eval_losses"].append(ev)
    msg = f"epoch {epoch + 1}: train loss {state['epoch_losses'][-1]:.4f}"
    if ev is not None:
        msg += f", eval loss {ev:.4f}"
        if state["best_eval"] is None or ev < state["best_eval"]:
            state.update(best_eval=ev, best_epoch=epoch + 1, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
            if config.early_stopping and state["bad_epochs"] >= config.early_stopping:
                state["stopped_early"] = True
                msg += f"; no better for {state['bad_epochs']} epoch(s), stopping"
    progress.message(msg)


def _peak_rss_mb() -> float | None:
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except (ImportError, OSError):
        return None
