"""llama-cpp-python backend: a GGUF model on CPU (all layers offloaded when the build has a GPU).

The generation loop drives `Llama.generate` token by token rather than `create_completion`: it
is the same sampler and KV-cache prefix reuse (the few-shot examples are evaluated once per
process), with less per-token work, which is how ragkit keeps within 5% of a bare loop
(evals/perf/ask_speed.py). Text is decoded incrementally so multi-byte UTF-8 characters split
across tokens (common in Chinese) are never printed half-formed.

    python -c "from ragkit.generate import load_generator; print(load_generator('smollm2-135m').model)"
"""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import BackendError, ModelNotFound
from ..types import Completion
from .base import DEFAULT_N_CTX, Decoding, StopScanner, answer_room, check_prompt_style, ms_since


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
        max_passages: int | None = None,
    ):
        check_gguf(path)
        try:
            from llama_cpp import Llama, llama_supports_gpu_offload
        except ImportError as e:  # pragma: no cover - depends on the install
            raise BackendError(
                "the llamacpp backend needs llama-cpp-python: pip install 'llama-cpp-python[server]'"
            ) from e
        self.model = name
        self.max_passages = max_passages  # the model's quirk (models.py), Pipeline's default passages
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

    def generate(
        self, prompt: str, decoding: Decoding, on_token: Callable[[str], None] | None = None
    ) -> Completion:
        import llama_cpp

        t0 = time.perf_counter()
        tokens = self.tokenize(prompt)
        room = answer_room(len(tokens), self.context_length)
        max_tokens = min(decoding.max_tokens, room)
        if not decoding.greedy:
            self.llm.set_seed(decoding.seed)
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


def _default_threads() -> int:
    # llama-cpp-python's default (half the CPUs) leaves half of a small laptop idle; use every CPU
    # this process may run on, unless RAGKIT_THREADS says otherwise.
    env = os.environ.get("RAGKIT_THREADS")
    if env:
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
