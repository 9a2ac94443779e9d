"""llama-cpp-python backend: a GGUF model on CPU (all layers offloaded when the build has a GPU).

The generation loop drives `Llama.generate` token by token rather than `create_completion`: it
is the same sampler with less per-token work, which is how ragkit keeps within 5% of a bare loop
(evals/perf/ask_speed.py). Text is decoded incrementally so multi-byte UTF-8 characters split
across tokens (common in Chinese) are never printed half-formed.

The prompt is read by `prefill`, not by `Llama.generate`, for two reasons:
- **A kept prefix.** On a CPU the prompt is the cost of an answer. llama.cpp already skips the part
  of a prompt that matches the previous one, but a server or an eval alternates languages and arms,
  whose prompts start differently, and each switch used to read the fixed instructions again.
  `keep_prefix(text)` names a fixed prompt start (the system text, the few-shot examples); the
  first prompt that begins with it stores the model's state at its end (llama.cpp's per-sequence
  state: the KV cells of those tokens, a few MB), and every later prompt that begins with it
  restores that state instead of reading it. Restoring bytes is exact: answers are the same with and
  without it (tests/models/test_prefix_cache.py; the saving in evals/perf/prefix_cache.py).
- **A Stop that stops.** The prompt is read in slices of `PREFILL_SLICE` tokens and `cancel` is
  checked between them, so a cancelled request frees the model within one slice rather than
  after the whole prompt.

    python -c "from ragkit.generate import load_generator; print(load_generator('smollm2-135m').model)"
"""

from __future__ import annotations

import codecs
import ctypes
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from ..errors import BackendError, ModelNotFound
from ..types import Completion
from .base import Decoding, GenerationCancelled, StopScanner, answer_room, check_prompt_style, ms_since

DEFAULT_N_CTX = 4096  # enough for k=5 passages and an answer; --n-ctx raises it
# Prompt tokens read between two checks of a cancel flag: about a second of a 1.5B model's prompt
# reading on two cores, and large enough to keep llama.cpp's batched matrix products efficient.
PREFILL_SLICE = 64
KEPT_PREFIXES = 8  # distinct prompt starts whose state is kept (a few MB each)


def check_gguf(path: Path) -> None:
    """Raise ModelNotFound unless `path` is a readable GGUF file (checked by its magic bytes)."""
    if not path.is_file():
        raise ModelNotFound(f"model file {path} does not exist")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ModelNotFound(
            f"{path} is not a GGUF file; the llamacpp backend needs a .gguf model "
            "(use --backend hf for a transformers model directory)"
        )


