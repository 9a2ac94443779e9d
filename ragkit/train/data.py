"""SFT inputs for `ragkit train`: QA files, the base model's tokenizer and prompt style, the
prompts `ragkit ask` would build, tokens with the prompt masked out, and length-grouped batches.

Three input formats are accepted, detected per record (one JSON object per line, or a JSON array):
- alpaca:   {"instruction": ..., "input": ..., "output": ...}
- sharegpt: {"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}
- messages: {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}

Each user→assistant turn becomes one (question, answer) example; system turns and earlier turns
are dropped, because ragkit asks single-turn closed-book questions and the system prompt is the one
`ragkit.generate.prompts` writes. An example is trained as

    prompt = format_prompt(question, None, style, lang, render_chat)      -> labels -100
    target = format_target(answer, style) (+ eos for chat)                 -> labels = ids

with the prompt tokenised on its own, exactly as the inference backends tokenise it, so the
tuned model sees the same token sequence at train and at ask time.

A RAFT row (`build-sft-data --recipe raft`: its parts under `ragkit_raft`) is trained on the rag
prompt `ask` would send for its passages and its quoted-evidence target, rendered here again with
the base model's tokenizer and `max_len` as the context (ragkit/raft.py: `training_pair`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataFormatError, ModelNotFound, UsageError
from ..generate.prompts import format_prompt, format_target
from ..hashing import file_hash
from ..lang import detect_language
from ..models import BUNDLED, bundled_path, model_info, resolve_llm
from ..raft import RAFT_KEY, training_pair

IGNORE = -100
_USER = {"human", "user"}
_ASSISTANT = {"gpt", "assistant", "model", "bot"}


@dataclass
class SFTExample:
    question: str
    answer: str
    lang: str
    where: str  # "file:line" for messages about this example
    raft: dict | None = None  # a RAFT row's parts (ragkit/raft.py): its prompt holds passages


# ---------------------------------------------------------------------------- reading files


def read_records(path: Path) -> list[tuple[int, object]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataFormatError(f"data file {path} does not exist") from None
    except UnicodeDecodeError:
        raise DataFormatError(f"data file {path} is not UTF-8 text; expected JSON lines") from None
    if not text.strip():
        raise DataFormatError(f"data file {path} is empty; make one with `ragkit build-sft-data`")
    if text.lstrip().startswith("["):  # a JSON array (LLaMA-Factory style .json)
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
        return [(i + 1, r) for i, r in enumerate(items)]
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            raise DataFormatError(
                f"{path}:{n} is not valid JSON ({e.msg}); expected one alpaca, sharegpt or messages "
                "record per line"
            ) from None
    return out


def detect_format(record: object) -> str | None:
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("messages"), list):
        return "messages"
    if isinstance(record.get("conversations"), list):
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    return None


def record_pairs(record: dict, fmt: str) -> list[tuple[str, str]]:
    """(question, answer) pairs of one record; an empty list when it holds no complete turn."""
    if fmt == "alpaca":
        q = str(record.get("instruction") or "").strip()
        extra = str(record.get("input") or "").strip()
        if extra:
            q = f"{q}\n{extra}" if q else extra
        return [(q, str(record.get("output") or "").strip())]
    turns = record["messages"] if fmt == "messages" else record["conversations"]
    role_key, text_key = ("role", "content") if fmt == "messages" else ("from", "value")
    pairs, pending = [], None
    for t in turns:
        if not isinstance(t, dict):
            continue
        role = str(t.get(role_key, "")).lower()
        text = t.get(text_key)
        text = text.strip() if isinstance(text, str) else ""
        if role in _USER:
            pending = text
        elif role in _ASSISTANT and pending is not None:
            pairs.append((pending, text))
            pending = None
    return pairs


def load_examples(path: str | Path) -> list[SFTExample]:
    """All (question, answer) examples of an SFT file, with the language of each question.

    Raises DataFormatError with the file and line for anything that is not one of the three formats
    or that leaves a question or an answer empty.
    """
    path = Path(path)
    if path.is_dir():
        raise DataFormatError(f"--data {path} is a directory; give the .jsonl file that build-sft-data wrote")
    examples: list[SFTExample] = []
    for n, rec in read_records(path):
        fmt = detect_format(rec)
        if fmt is None:
            keys = ", ".join(sorted(rec)) if isinstance(rec, dict) else type(rec).__name__
            raise DataFormatError(
                f"{path}:{n} is not an alpaca (instruction/output), sharegpt (conversations) or "
                f"messages record (it has: {keys})"
            )
        raft = rec.get(RAFT_KEY)
        if isinstance(raft, dict) and raft.get("question") and raft.get("answer") and raft.get("passages"):
            examples.append(SFTExample(raft["question"], raft["answer"], raft.get("lang") or
                                       detect_language(raft["question"]), f"{path.name}:{n}", raft))
            continue
        pairs = record_pairs(rec, fmt)
        if not pairs:
            raise DataFormatError(f"{path}:{n} has no user turn followed by an assistant turn")
        for q, a in pairs:
            if not q or not a:
                what = "question" if not q else "answer"
                raise DataFormatError(f"{path}:{n} has an empty {what}")
            examples.append(SFTExample(q, a, detect_language(q), f"{path.name}:{n}"))
    if not examples:
        raise DataFormatError(f"data file {path} holds no examples")
    return examples


def split_heldout(
    examples: list[SFTExample], fraction: float, seed: int
) -> tuple[list[SFTExample], list[SFTExample]]:
    """A deterministic held-out slice: `fraction` of the examples (at least 1, none below 20 examples)."""
    if fraction <= 0 or len(examples) < 20:
        return examples, []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n = max(1, round(len(examples) * fraction))
    held = set(order[:n])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def select_examples(config, progress, base: BaseSpec):
    """(train examples, eval examples, all kept examples, data hash, eval hash) for a TrainConfig.

    Languages: `config.languages`, else a bundled base model's own (an English-only model is not
    trained on Chinese questions; "all" keeps every example). Held out: `config.eval_data`, else a
    slice of the data.
    """
    examples = load_examples(config.data)
    eval_ex = load_examples(config.eval_data) if config.eval_data else None
    langs = config.languages
    if langs is None and base.info is not None:
        langs = list(base.info.languages)  # a bundled model: the languages it can answer in
    if langs and langs != ["all"]:
        n_all = len(examples)
        examples = [e for e in examples if e.lang in langs]
        eval_ex = [e for e in eval_ex if e.lang in langs] if eval_ex is not None else None
        if not examples:
            raise UsageError(f"{config.data} holds no {'/'.join(langs)} examples"
                             + ("" if config.languages else f", the language(s) {base.spec} knows; "
                                "--languages all trains on every example anyway"))
        if config.languages is None and len(examples) < n_all:
            progress.message(f"{base.spec} knows {'/'.join(langs)} only: training on {len(examples)} of {n_all} "
                             f"examples (--languages all keeps the other {n_all - len(examples)})")
    if eval_ex is not None:
        train_ex = examples
    else:
        train_ex, eval_ex = split_heldout(examples, config.eval_fraction, config.seed)
    return train_ex, eval_ex, examples, file_hash(config.data), config.eval_data and file_hash(config.eval_data)


# ---------------------------------------------------------------------------- prompts and tokens


@dataclass
class PromptFormat:
    """How questions become prompts for one model: the same call `ragkit ask` makes."""

    style: str  # "chat" or "fewshot"
    render_chat: Callable[[list[dict]], str] | None = None
    examples: int = 2  # worked examples of the few-shot style
    max_passages: int | None = None  # the model's passage hint (ModelInfo), as Pipeline reads it (RAFT rows)

    def prompt(self, question: str, lang: str) -> str:
        return format_prompt(question, None, self.style, lang, self.render_chat, self.examples)

    def target(self, answer: str) -> str:
        return format_target(answer, self.style)


def chat_renderer(tokenizer) -> Callable[[list[dict]], str] | None:
    """The model's chat template with the generation prompt, or None when it has none."""
    if not getattr(tokenizer, "chat_template", None):
        return None

    def render(messages: list[dict]) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    return render


