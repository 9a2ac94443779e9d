"""RAFT data (`build-sft-data --recipe raft`, ragkit/sftdata/raft.py, ragkit/raft.py): oracle share and
seeding, distractor sources, the target, the training prompt against the prompt `ask` sends (evidence
selection included), the raft_rag arm in reports, experiments and sweeps."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from sft_helpers import tiny_tokenizer
from step_fakes import StepFakes

from ragkit import raft as R
from ragkit.generate.base import Decoding
from ragkit.generate.prompts import REFUSAL
from ragkit.index import IngestConfig, ingest
from ragkit.ingest.chunking import ChunkingConfig
from ragkit.pipeline import AnswerSettings, Pipeline
from ragkit.sftdata import raft as SR
from ragkit.sftdata.qa import SFTDataConfig, build_sft_data
from ragkit.train import data as sft_data
from ragkit.types import Chunk, Completion, Hit

DOCS = {
    "falcon.md": "# Falcon X2 Manual\n\nThe Falcon X2 flies for 38 minutes per charge. The battery takes 75 minutes "
                 "to recharge. The Falcon X2 weighs 895 g.\n\nThe Falcon X2 camera records at 60 frames per second.\n",
    "heron.md": "# Heron H1 Manual\n\nThe Heron H1 flies for 22 minutes per charge. The Heron H1 weighs 410 g. "
                "Its battery takes 50 minutes to recharge.\n",
    "kite.md": "# Kite K5 Guide\n\nThe Kite K5 has a range of 7 km. The Kite K5 weighs 1200 g. Its warranty lasts "
               "18 months.\n",
    "warranty-zh.md": "# 猎鹰 X2 保修政策\n\n猎鹰 X2 整机保修 24 个月，电池保修 12 个月。维修一般在 7 个工作日内完成。\n",
}


@pytest.fixture
def index(tmp_path, fake_embedder):
    root = tmp_path / "corpus"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    idx = tmp_path / "idx"
    ingest([root], idx, IngestConfig(embed_model="fake-embedder", chunking=ChunkingConfig(chunk_size=40, chunk_overlap=0)))
    return idx


def build(index, out, **kw):
    cfg = SFTDataConfig(recipe="raft", tasks=["direct"], paraphrases=1, **kw)
    return build_sft_data(index, out, cfg)


def rows_of(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class StubIndex:
    """search() returns every chunk, best first by shared words: the hard negatives of a question."""

    def __init__(self, chunks):
        self.chunks = chunks

    def search(self, query, k=5, mode="hybrid"):
        words = set(query.lower().split())
        ranked = sorted(self.chunks, key=lambda c: -len(words & set(c.text.lower().split())))
        return [Hit(i, c.chunk_id, c.source, 1.0, c.text, None, c.start, c.end) for i, c in enumerate(ranked[:k], 1)]


def synthetic(n_sources=6, per_source=4):
    chunks = [Chunk(f"s{s}-c{c}", f"doc{s}.md", f"Device {s} part {c} weighs {s * 10 + c} g.", 0, 10)
              for s in range(n_sources) for c in range(per_source)]
    rows = [(f"r{i}", f"How much does device {i % n_sources} part {i % per_source} weigh?",
             f"{(i % n_sources) * 10 + i % per_source} g",
             {"chunk_id": f"s{i % n_sources}-c{i % per_source}", "language": "en"}) for i in range(400)]
    return chunks, rows


def examples(seed, share=0.8, kind="hard", d=3):
    chunks, rows = synthetic()
    cfg = SimpleNamespace(distractors=d, oracle_share=share, without_oracle="answer", quote_chars=160)
    rng = random.Random(seed)
    picker = SR.DistractorPicker(StubIndex(chunks), chunks, kind, rng)
    return SR.raft_examples(rows, {c.chunk_id: c for c in chunks}, picker, cfg, rng), chunks


@pytest.mark.parametrize("share", [0.8, 0.5])
def test_the_oracle_is_in_about_p_of_examples_and_the_draw_is_seeded(share):
    ex, _ = examples(0, share)
    held = sum(1 for _, meta, _ in ex if meta["oracle"]) / len(ex)
    assert abs(held - share) < 0.06  # 400 draws: 3 standard deviations is about 0.06
    again, _ = examples(0, share)
    assert [m for _, m, _ in again] == [m for _, m, _ in ex]  # same seed, same examples and order
    other, _ = examples(1, share)
    assert [m for _, m, _ in other] != [m for _, m, _ in ex]
    # shuffled: the oracle is not always in the same slot
    slots = {[p["chunk_id"] for p in m["passages"]].index(m["oracle"]) for _, m, _ in ex if m["oracle"]}
    assert len(slots) == 4


@pytest.mark.parametrize("kind", ["hard", "random"])
def test_distractors_never_come_from_the_oracles_source(kind):
    ex, chunks = examples(0, 1.0, kind)
    by_id = {c.chunk_id: c for c in chunks}
    for _, meta, prov in ex:
        oracle = by_id[prov["chunk_id"]]
        others = [p for p in meta["passages"] if p["chunk_id"] != oracle.chunk_id]
        assert len(others) == 3 and all(p["source"] != oracle.source for p in others)
        assert len({p["chunk_id"] for p in meta["passages"]}) == 4


def test_build_sft_data_raft_writes_examples_from_a_real_index(index, tmp_path):
    out = tmp_path / "raft.jsonl"
    s = build(index, out, distractors=2, oracle_share=0.8)
    rows = rows_of(out)
    assert rows and s.raft["examples"] == len(rows) == s.rows["raft"]
    assert s.raft["distractors"]["hard"] > 0
    prov = {p["id"]: p for p in rows_of(tmp_path / "raft.provenance.jsonl")}
    for r in rows:
        meta = r[R.RAFT_KEY]
        assert set(r) >= {"system", "instruction", "output"} and r["input"] == ""
        assert meta["question"] in r["instruction"] and "[1]" in r["instruction"]
        oracle_source = prov[r["id"]]["source"]
        assert all(p["source"] != oracle_source for p in meta["passages"] if p["chunk_id"] != meta["oracle"])
        if meta["oracle"] and meta["answer"] in next(p["text"] for p in meta["passages"] if p["chunk_id"] == meta["oracle"]):
            assert r["output"].startswith(("Evidence [", "依据 [")) and r["output"].endswith(meta["answer"]) or \
                r["output"].startswith(meta["answer"] + " [")
        else:
            assert r["output"] == meta["answer"]
    # The same QA pairs as the qa recipe: every RAFT question is a question of the qa file.
    qa = build_sft_data(index, tmp_path / "qa.jsonl", SFTDataConfig(tasks=["direct"], paraphrases=1))
    assert {r[R.RAFT_KEY]["question"] for r in rows} == {q["instruction"] for q in rows_of(tmp_path / "qa.jsonl")}
    assert qa.kept == s.kept
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["raft"]["columns"]["system"] == "system" and "system" not in info["qa"]["columns"]


def test_messages_and_sharegpt_rows_carry_the_system_turn(index, tmp_path):
    for fmt in ("messages", "sharegpt"):
        out = tmp_path / f"raft-{fmt}.jsonl"
        build_sft_data(index, out, SFTDataConfig(recipe="raft", tasks=["direct"]), fmt=fmt)
        r = rows_of(out)[0]
        turns = r["messages"] if fmt == "messages" else r["conversations"]
        assert len(turns) == 3 and R.RAFT_KEY in r
        ex = sft_data.load_examples(out)
        assert all(e.raft is not None for e in ex)


def test_the_target_quotes_the_evidence_with_its_number_and_refuses_when_asked():
    meta = {"question": "How long does the Falcon X2 fly?", "lang": "en", "answer": "38 minutes", "oracle": "a",
            "without_oracle": "answer", "quote_chars": 160,
            "passages": [{"chunk_id": "b", "source": "heron.md", "text": "The Heron H1 flies for 22 minutes."},
                         {"chunk_id": "a", "source": "falcon.md",
                          "text": "The Falcon X2 is light. It flies for 38 minutes per charge. The battery takes 75 minutes."}]}
    target, n = R.raft_target(R.passages_of(meta), meta)
    assert n == 2 and target == 'Evidence [2]: "It flies for 38 minutes per charge." Answer: 38 minutes'
    assert R.final_answer(target) == "38 minutes"
    assert R.final_answer("38 minutes [2]") == "38 minutes [2]"  # other replies are left alone
    assert R.final_answer('Evidence [2]: "It flies for 38 minutes') == ""  # cut off before its answer
    absent = {**meta, "oracle": None}
    assert R.raft_target(R.passages_of(absent), absent) == ("38 minutes", None)
    assert R.raft_target(R.passages_of(absent), {**absent, "without_oracle": "refuse"})[0] == REFUSAL["en"]
    zh = {**meta, "lang": "zh", "answer": "24 个月", "passages": [
        {"chunk_id": "a", "source": "w.md", "text": "猎鹰 X2 整机保修 24 个月，电池保修 12 个月。维修一般在 7 个工作日内完成。"}]}
    target, n = R.raft_target(R.passages_of(zh), zh)
    assert target == "依据 [1]：“猎鹰 X2 整机保修 24 个月，电池保修 12 个月。”答案：24 个月"
    assert R.final_answer(target) == "24 个月"
    faq = {**meta, "answer": "It flies for 38 minutes per charge"}
    assert R.raft_target(R.passages_of(faq), faq)[0] == "It flies for 38 minutes per charge [2]"
    long = "x " * 200 + "the answer is 42 here " + "y " * 200
    q = R.quote_around(long, "42", 60)
    assert "42" in q and len(q) <= 62


class RecordingGenerator:
    """A generator with a real tokenizer's chat template and token count; records its prompts."""

    backend = "fake"
    model = "fake"
    prompt_style = "chat"
    max_passages = None

    def __init__(self, tok, context_length=4096):
        self.tok, self.context_length, self.prompts = tok, context_length, []
        self.render_chat = sft_data.chat_renderer(tok)

    def count_tokens(self, text):
        return len(sft_data.encode_prompt(self.tok, text))

    def generate(self, prompt, decoding, on_token=None):
        self.prompts.append(prompt)
        return Completion(text="38 minutes [1]")