class LlamaCppGenerator:
    backend = "llamacpp"

    def __init__(
        self,
        path: Path,
        name: str,
        *,
        n_ctx: int | None = None,
        prompt_style: str | None = None,
        n_threads: int | None = None,
        adapter: str | None = None,
        kept_prefixes: int = KEPT_PREFIXES,
    ):
        check_gguf(path)
        try:
            from llama_cpp import Llama, llama_supports_gpu_offload
        except ImportError as e:  # pragma: no cover - depends on the install
            raise BackendError(
                "the llamacpp backend needs llama-cpp-python: pip install 'llama-cpp-python[server]'"
            ) from e
        self.model = name
        self.path = path
        kwargs = {
            "model_path": str(path),
            "n_ctx": n_ctx or DEFAULT_N_CTX,
            "n_threads": n_threads or _default_threads(),
            "n_gpu_layers": -1 if llama_supports_gpu_offload() else 0,
            "verbose": False,
        }
        if adapter:
            # A GGUF LoRA adapter (from `ragkit export-gguf`), applied at load time.
            if Path(adapter).is_dir():
                raise ModelNotFound(
                    f"--adapter {adapter} is a folder (a PEFT adapter?); the llamacpp backend needs a GGUF "
                    f"adapter file: convert it with 'ragkit export-gguf --adapter {adapter} --out adapter.gguf', "
                    "or use --backend hf")
            check_gguf(Path(adapter))
            kwargs["lora_path"] = str(adapter)
        try:
            self.llm = Llama(**kwargs)
        except (ValueError, RuntimeError, OSError) as e:
            raise BackendError(f"llama.cpp could not load {path}: {e}") from e
        # llama.cpp rounds the context up (320 -> 512) but llama-cpp-python's token buffer keeps
        # the requested size; the smaller of the two is what a prompt and answer can really use.
        self.context_length = min(self.llm.n_ctx(), kwargs["n_ctx"])
        self.chat_template = self.llm.metadata.get("tokenizer.chat_template")
        self.prompt_style = check_prompt_style(name, self.chat_template, prompt_style)
        self._bos = self._piece(self.llm.token_bos())
        self._eos = self._piece(self.llm.token_eos())
        self._formatter = None
        self._prefixes: OrderedDict[tuple[int, ...], bytes | None] = OrderedDict()
        self.kept_prefixes = kept_prefixes  # 0: only llama.cpp's reuse of the previous prompt
        self._lock = threading.Lock()
        # Free the model before the interpreter tears down (Llama.__del__ at exit printed
        # "TypeError: 'NoneType' object is not callable" after every script that did not close it).
        self._finalizer = weakref.finalize(self, self.llm.close)

    def close(self) -> None:
        """Free the model now; the generator cannot be used afterwards."""
        self._finalizer()

    def __enter__(self) -> LlamaCppGenerator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _piece(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def tokenize(self, text: str) -> list[int]:
        # A chat template may already start with the BOS text; adding another would double it.
        add_bos = not (self._bos and text.startswith(self._bos))
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def render_chat(self, messages: list[dict]) -> str:
        if not self.chat_template:
            raise BackendError(f"{self.model} has no chat template; use --prompt-style fewshot")
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            self._formatter = Jinja2ChatFormatter(
                self.chat_template, eos_token=self._eos, bos_token=self._bos, add_generation_prompt=True
            )
        return self._formatter(messages=messages).prompt

    def keep_prefix(self, text: str) -> None:
        """Remember `text` as a fixed prompt start whose state is kept once read (see the module
        docstring). Its last two tokens are left out, so that a prompt whose tokenizer merges
        across the boundary still matches. Cheap to call for every question."""
        tokens = tuple(self.tokenize(text))[:-2]
        if len(tokens) < 8 or not self.kept_prefixes:
            return
        with self._lock:
            if tokens in self._prefixes:
                self._prefixes.move_to_end(tokens)
                return
            self._prefixes[tokens] = None
            while len(self._prefixes) > self.kept_prefixes:
                self._prefixes.popitem(last=False)

    def prefill(self, tokens: list[int], cancel: threading.Event | None = None) -> int:
        """Read `tokens` into the model's context, reusing what is already there or a kept
        prefix, in slices with a `cancel` check between them. Returns the tokens reused."""
        import llama_cpp

        llm = self.llm
        current = llm.input_ids[: llm.n_tokens]
        reused = 0
        for a, b in zip(current, tokens):
            if a != b:
                break
            reused += 1
        kept = max((p for p in self._prefixes if len(p) <= len(tokens) and tuple(tokens[: len(p)]) == p),
                   key=len, default=None)
        if kept is not None and self._prefixes[kept] is not None and len(kept) > reused:
            state = self._prefixes[kept]
            llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm._ctx.ctx), 0, -1, -1)
            buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
            if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buf, len(state), 0) != len(state):
                raise BackendError("llama.cpp could not restore a kept prompt prefix")
            llm.input_ids[: len(kept)] = kept
            reused = len(kept)
        reused = min(reused, len(tokens) - 1)  # the last token is always read: it gives the logits
        llm.n_tokens = reused
        save_at = len(kept) if kept is not None and self._prefixes[kept] is None and len(kept) > reused else None
        pos = reused
        while pos < len(tokens):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled()
            end = min(len(tokens), pos + PREFILL_SLICE)
            if save_at is not None and pos < save_at < end:
                end = save_at
            llm.eval(tokens[pos:end])
            pos = end
            if pos == save_at:
                self._prefixes[kept] = _seq_state(llm)
        return reused

    def generate(
        self,
        prompt: str,
        decoding: Decoding,
        on_token: Callable[[str], None] | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> Completion:
        import llama_cpp

        t0 = time.perf_counter()
        tokens = self.tokenize(prompt)
        room = answer_room(len(tokens), self.context_length)
        max_tokens = min(decoding.max_tokens, room)
        if not decoding.greedy:
            self.llm.set_seed(decoding.seed)
        try:
            self.prefill(tokens, cancel)
        except GenerationCancelled:
            self.llm.n_tokens = 0  # half-read: nothing of it may be reused
            raise
        scanner = StopScanner(decoding.stop, on_token)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        vocab = self.llm._model.vocab
        n, finish = 0, "length"
        for tok in self.llm.generate(
            tokens,
            temp=decoding.temperature,
            top_k=decoding.top_k,
            top_p=decoding.top_p,
            min_p=0.0,  # llama.cpp's default 0.05 would silently narrow sampling beyond top-p/top-k
            repeat_penalty=decoding.repetition_penalty,
            reset=True,
        ):
            if llama_cpp.llama_vocab_is_eog(vocab, tok):
                finish = "stop"
                break
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled()
            n += 1
            if scanner.feed(decoder.decode(self.llm.detokenize([tok]))):
                finish = "stop"
                break
            if n >= max_tokens:
                break
        scanner.feed(decoder.decode(b"", final=True))
        text = scanner.finish()
        return Completion(
            text=text,
            prompt_tokens=len(tokens),
            completion_tokens=n,
            first_token_ms=ms_since(t0, scanner.first_token_at) if scanner.first_token_at else None,
            total_ms=ms_since(t0),
            finish_reason=finish,
        )


def _seq_state(llm) -> bytes:
    """The KV state of sequence 0 (the one llama-cpp-python uses), as bytes."""
    import llama_cpp

    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    buf = (ctypes.c_uint8 * size)()
    n = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
    return bytes(buf[:n])


def _default_threads() -> int:
    # llama-cpp-python's default (half the CPUs) leaves half of a small laptop idle; use every CPU
    # this process may run on, unless RAGKIT_THREADS says otherwise.
    env = os.environ.get("RAGKIT_THREADS")
    if env:
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
