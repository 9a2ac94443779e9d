"""Experiment files (pipelines/*.yaml): one whole experiment, which `ragkit run` carries out.

"Experiment" here, not "pipeline": `ragkit.Pipeline` is the answer path (retrieve + prompt +
generate) that ask, eval and serve share; an experiment is a run of ingest → build-sft-data → train
→ eval → report over one corpus and bench (ragkit.experiment.steps). The files keep their folder
name, pipelines/, and the command its name, `ragkit run`.

An experiment file names the corpus, the index settings, the SFT data and training settings, and
the eval (arms, bench); or, instead of a bench, `bench_draft` to draft one from the corpus. Each section is a typed model (ragkit.settings): the eval section is the
same `EvalSettings` that `ragkit eval` reads its defaults from, `sft_data.options` is
`SFTDataConfig` and `train.options` is `TrainOptions`, so one default serves the CLI, the files and
the API. A wrong value is one sentence naming its path (`eval.k: expected an integer, got 'five'`).

Relative paths in an experiment file are relative to the file; in `--set` overrides, to the current
directory.

    from ragkit.experiment import load_experiment
    cfg = load_experiment("pipelines/sample-quick.yaml", ["eval.limit=5"])
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from ..benchset.draft import DraftConfig
from ..errors import UsageError
from ..eval.arms import ARMS
from ..eval.config import EvalConfig, EvalSettings
from ..index import IngestConfig
from ..ingest.chunking import ChunkingConfig
from ..models import default_llm
from ..pipeline import AnswerSettings
from ..settings import Settings, dataclass_default, split_commas
from ..sftdata.qa import SFTDataConfig
from ..train.train import TrainConfig, TrainOptions

PATH_KEYS = ("corpus", "bench")
LANGS = ("en", "zh")
Lang = Literal["en", "zh"]
PathList = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]


class IndexSettings(Settings):
    """How the corpus is ingested; defaults are IngestConfig's and ChunkingConfig's own."""

    embed_model: str = dataclass_default(IngestConfig, "embed_model")
    chunk_size: int = dataclass_default(ChunkingConfig, "chunk_size")
    chunk_overlap: int = dataclass_default(ChunkingConfig, "chunk_overlap")
    # an experiment builds its own index in its run directory: no earlier index to keep the type of
    dense_index: Literal["flat", "hnsw", "ivf"] = "flat"
    batch_size: int | None = dataclass_default(IngestConfig, "batch_size")

    @model_validator(mode="after")
    def _library_checks(self) -> IndexSettings:
        self.ingest_config()  # the library's own checks, with its messages
        return self

    def ingest_config(self) -> IngestConfig:
        return IngestConfig(embed_model=self.embed_model, dense_index=self.dense_index, batch_size=self.batch_size,
                            chunking=ChunkingConfig(chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap))


class SFTDataSettings(Settings):
    """QA pairs for training, from every chunk of the index (ragkit.sftdata.qa.build_sft_data).

    `options` are SFTDataConfig fields (per_chunk, paraphrases, method, tasks, ...).
    `exclude_bench` drops generated questions that resemble a bench question, so the sft arms
    are not trained on the test; `mix` adds general instruction data (a path) at `mix_ratio`.
    """

    enabled: bool = True
    exclude_bench: bool = True
    format: Literal["alpaca", "sharegpt", "messages"] = "alpaca"
    mix: str | None = None
    mix_ratio: float = 0.0
    options: SFTDataConfig = Field(default_factory=SFTDataConfig)

    @model_validator(mode="after")
    def _mix(self) -> SFTDataSettings:
        if self.mix and not 0 < self.mix_ratio < 1:
            raise ValueError("mix_ratio must be between 0 and 1 when sft_data.mix is set")
        if self.mix and not Path(self.mix).is_file():
            raise ValueError(f"mix: {self.mix} does not exist")
        return self

    def data_config(self) -> SFTDataConfig:
        return self.options


class TrainSettings(Settings):
    """One adapter per language in `languages`, each on `base[lang]` (default: the eval model for
    that language); `options` are ragkit.train.train.TrainOptions fields (epochs, rank, lr, ...).

    `export_gguf` also writes each adapter as a GGUF LoRA, so the tuned arms run on llama.cpp over
    the same quantised base GGUF as the base arms (like for like, and several times faster on CPU
    than transformers); it needs a GGUF base model, such as the bundled ones."""

    enabled: bool = True
    languages: Annotated[list[Lang], BeforeValidator(split_commas)] = Field(default_factory=lambda: list(LANGS))
    base: dict[Lang, str] = Field(default_factory=dict)
    export_gguf: bool = True
    options: TrainOptions = Field(default_factory=TrainOptions)

    @model_validator(mode="after")
    def _some_language(self) -> TrainSettings:
        if self.enabled and not self.languages:
            raise ValueError("languages is empty; list en and/or zh, or set enabled: false")
        return self

    def train_config(self, data: str, base: str, out: str) -> TrainConfig:
        return TrainConfig(**self.options.model_dump(), data=data, base=base, out=out)


class RaftSettings(Settings):
    """A second adapter per language for the raft_rag arm, trained on RAFT data built from the same
    QA pairs as sft_data's (ragkit/sftdata/raft.py, docs/raft.md). `options` are SFTDataConfig
    fields laid over sft_data.options (distractors, oracle_share, negatives, without_oracle,
    quote_chars; the QA settings are better left alone, so that both recipes read the same pairs),
    `train` TrainOptions fields laid over train.options. The prompt of every example is rendered
    with the eval section's answer settings (k, passages, context_tokens, examples), so the adapter
    trains on the prompts raft_rag will be sent."""

    enabled: bool = False
    options: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)


class BenchDraftSettings(Settings):
    """A bench drafted from the corpus after ingest (ragkit.benchset.draft), for an experiment on
    the user's own documents: `options` are DraftConfig fields (n, mix, writer, model, ...). The
    draft lands in the run directory as bench.jsonl; review it there (`ragkit bench review`) and run
    again: eval then answers the accepted items only, and the draft is not redone."""

    enabled: bool = False
    options: DraftConfig = Field(default_factory=DraftConfig)


class ExperimentConfig(Settings):
    """One experiment file, resolved: every section with its defaults filled in."""

    name: str
    corpus: PathList
    bench: PathList = Field(default_factory=list)  # empty with bench_draft.enabled: the bench is drafted
    description: str = ""
    index: IndexSettings = Field(default_factory=IndexSettings)
    bench_draft: BenchDraftSettings = Field(default_factory=BenchDraftSettings)
    sft_data: SFTDataSettings = Field(default_factory=SFTDataSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    raft: RaftSettings = Field(default_factory=RaftSettings)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ValueError("must be letters, digits, '-', '_' or '.', e.g. sample-quick")
        return name

    @field_validator("corpus", "bench")
    @classmethod
    def _paths_exist(cls, value: list[str], info) -> list[str]:
        if (not value and info.field_name == "corpus") or not all(value):
            raise ValueError("expected a path or a list of paths")
        missing = [v for v in value if not Path(v).exists()]
        if missing:
            raise ValueError(f"{', '.join(missing)} does not exist")
        return value

    @model_validator(mode="after")
    def _one_bench(self) -> ExperimentConfig:
        if not self.bench and not self.bench_draft.enabled:
            raise ValueError("bench: expected a path or a list of paths (or bench_draft.enabled: true to draft "
                             "one from the corpus)")
        if self.bench and self.bench_draft.enabled:
            raise ValueError("bench is set and bench_draft is enabled: keep one (bench: [] to use the draft)")
        return self

    @model_validator(mode="after")
    def _tuned_arms_need_training(self) -> ExperimentConfig:
        tuned = [a for a in self.eval.arms if ARMS[a].tuned]
        if tuned and not (self.train.enabled and self.sft_data.enabled):
            raise ValueError(f"eval.arms has {', '.join(sorted(tuned))} but training is disabled; "
                             "enable sft_data and train or drop those arms")
        raft_arms = [a for a in self.eval.arms if ARMS[a].recipe == "raft"]
        if raft_arms and not self.raft.enabled:
            raise ValueError(f"eval.arms has {', '.join(raft_arms)} but raft training is off; set raft.enabled: "
                             "true or drop that arm")
        if self.raft.enabled:
            self.raft_data_config()  # the merged settings' own checks, named raft.options / raft.train
            self.raft_train_options()
        return self

    def raft_data_config(self) -> SFTDataConfig:
        """sft_data.options with raft.options over them, recipe raft."""
        merged = {**self.sft_data.options.model_dump(), **self.raft.options, "recipe": "raft"}
        return SFTDataConfig.check(merged, "raft.options")

    def raft_train_options(self) -> TrainOptions:
        """train.options with raft.train over them (a batch size given there gets its own grad_accum)."""
        exclude = {"grad_accum"} if "batch_size" in self.raft.train else None
        merged = {**self.train.options.model_dump(exclude=exclude), **self.raft.train}
        return TrainOptions.check(merged, "raft.train")

    def answer_settings(self) -> AnswerSettings:
        """The eval section's answer settings: what shapes the prompts RAFT examples are rendered with."""
        return AnswerSettings.check({f: getattr(self.eval, f) for f in AnswerSettings.model_fields})

    def to_dict(self) -> dict:
        """The resolved experiment as JSON; the RAFT settings are left out where they hold their
        defaults, so that a run made before they existed is still the same experiment
        (steps.choose_run_dir compares these) and its steps keep their hashes."""
        d = self.model_dump(mode="json")
        d["sft_data"]["options"] = self.sft_data.options.without_raft_defaults()
        if self.raft == RaftSettings():
            d.pop("raft")
        return d

    def eval_config(self, bench: str, out: str, index: str | None, adapters: dict[str, str],
                    raft_adapters: dict[str, str] | None = None) -> EvalConfig:
        return EvalConfig(**self.eval.model_dump(), bench=bench, out=out, index=index, adapters=adapters,
                          raft_adapters=raft_adapters or {})

    def base_model(self, lang: str) -> str:
        return self.train.base.get(lang) or self.eval.models.get(lang) or self.eval.models.get("*") or default_llm(lang)