class PassageIndex:
    """An index whose search returns the given hits: retrieval handing the pipeline an example's passages."""

    def __init__(self, hits):
        self.hits = hits

    def search(self, query, k=5, mode="hybrid"):
        return self.hits[:k]


@pytest.mark.parametrize("context_tokens", [200, 24, 0])
def test_the_training_prompt_equals_the_ask_prompt_for_the_same_passages(index, tmp_path, context_tokens):
    """ask retrieves the passages, selects evidence within context_tokens and sends the rag prompt:
    `ragkit train` renders a RAFT row to that same prompt, token for token."""
    out = tmp_path / "raft.jsonl"
    settings = AnswerSettings(context_tokens=context_tokens)
    build_sft_data(index, out, SFTDataConfig(recipe="raft", tasks=["direct"], paraphrases=1, distractors=2),
                   answer_settings=settings)
    tok = tiny_tokenizer()
    fmt = sft_data.prompt_format("chat", tok)
    checked, shortened = 0, 0
    for ex in sft_data.load_examples(out)[:8]:
        assert ex.raft["prompt"]["context_tokens"] == context_tokens
        enc = sft_data.encode_example(tok, fmt, ex, 4096)
        gen = RecordingGenerator(tok)
        pipe = Pipeline(PassageIndex(R.passages_of(ex.raft)), gen, settings=settings, reason="off", min_score=0.0)
        ans = pipe.answer(ex.raft["question"])
        trained = tok.decode(enc.input_ids[: enc.n_prompt])
        assert trained == gen.prompts[0] == ans.prompt
        assert "[1]" in trained
        whole = R.training_pair({**ex.raft, "prompt": {"context_tokens": 0}}, "chat", fmt.render_chat,
                                gen.count_tokens, 4096)[0]
        shortened += gen.count_tokens(trained) < gen.count_tokens(whole)
        checked += 1
    assert checked
    # evidence selection at work: a small budget leaves sentences out; 0 shows every chunk whole
    if context_tokens in (0, 24):
        assert (shortened > 0) == (context_tokens == 24)


