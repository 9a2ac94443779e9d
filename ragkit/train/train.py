"""LoRA SFT for `ragkit train`: a plain torch + peft training loop, no HF Trainer.

    from ragkit.train.train import TrainConfig, train
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

The loop is a recipe (recipe.py: setup, train_epoch, save_checkpoint, summary); this module holds
its settings and the entry point.

Output directory: the adapter (adapter_config.json, adapter_model.safetensors), ragkit_adapter.json
(base, prompt style, a few trained questions for `export-gguf --verify`), train_summary.json, and
checkpoints/ (one per epoch, plus the newest --save-every one) for --resume.
"""

from __future__ import annotations

import math
import os
from typing import Literal

from pydantic import Field, model_validator

from ..extras import require
from ..progress import NullProgress, Progress
from ..settings import CommaList, Settings
from .recipe import EFFECTIVE_BATCH, LoRARecipe


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
    grad_accum: int | None = None  # None: enough micro-batches for an effective batch of EFFECTIVE_BATCH (16)
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
            self.grad_accum = max(1, math.ceil(EFFECTIVE_BATCH / self.batch_size))
        return self


class TrainConfig(TrainOptions):
    data: str
    base: str
    out: str


def train(config: TrainConfig, progress: Progress | None = None) -> dict:
    """Train a LoRA adapter into config.out and return the summary written to train_summary.json."""
    require("train", "ragkit train")
    import sys

    if "torch" not in sys.modules:
        # libgomp busy-waits by default: on shared or oversubscribed cores a 2-thread step then runs
        # many times slower (measured here: 140 s instead of 5 s for one tiny run). Set before torch loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    recipe = LoRARecipe(config, progress or NullProgress())
    recipe.setup()
    recipe.train()
    return recipe.summary()