# ---------------------------------------------------------------------------- the base model


@dataclass
class BaseSpec:
    spec: str  # as the user gave it
    path: Path  # an HF directory or a GGUF file
    gguf: bool
    info: object | None  # models.ModelInfo of a bundled model


def resolve_base(spec: str) -> BaseSpec:
    """A bundled name, a .gguf file, a directory holding config.json (or one .gguf)."""
    _, path = resolve_llm(spec)  # ModelNotFound with a clear sentence
    info = model_info(spec)
    if path.is_dir():
        if (path / "config.json").is_file():
            return BaseSpec(spec, path, False, None)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) != 1:
            raise ModelNotFound(f"{path} holds neither a transformers model (config.json) nor one .gguf file")
        path = ggufs[0]
    if path.suffix.lower() != ".gguf":
        raise ModelNotFound(f"{path} is not a transformers model directory or a .gguf file")
    for name, m in BUNDLED.items():  # a path to a bundled file still gets its known prompt style
        if info is None and m.kind == "llm" and bundled_path(name, assemble=False) == path:
            info = m
    return BaseSpec(spec, path, True, info)


def load_tokenizer(base: BaseSpec):
    from transformers import AutoTokenizer

    src, kw = (base.path.parent, {"gguf_file": base.path.name}) if base.gguf else (base.path, {})
    tok = AutoTokenizer.from_pretrained(str(src), local_files_only=True, **kw)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def prompt_style_for(base: BaseSpec, tokenizer, override: str | None) -> str:
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if override == "chat" and not has_template:
        raise UsageError(f"{base.spec} has no chat template; use --prompt-style fewshot")
    return override or getattr(base.info, "prompt_style", None) or ("chat" if has_template else "fewshot")


