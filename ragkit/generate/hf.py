"""transformers backend: AutoModelForCausalLM on CUDA (bf16/fp16) when there is one, else CPU (fp32).

Loads a local model directory, or a GGUF file through transformers' `gguf_file=` (dequantised to
full precision, so slower than llama.cpp on CPU but the same weights), and optionally a PEFT
LoRA adapter directory from `ragkit train`. Nothing is fetched from a hub: every load passes
`local_files_only=True`.

    python -c "from ragkit.generate import load_generator as g; print(g('smollm2-135m', 'hf').device)"
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..errors import BackendError, ModelNotFound
from ..extras import require
from ..types import Completion
from .base import DEFAULT_N_CTX, Decoding, StopScanner, answer_room, cancellable, check_prompt_style, ms_since
from .llamacpp import check_gguf


def _load_error(path: Path, e: Exception) -> BackendError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return BackendError(f"transformers could not load {path}: {first}")


class HFGenerator:
    backend = "hf"

    def __init__(
        self,
        path: Path,
        name: str,
        *,
        n_ctx: int | None = None,
        prompt_style: str | None = None,
        adapter: str | None = None,
        device: str | None = None,
        max_passages: int | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = name
        self.max_passages = max_passages  # the model's quirk (models.py), Pipeline's default passages
        self.path = path
        if path.is_file():
            check_gguf(path)  # a single file must be GGUF; anything else is a directory
            src, extra = str(path.parent), {"gguf_file": path.name}
        elif path.is_dir():
            src, extra = str(path), {}
        else:
            raise ModelNotFound(f"model {path} does not exist")
        cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
        self.device = device or ("cuda" if cuda else "cpu")
        if cuda:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            extra["device_map"] = self.device if self.device != "cuda" else "auto"
        else:
            dtype = torch.float32  # CPUs have no fast half-precision matmul
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=True, **_only_gguf(extra))
            self.hf = AutoModelForCausalLM.from_pretrained(src, dtype=dtype, local_files_only=True, **extra)
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise _load_error(path, e) from e
        if adapter:
            self.hf = _apply_adapter(self.hf, Path(adapter))
        if not cuda:
            self.hf.to(self.device)
        self.hf.eval()
        trained = getattr(self.hf.config, "max_position_embeddings", None) or DEFAULT_N_CTX
        self.context_length = n_ctx or min(DEFAULT_N_CTX, trained)
        self.chat_template = getattr(self.tokenizer, "chat_template", None)
        self.prompt_style = check_prompt_style(name, self.chat_template, prompt_style)
        bos = self.tokenizer.bos_token
        self._bos = bos if isinstance(bos, str) else ""

    def _encode(self, text: str) -> list[int]:
        # Chat templates usually write the BOS text themselves; do not add a second one.
        add = not (self._bos and text.startswith(self._bos))
        return self.tokenizer(text, add_special_tokens=add)["input_ids"]

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    def render_chat(self, messages: list[dict]) -> str:
        if not self.chat_template:
            raise BackendError(f"{self.model} has no chat template; use --prompt-style fewshot")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(
        self, prompt: str, decoding: Decoding, on_token: Callable[[str], None] | None = None, *, cancel=None
    ) -> Completion:
        on_token = cancellable(on_token, cancel)  # a set cancel flag stops at the next token
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

        t0 = time.perf_counter()
        ids = self._encode(prompt)
        room = answer_room(len(ids), self.context_length)
        scanner = StopScanner(decoding.stop, on_token)
        counter = {"n": 0}

        class _Stream(TextStreamer):
            # transformers decodes with its own look-ahead for partial words; we get whole text.
            def put(self, value):
                if counter.get("prompt_seen"):
                    counter["n"] += int(value.numel())
                counter["prompt_seen"] = True
                super().put(value)

            def on_finalized_text(self, text: str, stream_end: bool = False):
                scanner.feed(text)

        class _StopOnText(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), scanner.stopped, dtype=torch.bool, device=input_ids.device)

        kwargs = {
            "max_new_tokens": min(decoding.max_tokens, room),
            "do_sample": not decoding.greedy,
            "repetition_penalty": decoding.repetition_penalty,
            "streamer": _Stream(self.tokenizer, skip_prompt=True, skip_special_tokens=True),
            "stopping_criteria": StoppingCriteriaList([_StopOnText()]),
            "pad_token_id": self.tokenizer.eos_token_id if self.tokenizer.pad_token_id is None else self.tokenizer.pad_token_id,
        }
        if decoding.no_repeat_ngram:
            kwargs["no_repeat_ngram_size"] = decoding.no_repeat_ngram
        if not decoding.greedy:
            torch.manual_seed(decoding.seed)
            kwargs.update(temperature=decoding.temperature, top_p=decoding.top_p, top_k=decoding.top_k or None)
        else:
            # Some checkpoints ship sampling defaults in generation_config; greedy must ignore them.
            kwargs.update(temperature=None, top_p=None, top_k=None)
        input_ids = torch.tensor([ids], device=self.hf.device)
        try:
            with torch.inference_mode():
                out = self.hf.generate(input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
        except RuntimeError as e:
            raise BackendError(f"generation failed on {self.device}: {str(e).splitlines()[0]}") from e
        new = out[0, len(ids):]
        hit_eos = len(new) > 0 and int(new[-1]) in self._eos_ids()
        text = scanner.finish()
        n = counter["n"] - (1 if hit_eos else 0)
        finish = "stop" if scanner.stopped or hit_eos else "length"
        return Completion(
            text=text,
            prompt_tokens=len(ids),
            completion_tokens=max(n, 0),
            first_token_ms=ms_since(t0, scanner.first_token_at) if scanner.first_token_at else None,
            total_ms=ms_since(t0),
            finish_reason=finish,
        )


    def _eos_ids(self) -> set[int]:
        ids = getattr(self.hf.generation_config, "eos_token_id", None)
        ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids


def _only_gguf(extra: dict) -> dict:
    return {"gguf_file": extra["gguf_file"]} if "gguf_file" in extra else {}


def _apply_adapter(model, adapter: Path):
    if not (adapter / "adapter_config.json").is_file():
        raise ModelNotFound(f"{adapter} is not a PEFT adapter directory (no adapter_config.json)")
    require("train", "a PEFT adapter on the hf backend")
    try:
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(adapter), local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise BackendError(f"could not apply adapter {adapter}: {str(e).splitlines()[0]}") from e
