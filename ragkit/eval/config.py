"""Settings of `ragkit eval` (EvalConfig) and how they pick models, adapters and bench items.

Each item's question decides its language, and the language picks the model (`models`, default
models.default_llm: Qwen2.5-Coder-1.5B where installed, else the language's tiny model). The tuned
model of a language is `tuned_models[lang]` (a merged model) or its base with `adapters[lang]`; "*" stands for
every language; the raft_rag arm's adapter is `raft_adapters[lang]`. The arms, and the adapter's base and backend for a tuned arm: ragkit.eval.arms.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..errors import UsageError
from ..generate.base import Decoding
from ..lang import detect_language
from ..models import default_llm
from ..pipeline import AnswerSettings
from ..settings import CommaList
from ..types import BenchItem
from .arms import ARMS, DEFAULT_ARMS

# Which arms read the index and which need training: ragkit.eval.arms (one table).

LangMap = dict[Literal["*", "en", "zh"], str]  # lang or "*" (every language) -> model or adapter

# The answer length of `ragkit eval` and `ragkit run` alike: 48 tokens is what the measured
# runs used (sample-cpu, sample-quick); every bench answer is a short span, and the longest sample
# answers end well within it. `ragkit ask` keeps 256: there a person reads a whole sentence or two.
EVAL_MAX_TOKENS = 48


class EvalSettings(AnswerSettings):
    """What an experiment file's `eval:` section may set; `ragkit eval` adds the paths (EvalConfig).

    The one place the eval defaults live: `ragkit eval`'s options, pipelines/*.yaml and the API.
    How each question is answered (k, mode, min_score, context_tokens, reason, ...) is the answer
    path's own settings (`AnswerSettings`), the same for ask, eval and serve."""

    arms: CommaList = Field(default_factory=lambda: list(DEFAULT_ARMS))
    models: LangMap = Field(default_factory=dict)  # empty: the bundled default per language
    backend: Literal["llamacpp", "hf", "openai"] | None = None
    n_ctx: int | None = Field(default=None, ge=1)
    max_tokens: int = Field(default=EVAL_MAX_TOKENS, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    limit: int | None = Field(default=None, ge=1)
    judge: str | None = None
    seed: int = 0
    # A second bench of general items every arm also answers (ragkit.eval.retention): what tuning cost.
    general_bench: str | None = None

    @field_validator("general_bench")
    @classmethod
    def _general_bench_exists(cls, path: str | None) -> str | None:
        from pathlib import Path

        if path is not None and not Path(path).is_file():
            raise ValueError(f"general bench file {path} does not exist")
        return path

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        unknown = [a for a in arms if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
        if len(set(arms)) != len(arms):
            raise ValueError("each arm may be named once")
        return arms


class EvalConfig(EvalSettings):
    bench: str
    out: str
    index: str | None = None
    adapters: LangMap = Field(default_factory=dict)  # lang or "*" -> adapter path
    raft_adapters: LangMap = Field(default_factory=dict)  # lang or "*" -> adapter trained on RAFT data (raft_rag)
    tuned_models: LangMap = Field(default_factory=dict)  # lang or "*" -> merged model
    base_url: str | None = None
    repetition_penalty: float = Field(default=1.0, gt=0.0)
    n_boot: int = Field(default=2000, ge=100)  # bootstrap resamples for the confidence intervals

    @model_validator(mode="after")
    def _arms_have_an_index(self) -> EvalConfig:
        if any(ARMS[a].reads_index for a in self.arms) and not self.index:
            readers = [a.name for a in ARMS.values() if a.reads_index]
            raise ValueError(f"the {', '.join(readers[:-1])} and {readers[-1]} arms need an index")
        return self

    def decoding(self):
        return Decoding(temperature=self.temperature, max_tokens=self.max_tokens,
                        repetition_penalty=self.repetition_penalty, seed=self.seed)

    def base_model(self, lang: str) -> str | None:
        """The model for `lang`: named, else the bundled default (None: the server's own model)."""
        named = self.models.get(lang) or self.models.get("*")
        return named or (None if self.base_url else default_llm(lang))

    def tuned_model(self, lang: str) -> tuple[str | None, str | None] | None:
        """(model, adapter) answering the sft arms for `lang`, or None when there is no tuned model."""
        merged = self.tuned_models.get(lang) or self.tuned_models.get("*")
        if merged:
            return merged, None
        adapter = self.adapters.get(lang) or self.adapters.get("*")
        if adapter:
            return self.base_model(lang), adapter
        return None


def select_items(items: list[BenchItem], limit: int | None) -> list[BenchItem]:
    """`limit` items taken round-robin over (language, category) groups, file order within each, so
    a small slice still covers every language and category; all items when `limit` is None."""
    if limit is None or limit >= len(items):
        return items
    by_cat: dict[tuple[str, str], list[BenchItem]] = {}
    for it in items:
        by_cat.setdefault((detect_language(it.question), it.category), []).append(it)
    chosen: set[str] = set()
    queues = [list(v) for v in by_cat.values()]
    while len(chosen) < limit:
        for q in queues:
            if q and len(chosen) < limit:
                chosen.add(q.pop(0).id)
    return [it for it in items if it.id in chosen]


def config_dict(config: EvalConfig, n_items: int, n_bench: int) -> dict:
    """The settings as report.json records them."""
    d = config.model_dump()
    d["n_items"], d["n_bench_items"] = n_items, n_bench
    d["decoding"] = asdict(config.decoding())
    return d


def parse_lang_map(values: tuple[str, ...] | list[str], what: str) -> dict[str, str]:
    """CLI values 'MODEL' or 'LANG=MODEL' (repeatable) → {lang or '*': model}."""
    out: dict[str, str] = {}
    for v in values:
        lang, sep, rest = v.partition("=")
        if sep and lang in ("en", "zh", "*"):
            out[lang] = rest
        elif sep and len(lang) <= 3 and "/" not in lang:
            raise UsageError(f"--{what} {v}: the language before '=' must be en or zh")
        else:
            out["*"] = v
    return out