def test_a_tight_max_len_trims_like_ask_and_the_target_follows():
    meta = {"question": "How long does the Falcon X2 fly?", "lang": "en", "answer": "38 minutes", "oracle": "a",
            "without_oracle": "answer", "quote_chars": 160, "prompt": {"context_tokens": 0},
            "passages": [{"chunk_id": "b", "source": "heron.md", "text": "The Heron H1 flies for 22 minutes. " * 20},
                         {"chunk_id": "a", "source": "falcon.md", "text": "The Falcon X2 flies for 38 minutes."}]}
    tok = tiny_tokenizer()

    def count(s):
        return len(sft_data.encode_prompt(tok, s))

    full = R.training_pair(meta, "chat", sft_data.chat_renderer(tok), count, 4096)
    assert full[1].startswith("Evidence [2]")
    short = R.training_pair(meta, "chat", sft_data.chat_renderer(tok), count, 900)
    gen = RecordingGenerator(tok, context_length=900)
    pipe = Pipeline(None, gen, context_tokens=0, decoding=Decoding(max_tokens=R.ANSWER_ROOM))
    plan = pipe.plan(meta["question"], pipe.evidence(meta["question"], R.passages_of(meta)), "en")
    assert short[0] == plan.text and len(plan.hits) == 1  # the second passage, the oracle, was dropped
    assert short[1] == "38 minutes"  # so the target is the answer alone, citing nothing


