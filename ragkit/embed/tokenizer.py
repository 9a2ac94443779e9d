"""The embedding model's tokenizer read straight from its tokenizer.json with the `tokenizers`
library, for the ONNX embedder.

Why: `transformers.AutoTokenizer` imports torch (about 2.5 s on two cores, most of the time a cold
`ragkit ask` spent "retrieving"), while the ONNX path needs only the Rust tokenizer. This wrapper
gives the few attributes and the call the ONNX embedder uses, with the same ids (tested against
AutoTokenizer in tests/unit/test_embed_tokenizer.py). A model without a tokenizer.json falls back
to AutoTokenizer (`load_tokenizer`).
"""

from __future__ import annotations

import json
from pathlib import Path


class FastTokenizer:
    """`tokenizers.Tokenizer` with the surface of a transformers fast tokenizer that ragkit uses."""

    padding_side = "right"

    def __init__(self, directory: Path, max_length: int | None = None):
        from tokenizers import Tokenizer

        config = _read(directory / "tokenizer_config.json")
        self.backend_tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.backend_tokenizer.no_padding()
        self.backend_tokenizer.no_truncation()
        # A second copy truncates (to the model's limit, special tokens kept, as transformers does):
        # truncation is the tokenizer's state, and the copies are shared between threads.
        self._truncating = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._truncating.no_padding()
        self.model_max_length = int(max_length or config.get("model_max_length") or 512)
        pad = config.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_token_id = self.backend_tokenizer.token_to_id(pad) if pad else 0
        self.pad_token_type_id = 0
        self.padding_side = config.get("padding_side", "right")
        bert = "Bert" in str(config.get("tokenizer_class", "Bert"))
        self.model_input_names = config.get("model_input_names") or (
            ["input_ids", "token_type_ids", "attention_mask"] if bert else ["input_ids", "attention_mask"])

    @property
    def model_max_length(self) -> int:
        return self._max_length

    @model_max_length.setter
    def model_max_length(self, value: int) -> None:
        self._max_length = int(value)
        self._truncating.enable_truncation(self._max_length)

    def __call__(self, texts, truncation: bool = False, max_length: int | None = None,
                 add_special_tokens: bool = True, verbose: bool = False) -> dict:
        single = isinstance(texts, str)
        if truncation and max_length not in (None, self.model_max_length):
            raise ValueError(f"this tokenizer truncates to {self.model_max_length} tokens only")
        tok = self._truncating if truncation else self.backend_tokenizer
        encs = tok.encode_batch([texts] if single else list(texts), add_special_tokens=add_special_tokens)
        out = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
        for e in encs:
            out["input_ids"].append(list(e.ids))
            out["token_type_ids"].append(list(e.type_ids))
            out["attention_mask"].append(list(e.attention_mask))
        return {k: v[0] for k, v in out.items()} if single else out


    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.backend_tokenizer.id_to_token(i) for i in ids]


def load_tokenizer(directory: Path, max_length: int | None = None):
    """A FastTokenizer where the model ships tokenizer.json, else transformers' AutoTokenizer."""
    if (directory / "tokenizer.json").is_file():
        return FastTokenizer(directory, max_length)
    from transformers import AutoTokenizer

    kw = {"model_max_length": max_length} if max_length else {}
    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True, **kw)


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
