"""The training loop of `ragkit train` as a recipe, the way torchtune splits one: `setup` (data,
model, optimizer, resume), `train_epoch` (one pass of optimizer steps), `save_checkpoint`, and
`summary` (the adapter the user gets, and train_summary.json). ragkit.train.train.train() runs it;
the loop itself is described there.

What a checkpoint must carry to resume exactly (the loop's counters, losses and early-stopping
record) is one object, TrainState, written to each checkpoint's state.json.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import OutOfMemory, UsageError
from ..progress import Progress
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
from .lora import (
    add_lora,
    check_memory,
    device_and_precision,
    fast_paths,
    is_oom,
    load_model,
    loss_sum,
    lr_lambda,
    training_bytes,
)

SUMMARY = "train_summary.json"
RESUME_KEYS = ("base", "prompt_style", "fewshot_examples", "languages", "rank", "alpha", "dropout",
               "target_modules", "batch_size", "grad_accum", "max_len", "seed", "lr", "eval_fraction")
# Memory a GGUF base needs to load: transformers dequantises it to float32 (4 bytes a weight) and
# holds copies while converting. Measured here for SmolLM2-135M (134.5M weights, 513 MiB in fp32):
# loading raised peak RSS by 779 MiB (1.5x the fp32 size). 1.3x plus 512 MiB estimates 1179 MiB,
# above that, with the headroom also covering the tokenizer and the first batch.
LOAD_OVERHEAD, LOAD_HEADROOM = 1.3, 2**29
EFFECTIVE_BATCH = 16  # examples per optimizer step when grad_accum is not given


@dataclass
class TrainState:
    """The loop's progress, as state.json of a checkpoint records it (resume restores it whole)."""

    fingerprint: dict
    epoch: int = 0
    next_group: int = 0  # the next optimizer step of `epoch` to run
    global_step: int = 0
    step_losses: list = field(default_factory=list)
    epoch_losses: list = field(default_factory=list)
    eval_losses: list = field(default_factory=list)
    tokens: int = 0
    padded_tokens: int = 0
    target_tokens: int = 0
    train_seconds: float = 0.0
    best_eval: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    epoch_loss_sum: float = 0.0
    epoch_loss_n: int = 0