def test_evidence_selection_orders_the_passages_and_the_target_cites_the_oracles_number():
    """With evidence selection (the default) the passage with the best sentence comes first, as in
    ask; the target quotes the oracle's selected sentence under the number it is shown with."""
    meta = {"question": "How long does the Falcon X2 fly per charge?", "lang": "en", "answer": "38 minutes",
            "oracle": "a", "without_oracle": "answer", "quote_chars": 160, "prompt": {},
            "passages": [{"chunk_id": "b", "source": "heron.md", "text": "The Heron H1 is blue. It has two cameras."},
                         {"chunk_id": "a", "source": "falcon.md",
                          "text": "The Falcon X2 is grey. The Falcon X2 flies for 38 minutes per charge."}]}
    tok = tiny_tokenizer()
    prompt, target = R.training_pair(meta, "chat", sft_data.chat_renderer(tok),
                                     lambda s: len(sft_data.encode_prompt(tok, s)), 4096)
    assert target == 'Evidence [1]: "The Falcon X2 flies for 38 minutes per charge." Answer: 38 minutes'
    assert prompt.index("38 minutes") < prompt.index("Heron") if "Heron" in prompt else True


# ---------------------------------------------------------------------------- the raft_rag arm


class ArmGenerator:
    """Base model: refuses. QA adapter: answers from the context's first fact. RAFT adapter: quotes
    the passage holding 24 months but answers 12 months, so scoring must read its answer part."""

    backend = "fake"
    prompt_style = "chat"
    context_length = 4096
    max_passages = None

    def __init__(self, model, adapter):
        self.model, self.adapter = model, adapter

    def count_tokens(self, text):
        return len(text.split())

    def render_chat(self, messages):
        return "\n".join(m["content"] for m in messages)

    def generate(self, prompt, decoding, on_token=None):
        if self.adapter and self.adapter.endswith("raft-en"):
            text = 'Evidence [1]: "The Falcon X2 drone has a warranty of 24 months." Answer: 12 months'
        elif self.adapter:
            text = "24 months [1]" if "24 months" in prompt else "I don't know"
        else:
            text = "I don't know"
        return Completion(text=text, prompt_tokens=1, completion_tokens=1, total_ms=1.0)


