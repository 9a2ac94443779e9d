"""Pipeline files (pipelines/*.yaml): one whole experiment, and `ragkit run` that carries it out.

A pipeline names the corpus, the index settings, the SFT data and training settings, and the eval
(arms, bench). `ragkit.eval.steps.run_pipeline` performs each step not already up to date, in order

    ingest → build-sft-data → train (one LoRA adapter per language) → eval → report

and writes the resolved config and every output under runs/<name>-<timestamp>/. A step is up to
date when state.json records it finished with the same inputs (a hash of its settings and of the
files it reads), so re-running continues an interrupted run and redoes only what changed.

Relative paths in a pipeline file are relative to the file; in `--set` overrides, to the current
directory. Settings are checked when loaded (`PipelineConfig.__post_init__` raises ValueError).

    from ragkit.experiment import load_pipeline
    cfg = load_pipeline("pipelines/sample-quick.yaml", ["eval.limit=5"])
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import UsageError

PATH_KEYS = ("corpus", "bench")
LANGS = ("en", "zh")


def _strict(cls, data: dict | None, where: str):
    """Build dataclass `cls` from a dict, naming unknown keys (YAML typos) in the error."""
    data = dict(data or {})
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**data)


@dataclass
class IndexSettings:
    embed_model: str = "all-minilm-l6-v2"
    chunk_size: int = 200
    chunk_overlap: int = 40
    dense_index: str = "flat"
    batch_size: int = 64

    def __post_init__(self) -> None:
        self.ingest_config()  # the library's own checks, with its messages

    def ingest_config(self):
        from .index.build import IngestConfig
        from .ingest.chunking import ChunkingConfig

        return IngestConfig(embed_model=self.embed_model, dense_index=self.dense_index, batch_size=self.batch_size,
                            chunking=ChunkingConfig(chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap))


@dataclass
class SFTDataSettings:
    """QA pairs for training, from every chunk of the index (ragkit.sft.qa.build_sft_data).

    `options` are SFTDataConfig fields (per_chunk, paraphrases, method, tasks, ...).
    `exclude_bench` drops generated questions that resemble a bench question, so the sft arms
    are not trained on the test; `mix` adds general instruction data (a path) at `mix_ratio`.
    """

    enabled: bool = True
    exclude_bench: bool = True
    format: str = "alpaca"
    mix: str | None = None
    mix_ratio: float = 0.0
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mix and not 0 < self.mix_ratio < 1:
            raise ValueError("sft_data.mix_ratio must be between 0 and 1 when sft_data.mix is set")
        if self.mix and not Path(self.mix).is_file():
            raise ValueError(f"sft_data.mix: {self.mix} does not exist")
        if self.format not in ("alpaca", "sharegpt", "messages"):
            raise ValueError("sft_data.format must be alpaca, sharegpt or messages")
        self.data_config()

    def data_config(self):
        from .sft.qa import SFTDataConfig

        try:
            return SFTDataConfig(**self.options)
        except TypeError as e:
            names = ", ".join(f.name for f in fields(SFTDataConfig))
            raise ValueError(f"sft_data.options: {e}; known: {names}") from None


@dataclass
class TrainSettings:
    """One adapter per language in `languages`, each on `base[lang]` (default: the eval model for
    that language); `options` are ragkit.sft.train.TrainConfig fields (epochs, rank, lr, ...).

    `export_gguf` also writes each adapter as a GGUF LoRA, so the tuned arms run on llama.cpp over
    the same quantised base GGUF as the base arms (like for like, and several times faster on CPU
    than transformers); it needs a GGUF base model, such as the bundled ones."""

    enabled: bool = True
    languages: list[str] = field(default_factory=lambda: ["en", "zh"])
    base: dict[str, str] = field(default_factory=dict)
    export_gguf: bool = True
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [x for x in [*self.languages, *self.base] if x not in LANGS]
        if bad:
            raise ValueError(f"train: languages must be among {', '.join(LANGS)}, not {', '.join(bad)}")
        if self.enabled and not self.languages:
            raise ValueError("train: languages is empty; list en and/or zh, or set enabled: false")
        self.train_config("data.jsonl", "base", "out")  # unknown or bad options fail now

    def train_config(self, data: str, base: str, out: str):
        from .sft.train import TrainConfig

        reserved = {"data", "base", "out"} & set(self.options)
        if reserved:
            raise ValueError(f"train.options: {', '.join(sorted(reserved))} are set by the pipeline")
        try:
            return TrainConfig(data=data, base=base, out=out, **self.options)
        except TypeError as e:
            names = ", ".join(f.name for f in fields(TrainConfig) if f.name not in ("data", "base", "out"))
            raise ValueError(f"train.options: {e}; known: {names}") from None


@dataclass
class EvalSettings:
    """The eval arms and their shared settings (see ragkit.eval.runner.EvalConfig)."""

    arms: list[str] = field(default_factory=lambda: ["closed_book", "rag", "sft", "sft_rag"])
    models: dict[str, str] = field(default_factory=dict)
    backend: str | None = None
    n_ctx: int | None = None
    k: int = 5
    mode: str = "hybrid"
    min_score: float | None = None
    max_tokens: int = 48
    temperature: float = 0.0
    limit: int | None = None
    judge: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.eval_config("bench.jsonl", "out", index="index", adapters={})

    def eval_config(self, bench: str, out: str, index: str | None, adapters: dict[str, str]):
        from .eval.runner import EvalConfig

        d = asdict(self)
        return EvalConfig(bench=bench, out=out, index=index, adapters=adapters, **d)


@dataclass
class PipelineConfig:
    name: str
    corpus: list[str]
    bench: list[str]
    description: str = ""
    index: IndexSettings = field(default_factory=IndexSettings)
    sft_data: SFTDataSettings = field(default_factory=SFTDataSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)

    def __post_init__(self) -> None:
        import re

        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ValueError("name must be letters, digits, '-', '_' or '.', e.g. sample-quick")
        for key in PATH_KEYS:
            value = getattr(self, key)
            value = [value] if isinstance(value, str) else value
            if not value or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{key} must be a path or a list of paths")
            missing = [v for v in value if not Path(v).exists()]
            if missing:
                raise ValueError(f"{key}: {', '.join(missing)} does not exist")
            setattr(self, key, value)
        tuned = {"sft", "sft_rag"} & set(self.eval.arms)
        if tuned and not (self.train.enabled and self.sft_data.enabled):
            raise ValueError(f"eval.arms has {', '.join(sorted(tuned))} but training is disabled; "
                             "enable sft_data and train or drop those arms")

    @classmethod
    def from_dict(cls, d: dict) -> PipelineConfig:
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for key in ("name", "corpus", "bench"):
            if key not in d:
                raise ValueError(f"the pipeline needs '{key}'")
        return cls(
            name=d["name"], corpus=d["corpus"], bench=d["bench"], description=d.get("description", ""),
            index=_strict(IndexSettings, d.get("index"), "index"),
            sft_data=_strict(SFTDataSettings, d.get("sft_data"), "sft_data"),
            train=_strict(TrainSettings, d.get("train"), "train"),
            eval=_strict(EvalSettings, d.get("eval"), "eval"),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def base_model(self, lang: str) -> str:
        from .models import default_llm

        return self.train.base.get(lang) or self.eval.models.get(lang) or self.eval.models.get("*") or default_llm(lang)


def _resolve_paths(d: dict, root: Path) -> None:
    sft = d.get("sft_data")
    if isinstance(sft, dict) and isinstance(sft.get("mix"), str) and sft["mix"]:
        sft["mix"] = str((root / sft["mix"]).resolve())
    for key in PATH_KEYS:
        v = d.get(key)
        if isinstance(v, str):
            d[key] = str((root / v).resolve()) if v else v
        elif isinstance(v, list):
            d[key] = [str((root / x).resolve()) if isinstance(x, str) else x for x in v]


def apply_override(d: dict, assignment: str) -> None:
    """`a.b=value` into nested dict `d`; the value is read as YAML (5, true, null, [rag, sft])."""
    import yaml

    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--set {assignment}: expected KEY=VALUE, e.g. --set eval.limit=20")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    parts = key.strip().split(".")
    node = d
    for p in parts[:-1]:
        if node.get(p) is None:
            node[p] = {}
        if not isinstance(node[p], dict):
            raise UsageError(f"--set {assignment}: '{p}' is not a section")
        node = node[p]
    node[parts[-1]] = value
    if parts[0] in PATH_KEYS or parts == ["sft_data", "mix"]:
        _resolve_paths(d, Path.cwd())


def load_pipeline(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """Read a pipeline file, apply `--set` overrides, and validate; UsageError on any problem."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"pipeline file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UsageError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{path} must be a mapping with name, corpus, bench, index, sft_data, train, eval")
    d = copy.deepcopy(raw)
    _resolve_paths(d, path.parent)
    for o in overrides:
        apply_override(d, o)
    try:
        return PipelineConfig.from_dict(d)
    except (ValueError, TypeError) as e:
        raise UsageError(f"{path}: {e}") from None


def config_hash(obj) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