class LoRARecipe:
    """One training run: setup(), then train_epoch() until done, then summary()."""

    def __init__(self, config, progress: Progress):
        self.config, self.progress = config, progress
        self.out = Path(config.out)
        self.t_start = time.perf_counter()

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        import torch

        config, out = self.config, self.out
        if out.exists() and not out.is_dir():
            raise UsageError(f"out (--out) {out} is a file; give a directory")
        self.ckpt = latest_checkpoint(out) if out.is_dir() else None
        if self.ckpt is not None and not config.resume:
            raise UsageError(f"{out} already holds a training run; resume it (resume=True, --resume) or choose "
                             "another out directory")
        self.base = resolve_base(config.base)
        self.train_ex, self.eval_ex, self.examples, self.data_hash, self.eval_hash = select_examples(
            config, self.progress, self.base)  # fails fast, before the model loads
        self.device, self.precision, self.amp_dtype = device_and_precision(config)
        self.threads = config.threads or os.cpu_count() or 1
        if self.device == "cpu":
            torch.set_num_threads(self.threads)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self._encode()
        self._load_model()
        self._make_optimizer()
        self._restore()
        out.mkdir(parents=True, exist_ok=True)
        write_adapter_meta(out, config, self.base, self.style, self.model, self.train_ex, self.data_hash)
        self._probe_fast_paths()
        self.model.train()

    def _encode(self) -> None:
        config, base = self.config, self.base
        if base.gguf:
            from gguf import GGUFReader

            n_params = sum(int(t.n_elements) for t in GGUFReader(str(base.path)).tensors)
            check_memory(int(n_params * 4 * LOAD_OVERHEAD) + LOAD_HEADROOM, self.device, f"loading {base.path.name}")
        self.progress.message(f"loading {base.spec} ({base.path.name})")
        self.tokenizer = load_tokenizer(base)
        self.style = prompt_style_for(base, self.tokenizer, config.prompt_style)
        fmt = prompt_format(self.style, self.tokenizer, config.fewshot_examples, getattr(base.info, "max_passages", None))
        self.train_items, self.dropped = encode_all(self.tokenizer, fmt, self.train_ex, config.max_len)
        self.eval_items, self.eval_dropped = encode_all(self.tokenizer, fmt, self.eval_ex, config.max_len)
        if not self.train_items:
            raise UsageError(f"every prompt is longer than max_len (--max-len) {config.max_len} tokens; raise it")

    def _load_model(self) -> None:
        import torch

        config, base, device, amp_dtype = self.config, self.base, self.device, self.amp_dtype
        qcfg = None
        if config.load_in_4bit:
            import importlib.util

            if importlib.util.find_spec("bitsandbytes") is None:
                raise UsageError("4-bit QLoRA needs bitsandbytes: pip install bitsandbytes")
            from transformers import BitsAndBytesConfig

            qcfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=amp_dtype or torch.bfloat16)
        try:
            model = load_model(base, amp_dtype if device.startswith("cuda") and amp_dtype else torch.float32, device,
                               qcfg)
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
        self.model = add_lora(model, config)
        longest = max(len(e.input_ids) for e in self.train_items)
        check_memory(training_bytes(self.model, config.batch_size, longest, 2 if amp_dtype else 4,
                                    config.gradient_checkpointing, loaded=True), device,
                     f"training at batch {config.batch_size} x {longest} tokens")

    def _make_optimizer(self) -> None:
        import torch

        config = self.config
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=config.lr, weight_decay=config.weight_decay)
        steps_per_epoch = math.ceil(math.ceil(len(self.train_items) / config.batch_size) / config.grad_accum)
        self.total_steps = min(steps_per_epoch * config.epochs, config.max_steps or 1 << 62)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(max(1, round(config.warmup_ratio * self.total_steps)), self.total_steps))
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None

    def _restore(self) -> None:
        """A fresh state, or the newest checkpoint's when resuming (made with the same settings)."""
        config, out, ckpt = self.config, self.out, self.ckpt
        fingerprint = {**{k: getattr(config, k) for k in RESUME_KEYS}, "prompt_style": self.style,
                       "data_hash": self.data_hash, "eval_hash": self.eval_hash}
        self.state = TrainState(fingerprint=fingerprint)
        if config.resume and ckpt is None:
            self.progress.message(f"no checkpoint in {out}; starting from the beginning")
        if ckpt is None:
            return
        saved = json.loads((ckpt / "state.json").read_text())["fingerprint"]
        diff = [k for k, v in fingerprint.items() if saved.get(k) != v]
        if diff:
            raise UsageError(f"the checkpoint in {out} was made with other settings ({diff[0]}: "
                             f"{saved.get(diff[0])!r}, now {fingerprint[diff[0]]!r}); use the same settings "
                             "or another out directory")
        self.state = TrainState(**load_checkpoint(ckpt, self.model, self.optimizer, self.scheduler, self.scaler))
        self.progress.message(f"resuming from {ckpt.name} (step {self.state.global_step})")

    def _probe_fast_paths(self) -> None:
        """Check the answer-only head and the shared prefix against the plain forward on one batch."""
        config = self.config
        self.pad_id = self.tokenizer.pad_token_id
        self.lengths = [len(e.input_ids) for e in self.train_items]
        self.groups = [e.group for e in self.train_items]
        prefixes = shared_prefixes(self.train_items, self.groups)
        probe_group = max(prefixes, key=lambda g: (self.groups.count(g), g))
        probe = [e for e in self.train_items if e.group == probe_group][:4]
        use_prefix = config.share_prefix and not config.gradient_checkpointing
        self.split, shared = fast_paths(self.model, self.to_device(collate(probe, self.pad_id)),
                                        prefixes[probe_group] if use_prefix else 0)
        self.prefixes = prefixes if shared else dict.fromkeys(prefixes, 0)

    # ------------------------------------------------------------------ the loop

    def to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) for k, v in batch.items()}

    def autocast(self):
        import torch

        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.split(":")[0], dtype=self.amp_dtype)

    @property
    def finished(self) -> bool:
        s = self.state
        return s.epoch >= self.config.epochs or s.global_step >= self.total_steps or s.stopped_early

    def train(self) -> None:
        try:
            while not self.finished:
                self.train_epoch()
        except (RuntimeError, MemoryError) as e:
            if is_oom(e):
                raise OutOfMemory(
                    f"training ran out of memory on {self.device} at batch {self.config.batch_size}; lower "
                    "batch_size or max_len (--batch-size, --max-len), or add gradient checkpointing "
                    "(--gradient-checkpointing); completed epochs are checkpointed"
                ) from e
            raise

    def train_epoch(self) -> None:
        """Run the rest of epoch `state.epoch`, evaluate, checkpoint, and move to the next epoch."""
        config, state, epoch = self.config, self.state, self.state.epoch
        batches = length_grouped_batches(self.lengths, config.batch_size, config.seed * 1000 + epoch, self.groups)
        steps = [batches[i:i + config.grad_accum] for i in range(0, len(batches), config.grad_accum)]
        start = state.next_group
        if start >= len(steps):  # resumed from an epoch's end checkpoint
            state.epoch, state.next_group = epoch + 1, 0
            return
        if not start:
            state.epoch_loss_sum, state.epoch_loss_n = 0.0, 0
        self.progress.stage(f"epoch {epoch + 1}/{config.epochs}", len(steps))
        self.progress.advance(start)
        for si in range(start, len(steps)):
            self.optimizer_step(steps[si])
            state.next_group = si + 1
            done = state.global_step >= self.total_steps
            if config.save_every and state.global_step % config.save_every == 0 and si + 1 < len(steps):
                name = f"step-{state.global_step:06d}"
                self.save_checkpoint(name)
                prune_step_checkpoints(self.out, keep=name)
            if done:
                break
        self.progress.done()
        ev = self.eval_loss()
        self.end_epoch(ev)
        self.save_checkpoint(f"epoch-{epoch + 1}")
        prune_step_checkpoints(self.out, keep=None)
        state.epoch, state.next_group = epoch + 1, 0

    def optimizer_step(self, micro_batches: list[list[int]]) -> None:
        """One optimizer step over `micro_batches` (gradient accumulation), loss over answer tokens."""
        import torch

        state, items, scaler = self.state, self.train_items, self.scaler
        t0 = time.perf_counter()
        micro = [(collate([items[i] for i in b], self.pad_id), self.prefixes[self.groups[b[0]]]) for b in micro_batches]
        n_target = sum(int((m["labels"][:, 1:] != IGNORE).sum()) for m, _ in micro)
        step_loss = 0.0
        for m, prefix in micro:
            m = self.to_device(m)
            with self.autocast():
                loss, _ = loss_sum(self.model, m, self.split, prefix)
            scaled = loss / max(1, n_target)
            (scaler.scale(scaled) if scaler else scaled).backward()
            step_loss += float(loss.detach())
            state.tokens += int(m["attention_mask"].sum())
            state.padded_tokens += int(m["input_ids"].numel())
        if scaler:
            scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        if scaler:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        state.train_seconds += time.perf_counter() - t0
        state.global_step += 1
        state.target_tokens += n_target
        state.epoch_loss_sum += step_loss
        state.epoch_loss_n += n_target
        state.step_losses.append(round(step_loss / max(1, n_target), 4))
        self.progress.advance(1, loss=f"{state.step_losses[-1]:.3f}", lr=f"{self.scheduler.get_last_lr()[0]:.1e}",
                              tok_s=f"{state.tokens / max(1e-9, state.train_seconds):.0f}")

    def eval_loss(self) -> float | None:
        import torch

        items = self.eval_items
        if not items:
            return None
        self.model.eval()
        order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
        size = self.config.batch_size * 2  # no gradients kept: twice the training batch fits
        total, count = 0.0, 0
        with torch.no_grad(), self.autocast():
            for s in range(0, len(order), size):
                b = collate([items[i] for i in order[s:s + size]], self.pad_id)
                loss, n = loss_sum(self.model, self.to_device(b), self.split)
                total, count = total + float(loss), count + n
        self.model.train()
        return round(total / max(1, count), 4)

    def end_epoch(self, ev: float | None) -> None:
        """Record the epoch's losses; decide early stopping."""
        state, epoch = self.state, self.state.epoch
        state.epoch_losses.append(round(state.epoch_loss_sum / max(1, state.epoch_loss_n), 4))
        state.eval_losses.append(ev)
        msg = f"epoch {epoch + 1}: train loss {state.epoch_losses[-1]:.4f}"
        if ev is not None:
            msg += f", eval loss {ev:.4f}"
            if state.best_eval is None or ev < state.best_eval:
                state.best_eval, state.best_epoch, state.bad_epochs = ev, epoch + 1, 0
            else:
                state.bad_epochs += 1
                if self.config.early_stopping and state.bad_epochs >= self.config.early_stopping:
                    state.stopped_early = True
                    msg += f"; no better for {state.bad_epochs} epoch(s), stopping"
        self.progress.message(msg)

    def save_checkpoint(self, name: str) -> None:
        save_checkpoint(self.out / "checkpoints" / name, self.model, self.optimizer, self.scheduler, self.scaler,
                        asdict(self.state))

    # ------------------------------------------------------------------ the result

    def save_adapter(self) -> None:
        """The adapter the user gets: the best eval epoch under early stopping, else the last state."""
        out, best = self.out, self.state.best_epoch
        if self.config.early_stopping and best and (out / "checkpoints" / f"epoch-{best}").is_dir():
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(self.model, load_file(str(out / "checkpoints" / f"epoch-{best}" /
                                                                "adapter_model.safetensors")))
        self.model.save_pretrained(str(out))
        acfg = json.loads((out / "adapter_config.json").read_text())
        acfg["base_model_name_or_path"] = str(self.base.path)
        (out / "adapter_config.json").write_text(json.dumps(acfg, indent=2))

    def summary(self) -> dict:
        """Save the adapter; write and return train_summary.json."""
        self.save_adapter()
        config, state, base, out = self.config, self.state, self.base, self.out
        secs = max(1e-9, state.train_seconds)
        summary = {
            "config": config.model_dump(),
            "base": {"spec": base.spec, "path": str(base.path), "gguf": base.gguf, "prompt_style": self.style},
            "data": self._data_summary(),
            "device": self.device, "precision": self.precision,
            "threads": self.threads if self.device == "cpu" else None,
            "trainable_params": sum(p.numel() for p in self.trainable),
            "steps": state.global_step, "steps_planned": self.total_steps, "epochs_completed": len(state.epoch_losses),
            "stopped_early": state.stopped_early, "best_epoch": state.best_epoch,
            "losses": {"step": state.step_losses, "epoch_train": state.epoch_losses, "epoch_eval": state.eval_losses},
            "seconds": round(time.perf_counter() - self.t_start, 1), "train_seconds": round(secs, 1),
            "tokens": state.tokens, "tokens_per_s": round(state.tokens / secs, 1),
            "padded_tokens_per_s": round(state.padded_tokens / secs, 1),
            "answer_tokens_per_s": round(state.target_tokens / secs, 1),
            "answer_only_head": self.split is not None,
            "shared_prefix_tokens": {g: n for g, n in self.prefixes.items() if n},
            "adapter_size_mb": round((out / "adapter_model.safetensors").stat().st_size / 2**20, 3),
            "peak_rss_mb": peak_rss_mb(), "resumed": self.ckpt is not None,
        }
        (out / SUMMARY).write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
        return summary

    def _data_summary(self) -> dict:
        config, groups = self.config, self.groups
        return {"file": str(config.data), "sha256": self.data_hash, "eval_file": config.eval_data,
                "eval_sha256": self.eval_hash, "examples": len(self.examples), "train_examples": len(self.train_items),
                "eval_examples": len(self.eval_items), "dropped_too_long": self.dropped + self.eval_dropped,
                "languages": {g: groups.count(g) for g in sorted(set(groups))},
                "tokens_per_epoch": sum(self.lengths),
                "answer_tokens_per_epoch": sum(e.n_target for e in self.train_items)}


def peak_rss_mb() -> float | None:
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except (ImportError, OSError):
        return None
