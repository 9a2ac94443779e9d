"""Every shipped experiment file (pipelines/*.yaml) loads and validates; overrides, validation errors,
run directories, steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ragkit.errors import UsageError
from ragkit.experiment.config import ExperimentConfig, apply_override, load_experiment
from ragkit.experiment.sweep import is_sweep

ROOT = Path(__file__).resolve().parents[2]
# Files with a sweep: block expand into cells instead (tests/unit/test_sft_sweep.py).
PIPELINES = sorted(p for p in (ROOT / "pipelines").glob("*.yaml") if not is_sweep(p))


def test_the_required_pipelines_ship():
    assert {"sample-cpu.yaml", "sample-quick.yaml", "gpu.yaml"} <= {p.name for p in PIPELINES}


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_every_pipeline_file_validates(path):
    cfg = load_experiment(path)
    assert cfg.name == path.stem
    for p in cfg.corpus + cfg.bench:
        assert Path(p).is_absolute() and Path(p).exists()
    # The eval settings build a real EvalConfig, and the train options a real TrainConfig.
    ecfg = cfg.eval_config("b.jsonl", "out", "idx", {})
    assert ecfg.arms == cfg.eval.arms
    if cfg.train.enabled:
        for lang in cfg.train.languages:
            assert cfg.train.train_config("d.jsonl", cfg.base_model(lang), "o").base


def test_sample_pipelines_shape():
    quick = load_experiment(ROOT / "pipelines" / "sample-quick.yaml")
    assert quick.eval.limit == 20 and set(quick.eval.arms) == {"closed_book", "rag"} and not quick.train.enabled
    full = load_experiment(ROOT / "pipelines" / "sample-cpu.yaml")
    assert full.eval.arms == ["closed_book", "rag", "sft", "sft_rag"] and full.eval.limit is None
    assert full.train.enabled and full.train.options.device == "cpu"
    assert load_experiment(ROOT / "pipelines" / "gpu.yaml").train.options.device == "cuda"
    # The tiny-model run names its models, so it reproduces whatever the defaults become.
    assert full.eval.models == {"en": "smollm2-135m", "zh": "gemma3-270m"}


def test_qwen_pipelines_compare_on_one_base_with_the_same_settings():
    four = load_experiment(ROOT / "pipelines" / "sample-qwen.yaml")
    ref = load_experiment(ROOT / "pipelines" / "sample-qwen15-base.yaml")
    assert four.eval.arms == ["closed_book", "rag", "sft", "sft_rag", "oracle"] and ref.eval.arms == ["closed_book", "rag"]
    assert four.eval.general_bench and Path(four.eval.general_bench).name == "retention.jsonl"
    # every arm and language of the four-arm run on one base, trained on that same base
    assert {four.base_model(lang) for lang in ("en", "zh")} == {"qwen2.5-coder-0.5b"}
    assert set(four.eval.models.values()) == {"qwen2.5-coder-0.5b"} and set(ref.eval.models.values()) == {"qwen2.5-coder-1.5b"}
    same = ("k", "mode", "max_tokens", "temperature")
    assert [getattr(four.eval, f) for f in same] == [getattr(ref.eval, f) for f in same]


def minimal(tmp_path) -> Path:
    (tmp_path / "corpus").mkdir(exist_ok=True)
    (tmp_path / "corpus" / "a.md").write_text("The X2 warranty is 24 months.\n")
    (tmp_path / "bench.jsonl").write_text(json.dumps(
        {"id": "1", "question": "How long is the X2 warranty?", "answers": ["24 months"], "sources": ["a.md"],
         "category": "knowledge", "difficulty": "easy"}) + "\n")
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({
        "name": "mini", "corpus": "corpus", "bench": "bench.jsonl",
        "index": {"embed_model": "fake-embedder", "chunk_size": 32, "chunk_overlap": 4},
        "sft_data": {"enabled": False}, "train": {"enabled": False},
        "eval": {"arms": ["closed_book", "rag"], "models": {"*": "fake"}, "mode": "bm25", "min_score": 0.0,
                 "max_tokens": 8},
    }))
    return p


def test_relative_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    p = minimal(tmp_path)
    monkeypatch.chdir("/")
    cfg = load_experiment(p)
    assert cfg.corpus == [str(tmp_path / "corpus")] and cfg.bench == [str(tmp_path / "bench.jsonl")]


def test_general_bench_is_relative_to_the_file_and_in_the_eval_hash(tmp_path, monkeypatch):
    p = minimal(tmp_path)
    (tmp_path / "general.jsonl").write_text((tmp_path / "bench.jsonl").read_text())
    d = yaml.safe_load(p.read_text())
    d["eval"]["general_bench"] = "general.jsonl"
    p.write_text(yaml.safe_dump(d))
    monkeypatch.chdir("/")
    cfg = load_experiment(p)
    assert cfg.eval.general_bench == str(tmp_path / "general.jsonl")
    assert cfg.eval_config("b", "o", "i", {}).general_bench == cfg.eval.general_bench
    monkeypatch.chdir(tmp_path / "corpus")  # on the command line: relative to the current directory
    assert load_experiment(p, ["eval.general_bench=../general.jsonl"]).eval.general_bench == str(tmp_path / "general.jsonl")
    with pytest.raises(UsageError, match="eval.general_bench: general bench file .*missing.jsonl does not exist"):
        load_experiment(p, ["eval.general_bench=missing.jsonl"])


def test_overrides(tmp_path, monkeypatch):
    p = minimal(tmp_path)
    cfg = load_experiment(p, ["eval.limit=3", "eval.arms=[rag]", "eval.models.en=other", "index.chunk_size=64",
                            "description=hello world"])
    assert cfg.eval.limit == 3 and cfg.eval.arms == ["rag"] and cfg.eval.models == {"*": "fake", "en": "other"}
    assert cfg.index.chunk_size == 64 and cfg.description == "hello world"
    # A path given on the command line is relative to the current directory.
    monkeypatch.chdir(tmp_path / "corpus")
    cfg = load_experiment(p, ["bench=../bench.jsonl"])
    assert cfg.bench == [str(tmp_path / "bench.jsonl")]
    d = {"eval": 3}
    with pytest.raises(UsageError, match="not a section"):
        apply_override(d, "eval.limit=3")
    with pytest.raises(UsageError, match="KEY=VALUE"):
        apply_override({}, "eval.limit")


@pytest.mark.parametrize("override, msg", [
    ("eval.arms=[rag, nope]", "unknown arm"),
    ("eval.kk=3", "eval.kk: unknown setting"),
    ("index.chunk_size=4", "chunk_size"),
    ("train.options.epochs=0", "epochs must be"),
    ("train.options.bogus=1", "train.options.bogus: unknown setting"),
    ("train.languages=[fr]", "languages"),
    ("sft_data.options.per_chunk=0", "sft_data.options.per_chunk: must be at least 1"),
    ("sft_data.options.nope=1", "sft_data.options.nope: unknown setting"),
    ("sft_data.mix=general.jsonl", "mix_ratio"),
    ("name=bad name!", "name: must be"),
    ("bench=missing.jsonl", "does not exist"),
    ("extra.x=1", "extra: unknown setting"),
    ("eval.arms=[closed_book, sft]", "training is disabled"),
])
def test_validation_errors_are_clear(tmp_path, override, msg):
    p = minimal(tmp_path)
    if override.startswith(("train.options", "train.languages")):
        override_list = ["train.enabled=true", override]
    else:
        override_list = [override]
    with pytest.raises(UsageError, match=msg):
        load_experiment(p, override_list)


def test_missing_required_keys_and_bad_yaml(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("name: x\n")
    with pytest.raises(UsageError, match="corpus: required"):
        load_experiment(p)
    p.write_text("name: [unclosed\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_experiment(p)
    with pytest.raises(UsageError, match="does not exist"):
        load_experiment(tmp_path / "nope.yaml")


def test_config_dataclass_validates_directly(tmp_path):
    with pytest.raises(ValueError, match="corpus"):
        ExperimentConfig(name="x", corpus=[], bench=[str(tmp_path)])


def test_run_directory_choice(tmp_path):
    from ragkit.experiment.steps import choose_run_dir

    cfg = load_experiment(minimal(tmp_path))
    runs = tmp_path / "runs"
    d1, resumed = choose_run_dir(cfg, runs)
    assert not resumed and d1.parent == runs and d1.name.startswith("mini-")
    with pytest.raises(UsageError, match="no earlier run"):
        choose_run_dir(cfg, runs, "resume")
    d1.mkdir(parents=True)
    (d1 / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    assert choose_run_dir(cfg, runs) == (d1, True)  # same settings: continue
    changed = load_experiment(minimal(tmp_path), ["eval.limit=1"])
    d2, resumed = choose_run_dir(changed, runs)
    assert d2 != d1 and not resumed  # changed settings: a new run to compare with
    assert choose_run_dir(changed, runs, "resume") == (d1, True)
    d3, _ = choose_run_dir(cfg, runs, "new")
    assert d3 != d1
    # Another pipeline whose name starts the same is not "this" pipeline.
    other = runs / "mini-extra-20250101-000000"
    other.mkdir()
    (other / "config.yaml").write_text("{}")
    assert choose_run_dir(cfg, runs)[0] == d1


def test_split_by_language(tmp_path):
    from ragkit.experiment.steps import split_by_language

    data = tmp_path / "qa.jsonl"
    recs = [{"instruction": "How long is the warranty?", "output": "24 months"},
            {"messages": [{"role": "user", "content": "保修多久？"}, {"role": "assistant", "content": "两年"}]},
            {"instruction": "What is the flight time?", "output": "38 minutes"}]
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    files = split_by_language(data, tmp_path, ["en", "zh"])
    assert len(files["en"].read_text().splitlines()) == 2
    assert json.loads(files["zh"].read_text(encoding="utf-8"))["messages"][1]["content"] == "两年"
    assert set(split_by_language(data, tmp_path, ["en"])) == {"en"}