def prompt_format(style: str, tokenizer, examples: int = 2, max_passages: int | None = None) -> PromptFormat:
    return PromptFormat(style, chat_renderer(tokenizer) if style == "chat" else None, examples, max_passages)


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Prompt token ids as an inference backend gets them: the tokenizer's own special tokens (BOS),
    unless the rendered template already starts with the BOS text."""
    bos = getattr(tokenizer, "bos_token", None)
    add = not (bos and prompt.startswith(bos))
    return list(tokenizer(prompt, add_special_tokens=add)["input_ids"])


def end_ids(tokenizer, style: str) -> list[int]:
    """Tokens that close an answer after the target text: eos for chat (the few-shot newline is in
    the target text already)."""
    if style != "chat":
        return []
    if tokenizer.eos_token_id is None:
        raise DataFormatError("the model's tokenizer has no end-of-sequence token to end chat answers with")
    return [int(tokenizer.eos_token_id)]


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt tokens
    group: str = ""  # examples of one group share a prompt prefix (the language)

    @property
    def n_target(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)

    @property
    def n_prompt(self) -> int:
        return next((i for i, t in enumerate(self.labels) if t != IGNORE), len(self.labels))


def encode_example(
    tokenizer, fmt: PromptFormat, ex: SFTExample, max_len: int, end: list[int] | None = None
) -> Encoded | None:
    """Token ids and labels of one example; None when the prompt leaves no room for the answer.

    A RAFT example's prompt is the rag prompt `ask` sends for its passages, trimmed to `max_len`
    tokens as the answer path trims to a context (ragkit/raft.py)."""
    if ex.raft is not None:
        pair = training_pair(ex.raft, fmt.style, fmt.render_chat, lambda s: len(encode_prompt(tokenizer, s)),
                             max_len, fmt.max_passages)
        if pair is None:
            return None
        prompt, target = pair
    else:
        prompt, target = fmt.prompt(ex.question, ex.lang), fmt.target(ex.answer)
    p = encode_prompt(tokenizer, prompt)
    t = list(tokenizer(target, add_special_tokens=False)["input_ids"])
    t += end if end is not None else end_ids(tokenizer, fmt.style)
    if len(p) >= max_len:
        return None
    t = t[: max_len - len(p)]
    return Encoded(p + t, [IGNORE] * len(p) + t, ex.lang)


def encode_all(tokenizer, fmt: PromptFormat, examples: list[SFTExample], max_len: int):
    """(encoded examples, how many were dropped because their prompt alone exceeds max_len)."""
    end = end_ids(tokenizer, fmt.style)
    out, dropped = [], 0
    for ex in examples:
        enc = encode_example(tokenizer, fmt, ex, max_len, end)
        if enc is None:
            dropped += 1
        else:
            out.append(enc)
    return out, dropped


# ---------------------------------------------------------------------------- batches


def length_grouped_batches(
    lengths: list[int], batch_size: int, seed: int, groups: list | None = None, mega: int = 32
) -> list[list[int]]:
    """Shuffled batches of indices whose members have similar lengths, so little padding is computed.

    The data is shuffled, cut into mega-batches of `mega` batches, each sorted by length and cut
    into batches; the batches are then shuffled. With `groups`, a batch never mixes two groups (so
    that a batch shares one prompt prefix). Deterministic for a given seed.
    """
    rng = random.Random(seed)
    by_group: dict = {}
    for i in range(len(lengths)):
        by_group.setdefault(groups[i] if groups else 0, []).append(i)
    batches = []
    span = batch_size * mega
    for key in sorted(by_group, key=str):
        order = by_group[key]
        rng.shuffle(order)
        for s in range(0, len(order), span):
            group = sorted(order[s : s + span], key=lambda i: -lengths[i])
            batches.extend(group[k : k + batch_size] for k in range(0, len(group), batch_size))
    rng.shuffle(batches)
    return batches


def shared_prefixes(items: list[Encoded], groups: list, min_len: int = 4) -> dict:
    """Per group, how many leading tokens every example's prompt shares (system prompt, template,
    worked examples), always leaving at least one prompt token out so that no answer token is in
    it; 0 when under `min_len`. The trainer computes those tokens once per batch instead of per row.
    """
    import os

    out = {}
    for key in set(groups):
        members = [it for it, g in zip(items, groups) if g == key]
        n = len(os.path.commonprefix([it.input_ids for it in members]))
        n = min(n, min(it.n_prompt for it in members) - 1)
        out[key] = n if n >= min_len else 0
    return out


def collate(items: list[Encoded], pad_id: int):
    """Right-padded tensors: input_ids, attention_mask, labels (IGNORE on padding)."""
    import torch

    width = max(len(e.input_ids) for e in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for r, e in enumerate(items):
        n = len(e.input_ids)
        ids[r, :n] = torch.tensor(e.input_ids)
        labels[r, :n] = torch.tensor(e.labels)
        mask[r, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