def fake_adapter(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    (d / "adapter_config.json").write_text("{}")
    (d / "ragkit_adapter.json").write_text(json.dumps({"base": "base-model"}))
    return d


def test_raft_rag_arm_reports_its_recipe_adapter_pairs_and_forgetting(tmp_path, mini_corpus, fake_embedder, monkeypatch):
    from ragkit.eval.config import EvalConfig
    from ragkit.eval.runner import run_eval

    monkeypatch.setattr("ragkit.eval.charts.write_charts", lambda report, out: [])
    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, IngestConfig(embed_model="fake-embedder"))
    item = {"question": "How long is the Falcon X2 warranty?", "answers": ["24 months"], "sources": ["warranty.md"],
            "category": "warranty", "difficulty": "easy"}
    (tmp_path / "bench.jsonl").write_text("".join(json.dumps({**item, "id": f"w{i}"}) + "\n" for i in range(3)))
    general = {**item, "context": ["The Falcon X2 drone has a warranty of 24 months."], "category": "reading"}
    (tmp_path / "general.jsonl").write_text("".join(json.dumps({**general, "id": f"g{i}"}) + "\n" for i in range(3)))
    qa, raft = fake_adapter(tmp_path, "qa-en"), fake_adapter(tmp_path, "raft-en")
    cfg = EvalConfig(bench=str(tmp_path / "bench.jsonl"), index=str(idx), out=str(tmp_path / "out"), mode="bm25",
                     min_score=0.0, models={"*": "base-model"}, n_boot=100, arms=["rag", "sft_rag", "raft_rag"],
                     adapters={"en": str(qa)}, raft_adapters={"en": str(raft)},
                     general_bench=str(tmp_path / "general.jsonl"))
    report = run_eval(cfg, load_generator=lambda m, b=None, *, adapter=None, **kw: ArmGenerator(m, adapter))
    assert report["arms"]["sft_rag"]["accuracy"] == 1.0
    assert report["arms"]["raft_rag"]["accuracy"] == 0.0  # the quote holds 24 months; the answer does not
    assert report["config"]["tuned_arms"] == {"sft_rag": {"recipe": "qa", "adapters": {"en": str(qa)}},
                                              "raft_rag": {"recipe": "raft", "adapters": {"en": str(raft)}}}
    assert report["pairwise"]["raft_rag_vs_sft_rag"]["diff"] == -1.0
    # the recipe comparison by category and language; base-arm comparisons get no breakdown
    groups = report["pairwise"]["raft_rag_vs_sft_rag"]["by_group"]
    assert groups["category:warranty"]["diff"] == groups["lang:en"]["diff"] == -1.0 and groups["lang:en"]["n"] == 3
    assert "by_group" in report["pairwise"]["raft_rag_vs_rag"]
    from ragkit.eval.report import tuned_comparison

    assert tuned_comparison("sft_rag", "raft_rag") and tuned_comparison("closed_book", "sft")
    assert not any(tuned_comparison(a, b) for a, b in [("closed_book", "rag"), ("rag", "sft"), ("oracle", "raft_rag")])
    assert report["forgetting"]["raft_rag"]["base"] == "rag"
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"| raft_rag | raft | en: {raft} |" in md and f"| sft_rag | qa | en: {qa} |" in md
    assert "| raft_rag − rag |" in md and "| raft_rag − sft_rag | lang:en | -100.0 |" in md
    # Without a RAFT adapter the arm is skipped with the option that runs it.
    cfg2 = cfg.model_copy(update={"raft_adapters": {}, "out": str(tmp_path / "out2"), "general_bench": None})
    report2 = run_eval(cfg2, load_generator=lambda m, b=None, *, adapter=None, **kw: ArmGenerator(m, adapter))
    assert "--raft-adapter" in report2["skipped_arms"]["raft_rag"]


