"""The Generator interface every backend implements (llamacpp, hf, openai), and decoding settings.

A generator completes a *fully rendered* prompt: prompt styles and chat templates are applied
before `generate` (see prompts.py), so that the text the eval and the SFT trainer see is exactly
the text the model saw. `StopScanner` is the one piece of streaming logic the backends share: it
holds back text that might be the start of a stop string, so a stop never reaches the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import BackendError, ContextOverflow
from ..types import Completion

BACKENDS = ("llamacpp", "hf", "openai")
# The context window when neither --n-ctx nor the model (a server's max_model_len) says otherwise:
# enough for k=5 passages and an answer.
DEFAULT_N_CTX = 4096
PROMPT_STYLES = ("chat", "fewshot")


@dataclass
class Decoding:
    """Decoding controls shared by every backend. Greedy by default so results reproduce.

    `temperature == 0` means greedy: top_p, top_k and seed are then ignored. `top_k == 0` and
    `top_p == 1` switch those filters off. `no_repeat_ngram` is honoured by the hf backend only.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    no_repeat_ngram: int = 0  # hf only
    max_tokens: int = 256
    seed: int = 0
    stop: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0 or self.no_repeat_ngram < 0:
            raise ValueError("top_k and no_repeat_ngram must be >= 0")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be > 0")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        self.stop = [s for s in (self.stop or []) if s]

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def with_stops(self, extra: list[str]) -> Decoding:
        """A copy whose stop list also holds `extra` (order kept, duplicates dropped)."""
        from dataclasses import replace

        return replace(self, stop=list(dict.fromkeys([*self.stop, *extra])))


class ChatPrompt(str):
    """A chat prompt kept as its messages, for a backend that sends messages rather than text.

    The openai backend's `render_chat` returns one: the string (the messages as JSON) is what is
    logged, stored in items.jsonl and shown; `.messages` is what `generate` sends to
    /v1/chat/completions. The type says it is a chat prompt, so no backend has to guess that a
    prompt beginning with "[{" is a serialised message list.
    """

    messages: list[dict]

    def __new__(cls, messages: list[dict]) -> ChatPrompt:
        import json

        obj = super().__new__(cls, json.dumps(messages, ensure_ascii=False))
        obj.messages = [dict(m) for m in messages]
        return obj

class GenerationCancelled(Exception):
    """Raised from an `on_token` callback to stop a generation (a server client went away).

    Every backend calls `on_token` from its own decoding loop, so raising there ends the loop at
    the next token and unwinds through `Pipeline.answer` without a result; the model is left
    ready for the next prompt (llama.cpp resets its KV cache position on every `generate`).
    """


@dataclass(frozen=True)
class GeneratorSpec:
    """What a backend is built from (load_generator's registry passes it to the backend's loader);
    also the key of the per-process generator cache."""

    backend: str
    name: str | None  # display name, or the model a server is asked for (openai)
    path: Path | None = None  # the local model file or directory (None for openai)
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    adapter: str | None = None
    n_ctx: int | None = None
    prompt_style: str | None = None  # None: the model's own (chat template present: chat, else few-shot)
    max_passages: int | None = None  # the model's quirk from models.py's table (None: all k chunks)


def cancellable(on_token: Callable[[str], None] | None, cancel) -> Callable[[str], None] | None:
    """`on_token` that first raises GenerationCancelled once `cancel` (a threading.Event) is set: how
    a backend that streams token by token honours `generate(..., cancel=...)`."""
    if cancel is None:
        return on_token

    def check(piece: str) -> None:
        if cancel.is_set():
            raise GenerationCancelled()
        if on_token is not None:
            on_token(piece)

    return check


class Generator(Protocol):
    backend: str  # "llamacpp", "hf", "openai"
    model: str  # display name
    prompt_style: str  # "chat" or "fewshot"
    context_length: int  # tokens the prompt and the answer must share
    max_passages: int | None  # optional hint: retrieved chunks this model answers best from

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes as a prompt, counted with the model's own tokenizer."""
        ...

    def render_chat(self, messages: list[dict]) -> str:
        """Apply the model's chat template (with the generation prompt) to `messages`; a backend
        whose server applies the template returns a ChatPrompt that carries the messages."""
        ...

    def generate(
        self, prompt: str, decoding: Decoding, on_token: Callable[[str], None] | None = None
    ) -> Completion:
        """Complete a fully rendered prompt (chat templates are applied before this call), or the
        messages of a ChatPrompt that `render_chat` returned.

        `on_token` may raise GenerationCancelled to stop early; the exception propagates."""
        ...


class StopScanner:
    """Streams generated text through `on_token`, cutting it at the first stop string.

    Text that could still turn out to be the start of a stop string is held back until it
    cannot, so the caller never sees (and never prints) part of a stop. `feed` returns True once
    a stop string has appeared; the backend should then stop generating.
    """

    def __init__(self, stops: list[str], on_token: Callable[[str], None] | None = None):
        self.stops = [s for s in stops if s]
        self.on_token = on_token
        self._buf = ""  # everything generated so far, cut at the stop once one is found
        self._emitted = 0  # how much of _buf has gone to on_token
        self.stopped = False
        self.first_token_at: float | None = None

    @property
    def text(self) -> str:
        return self._buf

    def feed(self, piece: str) -> bool:
        if self.stopped or not piece:
            return self.stopped
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        start = max(0, len(self._buf) - max((len(s) for s in self.stops), default=0))
        self._buf += piece
        cut = min((i for i in (self._buf.find(s, start) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self._buf = self._buf[:cut]
            self.stopped = True
            self._emit(len(self._buf))
            return True
        self._emit(len(self._buf) - self._held_back())
        return False

    def finish(self) -> str:
        """Flush what was held back (generation ended without a stop) and return the text."""
        self._emit(len(self._buf))
        return self._buf

    def _held_back(self) -> int:
        # Longest suffix of the buffer that is a proper prefix of some stop string.
        longest = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(self._buf)), longest, -1):
                if self._buf.endswith(s[:n]):
                    longest = n
                    break
        return longest

    def _emit(self, upto: int) -> None:
        if upto > self._emitted:
            if self.on_token is not None:
                self.on_token(self._buf[self._emitted : upto])
            self._emitted = upto


def check_prompt_style(name: str, chat_template: str | None, prompt_style: str | None) -> str:
    """The prompt style a local model runs with: the one asked for, else chat when the model has a
    chat template and few-shot when it does not (hf and llamacpp share this rule)."""
    style = prompt_style or ("chat" if chat_template else "fewshot")
    if style == "chat" and not chat_template:
        raise BackendError(f"{name} has no chat template; use the fewshot prompt style (--prompt-style fewshot)")
    return style


def ms_since(t0: float, t1: float | None = None) -> float:
    return round(((t1 if t1 is not None else time.perf_counter()) - t0) * 1000, 2)


def answer_room(prompt_tokens: int, context_length: int) -> int:
    """Tokens left for the answer after the prompt, or ContextOverflow when there are none."""
    room = context_length - prompt_tokens
    if room < 1:
        raise ContextOverflow(
            f"the prompt is {prompt_tokens} tokens but the model's context holds {context_length}; "
            "use fewer passages (-k) or raise --n-ctx"
        )
    return room
