"""`ragkit train`, `ragkit merge`, `ragkit export-gguf`: LoRA fine-tuning and what to do with the adapter."""

from __future__ import annotations

import sys
import time
import warnings

import click

from . import echo_json, main


class TrainBar:
    """A tqdm bar per epoch showing loss, learning rate and tokens/s; epoch lines go to stderr.

    Without a terminal (logs, CI) there is no bar; a progress line is written every `every` seconds.
    """

    def __init__(self, enabled: bool | None = None, every: float = 60.0):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.every = every
        self._bar = None
        self._name, self._total, self._n, self._last = "", 0, 0, 0.0

    def stage(self, name: str, total: int) -> None:
        self.done()
        self._name, self._total, self._n, self._last = name, total, 0, time.monotonic()
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=name, unit="step", file=sys.stderr, dynamic_ncols=True)

    def advance(self, n: int = 1, **stats) -> None:
        self._n += n
        if self._bar is not None:
            if stats:
                self._bar.set_postfix(stats, refresh=False)
            self._bar.update(n)
        elif stats and time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            click.echo(f"{self._name}: step {self._n}/{self._total} " + " ".join(f"{k}={v}" for k, v in stats.items()),
                       err=True)

    def message(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            click.echo(text, err=True)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _config(**kw):
    from ..errors import UsageError
    from ..sft.train import TrainConfig

    try:
        return TrainConfig(**kw)
    except ValueError as e:
        raise UsageError(str(e)) from None


@main.command("train")
@click.option("--data", required=True, type=click.Path(), help="SFT file: alpaca, sharegpt or messages JSON lines.")
@click.option("--base", required=True, help="Base model: a bundled name (smollm2-135m), a .gguf file or an HF directory.")
@click.option("--out", "out", required=True, type=click.Path(), help="Directory for the adapter and checkpoints.")
@click.option("--eval-data", type=click.Path(), help="Held-out SFT file for the eval loss (default: a slice of --data).")
@click.option("--eval-fraction", type=float, default=0.05, show_default=True)
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Peak learning rate (warm-up, cosine decay).")
@click.option("--warmup-ratio", type=float, default=0.05, show_default=True)
@click.option("--rank", type=int, default=8, show_default=True)
@click.option("--alpha", type=float, default=16.0, show_default=True)
@click.option("--dropout", type=float, default=0.05, show_default=True)
@click.option("--target-modules", default="q_proj,v_proj", show_default=True,
              help="Comma-separated module names, or all-linear.")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--grad-accum", type=int, default=None, help="Micro-batches per step [default: effective batch 16].")
@click.option("--max-len", type=int, default=512, show_default=True, help="Longest example in tokens.")
@click.option("--languages", default=None, metavar="en,zh|all",
              help="Train on questions in these languages [default: a bundled model's own languages, "
                   "else all].")
@click.option("--prompt-style", type=click.Choice(["chat", "fewshot"]), default=None,
              help="Prompt format [default: the model's, as ragkit ask uses].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--gradient-checkpointing", is_flag=True, help="Recompute activations: less memory, ~30% slower.")
@click.option("--share-prefix/--no-share-prefix", default=True, show_default=True,
              help="Run the prompt prefix all examples share once per batch (exact; checked at start).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="auto: bf16/fp16 autocast on CUDA, fp32 on CPU.")
@click.option("--qlora", is_flag=True, help="Load the base in 4 bits (bitsandbytes, CUDA).")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads [default: all cores].")
@click.option("--early-stopping", type=int, default=None, metavar="N",
              help="Stop after N epochs without a lower eval loss; keep the best epoch.")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in --out.")
@click.option("--save-every", type=int, default=None, metavar="STEPS", help="Also checkpoint every STEPS steps.")
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimizer steps.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def train_cmd(data, base, out, eval_data, eval_fraction, epochs, lr, warmup_ratio, rank, alpha, dropout,
              target_modules, batch_size, grad_accum, max_len, languages, prompt_style, seed, gradient_checkpointing,
              share_prefix, precision, qlora, device, threads, early_stopping, resume, save_every, max_steps, as_json):
    """Fine-tune a LoRA adapter on QA pairs (loss on the answer tokens only)."""
    from ..sft.train import train

    # peft reads a transformers attribute that warns about its own deprecation; not the user's concern.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    config = _config(
        data=data, base=base, out=out, eval_data=eval_data, eval_fraction=eval_fraction, epochs=epochs, lr=lr,
        warmup_ratio=warmup_ratio, rank=rank, alpha=alpha, dropout=dropout, target_modules=target_modules,
        batch_size=batch_size, grad_accum=grad_accum, max_len=max_len, languages=languages, prompt_style=prompt_style,
        seed=seed, gradient_checkpointing=gradient_checkpointing, share_prefix=share_prefix, precision=precision,
        load_in_4bit=qlora, device=device,
        threads=threads, early_stopping=early_stopping, resume=resume, save_every=save_every, max_steps=max_steps,
    )
    bar = TrainBar()
    try:
        summary = train(config, bar)
    finally:
        bar.done()
    if as_json:
        echo_json(summary)
        return
    losses = summary["losses"]
    evals = [x for x in losses["epoch_eval"] if x is not None]
    click.echo(
        f"Trained {summary['epochs_completed']} epoch(s), {summary['steps']} steps in {summary['train_seconds']:.0f} s "
        f"({summary['tokens_per_s']:.0f} tokens/s on {summary['device']}); train loss "
        f"{losses['epoch_train'][0]:.3f} -> {losses['epoch_train'][-1]:.3f}"
        + (f", eval loss {evals[0]:.3f} -> {evals[-1]:.3f}" if evals else "")
    )
    click.echo(f"Adapter ({summary['adapter_size_mb']:.1f} MB) in {out}; summary in {out}/train_summary.json")


@main.command("merge")
@click.option("--adapter", required=True, type=click.Path(), help="Adapter directory from ragkit train.")
@click.option("--out", "out", required=True, type=click.Path(), help="New directory for the merged model.")
@click.option("--base", default=None, help="Base model, when not the one recorded with the adapter.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def merge_cmd(adapter, out, base, dtype, as_json):
    """Merge a LoRA adapter into its base (W + B·A·alpha/r) and save a transformers model directory."""
    from ..sft.export import merge

    info = merge(adapter, out, base=base, dtype=dtype)
    if as_json:
        echo_json(info)
    else:
        click.echo(f"Merged model ({info['size_mb']} MB, {dtype}) in {out}; "
                   f"use it with: ragkit ask --backend hf --model {out} ...")


@main.command("export-gguf")
@click.option("--adapter", required=True, type=click.Path(), help="Adapter directory from ragkit train.")
@click.option("--out", "out", required=True, type=click.Path(), help="The .gguf adapter file to write.")
@click.option("--base-gguf", type=click.Path(), default=None,
              help="The base model's GGUF [default: the one the adapter was trained from].")
@click.option("--outtype", type=click.Choice(["f32", "f16"]), default="f32", show_default=True)
@click.option("--verify", is_flag=True, help="Greedy-decode the trained questions with hf+peft and llama.cpp+adapter.")
@click.option("--question", "questions", multiple=True, help="A question for --verify (repeatable).")
@click.option("--json", "as_json", is_flag=True)
def export_gguf_cmd(adapter, out, base_gguf, outtype, verify, questions, as_json):
    """Write the adapter as a GGUF LoRA that llama.cpp applies to the unchanged base GGUF."""
    from ..sft.export import export_gguf_adapter
    from ..sft.export import verify as run_verify

    info = export_gguf_adapter(adapter, out, base_gguf=base_gguf, outtype=outtype)
    if verify:
        info["verify"] = run_verify(adapter, out, base_gguf=base_gguf, questions=list(questions) or None)
    if as_json:
        echo_json(info)
        return
    click.echo(f"GGUF LoRA adapter ({info['tensors']} tensors, {info['size_mb']} MB, alpha {info['alpha']:g}, "
               f"{'q/k rows permuted' if info['permuted_qk'] else 'no q/k permutation'}) written to {out}")
    if info["base_gguf"]:
        click.echo(f"Use it with: ragkit ask --model {info['base_gguf']} --adapter {out} ...")
    if verify:
        v = info["verify"]
        for r in v["rows"]:
            mark = "=" if r["agree"] else "≠"
            click.echo(f"  {mark} {r['question']}\n      hf+peft: {r['hf_peft']!r}\n"
                       f"      llama.cpp+lora: {r['llamacpp_lora']!r}   (base alone: {r['llamacpp_base']!r})")
        click.echo(f"Agreement {v['agreement']:.0%} on {v['prompts']} prompts; the adapter changed llama.cpp's "
                   f"answer on {v['adapter_changed_output']} of them.")