def resolve_paths(d: dict, root: Path) -> None:
    sft = d.get("sft_data")
    if isinstance(sft, dict) and isinstance(sft.get("mix"), str) and sft["mix"]:
        sft["mix"] = str((root / sft["mix"]).resolve())
    ev = d.get("eval")
    if isinstance(ev, dict) and isinstance(ev.get("general_bench"), str) and ev["general_bench"]:
        ev["general_bench"] = str((root / ev["general_bench"]).resolve())
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
    if parts[0] in PATH_KEYS or parts in (["sft_data", "mix"], ["eval", "general_bench"]):
        resolve_paths(d, Path.cwd())


def read_experiment_file(path: str | Path):
    """The parsed YAML of an experiment (or sweep) file; UsageError when it is missing or not YAML."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"experiment file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UsageError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None


def load_experiment(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read an experiment file, apply `--set` overrides, and validate; UsageError on any problem."""
    path = Path(path)
    raw = read_experiment_file(path)
    if not isinstance(raw, dict):
        raise UsageError(f"{path} must be a mapping with name, corpus, bench, index, sft_data, train, eval")
    d = copy.deepcopy(raw)
    resolve_paths(d, path.parent)
    for o in overrides:
        apply_override(d, o)
    try:
        return ExperimentConfig.check(d)
    except UsageError as e:
        raise type(e)(f"{path}: {e}") from None