# ---------------------------------------------------------------------------- experiments and sweeps


def test_sample_raft_experiment_feeds_both_recipes_the_same_pairs():
    from pathlib import Path

    from ragkit.experiment.config import load_experiment

    root = Path(__file__).resolve().parents[2]
    cfg = load_experiment(root / "pipelines" / "sample-raft.yaml")
    assert cfg.eval.arms == ["rag", "sft_rag", "raft_rag", "oracle"] and cfg.eval.general_bench
    assert {cfg.base_model(lang) for lang in ("en", "zh")} == {"qwen2.5-coder-0.5b"}
    qa, raft = cfg.sft_data.options, cfg.raft_data_config()
    assert raft.recipe == "raft" and qa.recipe == "qa" and qa.work_key() == raft.work_key()
    assert raft.distractors + 1 == cfg.eval.k  # as many passages as eval shows
    assert cfg.raft_train_options().max_len > cfg.train.options.max_len
    gpu = load_experiment(root / "pipelines" / "gpu.yaml")
    assert gpu.raft.enabled and "raft_rag" in gpu.eval.arms


def test_raft_rag_needs_raft_training_and_bad_raft_options_are_named(tmp_path):
    from ragkit.errors import UsageError
    from ragkit.experiment.config import ExperimentConfig

    (tmp_path / "c").mkdir()
    (tmp_path / "b.jsonl").write_text("{}")
    base = {"name": "x", "corpus": str(tmp_path / "c"), "bench": str(tmp_path / "b.jsonl"),
            "eval": {"arms": ["rag", "raft_rag"]}}
    with pytest.raises(UsageError, match="raft.enabled"):
        ExperimentConfig.check(base)
    with pytest.raises(UsageError, match="raft.options.oracle_share"):
        ExperimentConfig.check({**base, "raft": {"enabled": True, "options": {"oracle_share": 2}}})
    with pytest.raises(UsageError, match="raft.train"):
        ExperimentConfig.check({**base, "raft": {"enabled": True, "train": {"max_lenn": 5}}})


class RaftFakeSteps(StepFakes):
    """Counting stand-ins for the expensive steps, raft ones included."""

    def __init__(self):
        self.calls: dict[str, int] = {}


    def count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    def ingest(self, cfg, run_dir, progress):
        self.count("ingest")
        (run_dir / "index").mkdir(parents=True, exist_ok=True)  # outside a sweep: no link made for it
        (run_dir / "index" / "CURRENT").write_text("1")
        return {"chunks": 1}

    def sft_data(self, cfg, run_dir, bench, progress, raft=False):
        self.count("raft_data" if raft else "sft_data")
        out = run_dir / ("raft/raft.jsonl" if raft else "sft/qa.jsonl")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"share": cfg.raft_data_config().oracle_share if raft else None}) + "\n")
        return {"file": str(out)}

    kill_raft_train = False
    resumed_raft_train = False

    def train(self, cfg, run_dir, log, progress, raft=False):
        self.count("raft_train" if raft else "train")
        out = run_dir / ("adapters-raft" if raft else "adapters") / "en"
        out.mkdir(parents=True, exist_ok=True)
        if raft and (out / "checkpoints").is_dir():
            self.resumed_raft_train = True  # what the real step_train passes on as resume=True
        if raft and self.kill_raft_train:
            self.kill_raft_train = False
            (out / "checkpoints").mkdir()
            raise KeyboardInterrupt
        return {"adapters": {"en": str(out)}}

    def eval(self, ecfg, progress=None, log=None):
        from pathlib import Path

        from ragkit.eval.report import arm_summary

        self.count("eval")
        assert ecfg.raft_adapters["en"].endswith("adapters-raft/en")
        rows = {arm: [{"id": str(i), "category": "k", "difficulty": "easy", "latency_ms": 1,
                       "scores": {"accuracy": float(arm == "raft_rag" or i % 2), "em": 0.0, "f1": 0.0, "refused": 0.0,
                                  "repetition": 0.0, "length": 1}} for i in range(4)] for arm in ecfg.arms}
        report = {"arms": {a: arm_summary(r, n_boot=50) for a, r in rows.items()}, "pairwise": {}, "retrieval": {},
                  "skipped_arms": {}, "notes": [], "config": {"n_items": 4}}
        Path(ecfg.out).mkdir(parents=True, exist_ok=True)
        (Path(ecfg.out) / "report.json").write_text(json.dumps(report))
        return report


