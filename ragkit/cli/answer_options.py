"""Options that `ragkit ask` and `ragkit serve` share: which model answers, and how it decodes.

One definition each, so the two commands cannot drift apart in names, defaults or help. The
commands keep the options whose meaning differs (-k, --max-tokens, --temperature, the key flags).
"""

from __future__ import annotations

import click

from .options import ANSWER, setting

_MODEL_OPTIONS = [
    click.option("-m", "--model", default=None,
                 help="Bundled name (see 'ragkit models'), a name from models.yaml, a .gguf file or an HF model "
                      "directory. [default: qwen2.5-coder-1.5b where installed, else smollm2-135m (English) or "
                      "gemma3-270m (Chinese)]"),
    click.option("--backend", type=click.Choice(["llamacpp", "hf", "openai"]), default=None,
                 help="Backend to run the model with. [default: llamacpp for a .gguf file, hf for a directory, "
                      "openai with --base-url]"),
    click.option("--adapter", type=click.Path(exists=True), default=None,
                 help="LoRA adapter: a PEFT directory (hf) or a GGUF adapter file (llamacpp)."),
    click.option("--base-url", default=None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."),
    click.option("--prompt-style", type=click.Choice(["chat", "fewshot"]), default=None,
                 help="Prompt format. [default: chat when the model has a chat template, else few-shot]"),
    click.option("--examples", type=click.IntRange(0, 3), default=None,
                 help="Worked examples in a few-shot prompt. [default: 3 with passages, 2 closed-book]"),
    click.option("--n-ctx", type=int, default=None, help="Context window in tokens. [default: 4096]"),
    click.option("--passages", type=click.IntRange(1, None), default=None,
                 help="Chunks put in the prompt. [default: all k; 1 for gemma3-270m, which answers best from one]"),
    setting("--context-tokens", of=ANSWER, type=click.IntRange(0, None),
            help="Prompt tokens of evidence: the best sentences of the retrieved chunks; 0 shows whole chunks."),
    setting("--reason", of=ANSWER, type=click.Choice(["auto", "on", "off"]),
            help="A facts-and-calculation step for questions that need arithmetic or dates; auto decides per question."),
    click.option("--mode", type=click.Choice(["dense", "bm25", "hybrid"]), default="hybrid", show_default=True,
                 help="Retrieval: dense vectors, BM25 keywords, or both fused."),
    click.option("--min-score", type=float, default=None,
                 help="Answer 'I don't know' unasked when no chunk scores this high; 0 disables it. [default in "
                      "hybrid mode: 0.20 English, 0.15 Chinese, calibrated on the sample corpus; else 0]"),
]

_DECODING_OPTIONS = [
    click.option("--top-p", type=float, default=1.0, show_default=True, help="Nucleus sampling mass; 1 disables it."),
    click.option("--top-k", type=int, default=0, show_default=True, help="0 disables top-k filtering."),
    click.option("--repetition-penalty", type=float, default=1.0, show_default=True,
                 help="Above 1 discourages repeating tokens; 1 disables it."),
    click.option("--no-repeat-ngram", type=int, default=0, show_default=True, help="hf backend only."),
    click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed (when temperature > 0)."),
    click.option("--stop", multiple=True, help="Stop string (repeatable)."),
]


def _apply(options):
    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


model_options = _apply(_MODEL_OPTIONS)
decoding_options = _apply(_DECODING_OPTIONS)
