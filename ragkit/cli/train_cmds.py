"""`ragkit train`, `ragkit merge`, `ragkit export-gguf`: LoRA fine-tuning and what to do with the adapter."""

from __future__ import annotations

import warnings

import click

from .group import echo_json, main
from .options import TRAIN, setting
from .progress import TerminalProgress


def _config(**kw):
    from ..train.train import TrainConfig

    return TrainConfig(**kw)  # a bad value raises SettingsError: one sentence, exit code 2


@main.command("train")
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False), help="SFT file: alpaca, sharegpt or messages JSON lines.")
@click.option("--base", required=True, help="Base model: a bundled name (smollm2-135m), a .gguf file or an HF directory.")
@click.option("--out", "out", required=True, type=click.Path(), help="Directory for the adapter and checkpoints.")
@click.option("--eval-data", type=click.Path(exists=True, dir_okay=False), help="Held-out SFT file for the eval loss. [default: a slice of --data]")
@setting("--eval-fraction", of=TRAIN, type=float, help="Share of --data held out for the eval loss (none under 20 examples).")
@setting("--epochs", of=TRAIN, type=int, help="Passes over the training data.")
@setting("--lr", of=TRAIN, type=float, help="Peak learning rate (warm-up, cosine decay).")
@setting("--warmup-ratio", of=TRAIN, type=float, help="Share of the steps spent warming the learning rate up.")
@setting("--rank", of=TRAIN, type=int, help="LoRA rank r.")
@setting("--alpha", of=TRAIN, type=float, help="LoRA alpha (the update is scaled by alpha/r).")
@setting("--dropout", of=TRAIN, type=float, help="LoRA dropout.")
@setting("--target-modules", of=TRAIN, help="Comma-separated module names, or all-linear.")
@setting("--batch-size", of=TRAIN, type=int, help="Examples per micro-batch.")
@click.option("--grad-accum", type=int, default=None, help="Micro-batches per step. [default: enough for an effective batch of 16]")
@setting("--max-len", of=TRAIN, type=int, help="Longest example in tokens.")
@click.option("--languages", default=None, metavar="en,zh|all",
              help="Train on questions in these languages. [default: a bundled model's own languages, "
                   "else all]")
@click.option("--prompt-style", type=click.Choice(["chat", "fewshot"]), default=None,
              help="Prompt format. [default: the model's, as ragkit ask uses]")
@setting("--seed", of=TRAIN, type=int, help="Seed for the LoRA init, the data split and batch order.")
@click.option("--gradient-checkpointing", is_flag=True, help="Recompute activations: less memory, ~30% slower.")
@setting("--share-prefix/--no-share-prefix", of=TRAIN, name="share_prefix",
         help="Run the prompt prefix all examples share once per batch (exact; checked at start).")
@setting("--precision", of=TRAIN, type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
         help="auto: bf16/fp16 autocast on CUDA, fp32 on CPU.")
@click.option("--qlora", is_flag=True, help="Load the base in 4 bits (bitsandbytes, CUDA).")
@setting("--device", of=TRAIN, help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N.")
@click.option("--threads", type=int, default=None, help="CPU threads. [default: all cores]")
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
    from ..train.train import train

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
    # One line a minute in a log: an epoch of the sample data takes minutes on a CPU.
    bar = TerminalProgress(log_every=60.0, unit="step")
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
@click.option("--adapter", required=True, type=click.Path(exists=True), help="Adapter directory from ragkit train.")
@click.option("--out", "out", required=True, type=click.Path(), help="New directory for the merged model.")
@click.option("--base", default=None, help="Base model, when not the one recorded with the adapter.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32", show_default=True,
              help="Weight type of the merged model.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def merge_cmd(adapter, out, base, dtype, as_json):
    """Merge a LoRA adapter into its base (W + B·A·alpha/r) and save a transformers model directory."""
    from ..train.export import merge

    info = merge(adapter, out, base=base, dtype=dtype)
    if as_json:
        echo_json(info)
    else:
        click.echo(f"Merged model ({info['size_mb']} MB, {dtype}) in {out}; "
                   f"use it with: ragkit ask --backend hf --model {out} ...")


@main.command("export-gguf")
@click.option("--adapter", required=True, type=click.Path(exists=True), help="Adapter directory from ragkit train.")
@click.option("--out", "out", required=True, type=click.Path(), help="The .gguf adapter file to write.")
@click.option("--base-gguf", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The base model's GGUF. [default: the one the adapter was trained from]")
@click.option("--outtype", type=click.Choice(["f32", "f16"]), default="f32", show_default=True,
              help="Tensor type of the GGUF adapter.")
@click.option("--verify", is_flag=True, help="Greedy-decode the trained questions with hf+peft and llama.cpp+adapter.")
@click.option("--question", "questions", multiple=True, help="A question for --verify (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print what was written (and the check) as JSON.")
def export_gguf_cmd(adapter, out, base_gguf, outtype, verify, questions, as_json):
    """Write the adapter as a GGUF LoRA that llama.cpp applies to the unchanged base GGUF."""
    from ..train.export import export_gguf_adapter
    from ..train.export import verify as run_verify

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