def test_sweep_cells_share_the_qa_adapter_and_report_the_raft_arm(tmp_path, monkeypatch):
    import yaml

    from ragkit.experiment.sweep import load_sweep, run_sweep
    from ragkit.experiment.sweep_report import sweep_report, write_sweep_report

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.md").write_text("The X2 warranty is 24 months.\n")
    (tmp_path / "bench.jsonl").write_text(json.dumps({"id": "1", "question": "X2 warranty?", "answers": ["24 months"],
                                                      "sources": ["a.md"], "category": "k", "difficulty": "easy"}) + "\n")
    p = tmp_path / "sw.yaml"
    p.write_text(yaml.safe_dump({
        "name": "sw", "corpus": "corpus", "bench": "bench.jsonl",
        "train": {"languages": ["en"], "export_gguf": False},
        "raft": {"enabled": True},
        "eval": {"arms": ["rag", "sft_rag", "raft_rag"], "models": {"*": "fake"}},
        "sweep": {"cells": [{"name": "p80"}, {"name": "p50", "set": {"raft.options.oracle_share": 0.5}}]},
    }))
    fake = RaftFakeSteps().install(monkeypatch)
    result = run_sweep(load_sweep(p), tmp_path / "runs")
    assert fake.calls == {"ingest": 1, "sft_data": 1, "train": 1, "raft_data": 2, "raft_train": 2, "eval": 2}
    assert result["cells"]["p50"]["steps"]["raft_train"] == "done" and result["cells"]["p50"]["steps"]["train"] == "cached"
    root = tmp_path / "runs" / "sw"
    assert json.loads((root / "cells" / "p50" / "raft" / "raft.jsonl").read_text())["share"] == 0.5
    rep = sweep_report(root)
    assert all("raft_rag" in c["arms"] for c in rep["cells"])
    write_sweep_report(root, rep)
    assert "raft_rag % [95% CI]" in (root / "sweep.md").read_text()
    assert all("raft_train" in c for c in rep["cells"]) and "| raft train s | raft examples |" in (root / "sweep.md").read_text()
    run_sweep(load_sweep(p), tmp_path / "runs")  # a second run: every step up to date
    assert fake.calls["raft_train"] == 2 and fake.calls["eval"] == 2


def test_a_killed_raft_experiment_continues_at_its_raft_training(tmp_path, monkeypatch):
    from ragkit.experiment.config import load_experiment
    from ragkit.experiment.steps import run_experiment

    root = Path(__file__).resolve().parents[2]
    cfg = load_experiment(root / "pipelines" / "sample-raft.yaml")
    fake = RaftFakeSteps().install(monkeypatch)
    fake.kill_raft_train = True
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path / "runs")
    # `ragkit run pipelines/sample-raft.yaml` again: the same resolved config continues the same run
    result = run_experiment(cfg, tmp_path / "runs")
    assert result["resumed"] is True and fake.resumed_raft_train
    assert result["steps"] == {"ingest": "up to date", "sft_data": "up to date", "train": "up to date",
                               "raft_data": "up to date", "raft_train": "done", "eval": "done", "report": "done"}
    assert fake.calls == {"ingest": 1, "sft_data": 1, "train": 1, "raft_data": 1, "raft_train": 2, "eval": 1}


def test_cli_build_sft_data_recipe_raft(index, tmp_path):
    from click.testing import CliRunner

    from ragkit.cli import main

    out = tmp_path / "raft.jsonl"
    r = CliRunner().invoke(main, ["build-sft-data", "--index", str(index), "--out", str(out), "--recipe", "raft",
                                  "--distractors", "1", "--oracle-share", "1", "--negatives", "random", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["raft"]["with_oracle"] == s["raft"]["examples"] > 0 and s["raft"]["distractors"]["hard"] == 0
    assert all(len(row[R.RAFT_KEY]["passages"]) == 2 for row in rows_of(out))
    bad = CliRunner().invoke(main, ["build-sft-data", "--index", str(index), "--out", str(out), "--recipe", "raft",
                                    "--oracle-share", "1.5"])
    assert bad.exit_code == 2 and bad.output.strip() == "Error: --oracle-share: must be at most 1.0, got 1.5"


def test_an_experiment_without_raft_resolves_as_it_did_before_the_recipe():
    """choose_run_dir continues a run when its resolved config is the same: the RAFT settings at
    their defaults must not change an older experiment's resolved form (nor its step hashes)."""
    from ragkit.experiment.config import load_experiment

    root = Path(__file__).resolve().parents[2]
    plain = load_experiment(root / "pipelines" / "sample-qwen.yaml").to_dict()
    assert "raft" not in plain and "recipe" not in plain["sft_data"]["options"]
    raft = load_experiment(root / "pipelines" / "sample-raft.yaml").to_dict()
    assert raft["raft"]["enabled"] and raft["raft"]["options"]["distractors"] == 2
    changed = load_experiment(root / "pipelines" / "sample-qwen.yaml", ["sft_data.options.oracle_share=0.5"]).to_dict()
    assert changed["sft_data"]["options"]["oracle_share"] == 0.5


def test_the_leakage_guard_and_mixing_apply_to_raft_as_to_qa(index, tmp_path):
    """A bench question is dropped from RAFT data as from QA data; general rows are mixed in as
    they are (closed-book rows, no RAFT parts), and `ragkit train` reads both kinds from one file."""
    plain = build(index, tmp_path / "plain.jsonl")
    question = rows_of(tmp_path / "plain.jsonl")[0][R.RAFT_KEY]["question"]
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "b1", "question": question, "answers": ["x"], "sources": ["falcon.md"],
                                 "category": "c", "difficulty": "easy"}, ensure_ascii=False) + "\n", encoding="utf-8")
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"instruction": f"Name a colour, {i}.", "input": "", "output": "blue"}) + "\n"
                               for i in range(50)), encoding="utf-8")
    out = tmp_path / "guarded.jsonl"
    s = build_sft_data(index, out, SFTDataConfig(recipe="raft", tasks=["direct"], paraphrases=1),
                       exclude_bench=bench, mix=general, mix_ratio=0.2)
    rows = rows_of(out)
    assert s.dropped["bench_leak"] >= 1 and s.raft["examples"] < plain.raft["examples"]
    assert not any(r.get(R.RAFT_KEY, {}).get("question") == question for r in rows)
    mixed = [r for r in rows if R.RAFT_KEY not in r]
    assert len(mixed) == s.rows["general"] > 0 and all(r["output"] == "blue" for r in mixed)
    examples = sft_data.load_examples(out)
    assert sum(e.raft is None for e in examples) == len(mixed) and sum(e.raft is not None for e in examples) == s.raft["examples"]
