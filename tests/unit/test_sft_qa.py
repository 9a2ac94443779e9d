"""The build-sft-data pipeline end to end on a small real index (fake embedder) with a fake
generator: spans to pairs, model questions and rephrasings through the filters, the leakage
guard, mixing, and resuming from the work file."""

from __future__ import annotations

import json

import pytest

from ragkit.index import IngestConfig, ingest
from ragkit.ingest.chunking import ChunkingConfig
from ragkit.sftdata.qa import SFTDataConfig, build_sft_data, read_work
from ragkit.types import Completion

MANUAL = """# Falcon X2 Drone Manual

The Falcon X2 flies for 38 minutes per charge. The battery takes 75 minutes to recharge.

## Specifications

| Item | Falcon X2 |
|---|---|
| Weight | 895 g |
| Maximum speed | 68 km/h |

## Questions

**Can the Falcon X2 fly in the rain?**
No. The Falcon X2 is rated IP43 and must not fly in rain.

Before each flight check:
- the propellers
- the battery level
- the GPS signal
"""
WARRANTY_ZH = """# 猎鹰 X2 保修政策

生效日期：2025 年 1 月 1 日

猎鹰 X2 整机保修 24 个月，电池保修 12 个月。维修一般在 7 个工作日内完成。
"""


@pytest.fixture
def index(tmp_path, fake_embedder):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "manual.md").write_text(MANUAL, encoding="utf-8")
    (root / "warranty-zh.md").write_text(WARRANTY_ZH, encoding="utf-8")
    idx = tmp_path / "idx"
    # Small chunks, so the corpus spans several chunks and resuming has something to skip.
    ingest([root], idx, IngestConfig(embed_model="fake-embedder", chunking=ChunkingConfig(chunk_size=40, chunk_overlap=0)))
    return idx


class FakeGen:
    """Answers question-writing prompts with a fixed question per language, and rephrasing
    prompts with a reworded copy of the question; counts its calls."""

    prompt_style = "fewshot"
    max_passages = None

    def __init__(self, lang, question=None):
        self.lang = lang
        self.question = question or {"en": "How long does the Falcon X2 fly per charge?",
                                     "zh": "猎鹰 X2 整机保修多久？"}[lang]
        self.prompts: list[str] = []

    def generate(self, prompt, decoding, on_token=None):
        self.prompts.append(prompt)
        last = prompt.rstrip().splitlines()[-2]  # the query line before the label
        if last.startswith(("Question:", "问题:")):  # a rephrasing request
            q = last.split(":", 1)[1].strip()
            text = f"Could you tell me: {q[0].lower()}{q[1:]}" if self.lang == "en" else f"我想知道：{q}"
        else:
            text = self.question
        return Completion(text=text + "\nextra line the stop string would cut")


def _factory(gens):
    def make(lang):
        gens[lang] = gens.get(lang) or FakeGen(lang)
        return gens[lang]
    return make


def _rows(out):
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    prov = [json.loads(x) for x in out.with_name(out.stem + ".provenance.jsonl").read_text(encoding="utf-8").splitlines()]
    return rows, prov


def test_template_method_makes_pairs_from_prose_tables_faq_and_lists_without_a_model(index, tmp_path):
    out = tmp_path / "sft.jsonl"
    summary = build_sft_data(index, out, SFTDataConfig(method="template", paraphrases=1),
                             generator_factory=lambda lang: pytest.fail("template method must not load a model"))
    rows, prov = _rows(out)
    pairs = {(r["instruction"], r["output"]) for r in rows}
    kinds = {p["kind"] for p in prov}
    assert {"cell", "faq", "list", "duration"} <= kinds
    assert any(q.lower().endswith("what is the weight of falcon x2?") and a == "895 g" for q, a in pairs)
    assert any(q.endswith('list the items under "Before each flight check".') and a.count("- ") == 3 for q, a in pairs)
    assert any("Can the Falcon X2 fly in the rain?" in q and a.startswith("No.") for q, a in pairs)
    assert any("整机保修多少个月" in q and a == "24 个月" for q, a in pairs)
    assert {p["language"] for p in prov} == {"en", "zh"}
    assert summary.kept >= 6 and summary.model_calls == 0
    # Every answer is in its chunk, and no question gives its answer away.
    for r, p in zip(rows, prov):
        if p["task"] == "direct":
            assert p["answer_span"] == r["output"]
            assert r["output"] not in r["instruction"]


def test_hybrid_asks_the_model_for_rephrasings_and_keeps_those_that_pass(index, tmp_path):
    gens = {}
    out = tmp_path / "sft.jsonl"
    summary = build_sft_data(index, out, SFTDataConfig(method="hybrid", paraphrases=2, model_paraphrases=1),
                             generator_factory=_factory(gens))
    rows, prov = _rows(out)
    model_rows = [r for r, p in zip(rows, prov) if p["writer"] == "model"]
    assert model_rows and summary.model_calls == sum(len(g.prompts) for g in gens.values())
    assert any(r["instruction"].startswith("Could you tell me") or "我想知道" in r["instruction"] for r in model_rows)
    assert all("extra line" not in r["instruction"] for r in rows)  # only the first line of the output is used
    assert summary.paraphrases_kept > 0


def test_model_questions_that_ask_for_the_wrong_thing_are_dropped_as_inconsistent(index, tmp_path):
    wrong = {"en": FakeGen("en", "Who invented the Falcon X2 propellers?"), "zh": FakeGen("zh", "猎鹰 X2 是谁设计的？")}
    summary = build_sft_data(index, tmp_path / "sft.jsonl", SFTDataConfig(method="model", paraphrases=0),
                             generator_factory=lambda lang: wrong[lang])
    assert summary.dropped["inconsistent"] >= 3
    assert summary.kept_by_writer.get("model", 0) == 0  # every model question was wrong here


def test_planted_bench_question_is_dropped_by_the_leakage_guard(index, tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "b1", "question": "Can the Falcon X2 fly in the rain?", "answers": ["No"],
                                 "sources": ["manual.md"], "category": "common", "difficulty": "easy"}) + "\n",
                     encoding="utf-8")
    clean = build_sft_data(index, tmp_path / "a.jsonl", SFTDataConfig(method="template"))
    guarded = build_sft_data(index, tmp_path / "b.jsonl", SFTDataConfig(method="template"), exclude_bench=bench)
    assert guarded.dropped["bench_leak"] >= 1
    assert guarded.kept == clean.kept - 1
    rows, _ = _rows(tmp_path / "b.jsonl")
    assert not any("fly in the rain" in r["instruction"] for r in rows)


def test_mix_ratio_sets_the_share_of_general_rows(index, tmp_path):
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"instruction": f"Q{i}?", "input": "", "output": f"A{i}"}) + "\n"
                               for i in range(100)), encoding="utf-8")
    out = tmp_path / "sft.jsonl"
    summary = build_sft_data(index, out, SFTDataConfig(method="template"), mix=general, mix_ratio=0.2)
    _, prov = _rows(out)
    n_mix = sum(p["origin"] == "mix" for p in prov)
    assert n_mix == summary.rows["general"]
    assert abs(n_mix / len(prov) - 0.2) < 0.5 / len(prov) + 1e-9


def test_rerun_resumes_from_the_work_file_and_new_settings_start_afresh(index, tmp_path):
    out = tmp_path / "sft.jsonl"
    cfg = {"method": "hybrid", "paraphrases": 1, "model_paraphrases": 1}
    gens1 = {}
    first = build_sft_data(index, out, SFTDataConfig(limit_chunks=2, **cfg), generator_factory=_factory(gens1))
    assert first.chunks_seen == 2 and first.chunks_resumed == 0
    gens2 = {}
    second = build_sft_data(index, out, SFTDataConfig(**cfg), generator_factory=_factory(gens2))
    assert second.chunks_resumed == 2 and second.chunks_seen == second.chunks_total > 2
    # Nothing of the first two chunks is asked again.
    assert second.model_calls == first.model_calls + sum(len(g.prompts) for g in gens2.values())
    work = read_work(tmp_path / second.work_file.rsplit("/", 1)[-1])
    assert len(work) == second.chunks_total
    data = out.read_text(encoding="utf-8")
    gens3 = {}
    third = build_sft_data(index, out, SFTDataConfig(**cfg), generator_factory=_factory(gens3))
    assert third.chunks_resumed == third.chunks_total and not gens3
    assert out.read_text(encoding="utf-8") == data and third.kept == second.kept
    other = build_sft_data(index, out, SFTDataConfig(per_chunk=1, **cfg), generator_factory=_factory({}))
    assert other.chunks_resumed == 0 and other.work_file != second.work_file


def test_a_torn_last_line_in_the_work_file_is_redone(index, tmp_path):
    out = tmp_path / "sft.jsonl"
    first = build_sft_data(index, out, SFTDataConfig(method="template"))
    work = tmp_path / first.work_file.rsplit("/", 1)[-1]
    lines = work.read_text(encoding="utf-8").splitlines(keepends=True)
    work.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2], encoding="utf-8")  # killed mid-write
    again = build_sft_data(index, out, SFTDataConfig(method="template"))
    assert again.chunks_resumed == first.chunks_total - 1
    assert again.kept == first.kept


@pytest.mark.parametrize("kwargs", [{"per_chunk": 0}, {"paraphrases": -1}, {"method": "magic"},
                                    {"tasks": ("direct", "poem")}, {"limit_chunks": 0}])
def test_config_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        SFTDataConfig(**kwargs)


# ---------------------------------------------------------------- spans and rule-written questions
def _questions(text, lang, headers=None):
    from ragkit.sftdata.paraphrase import template_question
    from ragkit.sftdata.spans import pick_spans

    spans = pick_spans(text, lang, per_chunk=10, headers=headers)
    return {s.answer: template_question(s) for s in spans if s.kind != "list"}


def test_chinese_questions_ask_in_place_and_keep_the_main_clause():
    qs = _questions("当雨水传感器持续潮湿 3 分钟时，机器会停止割草并返回充电站。", "zh")
    assert qs["3 分钟"] == "当雨水传感器持续潮湿多少分钟时，机器会停止割草并返回充电站？"


def test_a_model_code_is_not_a_count():
    # "隼鸟 M3 支持…" once became "隼鸟 M几支持…" with the answer "3 支".
    assert "3 支" not in _questions("隼鸟 M3 支持在线固件升级，升级约 20 分钟。", "zh")
    assert "3 升" not in _questions("M3 升级到固件 2.1 后信号恢复会自动继续。", "zh")


def test_english_copula_sentences_are_fronted_and_others_ask_in_place():
    qs = _questions("The maximum slope of the Falcon X2 is 40%. The blades stop within 2 seconds.", "en")
    assert qs["40%"] == "What is the maximum slope of the Falcon X2?"
    assert qs["2 seconds"] == "The blades stop within how many seconds?"


def test_a_table_split_across_chunks_keeps_its_header():
    headers = {}
    first = "| Item | Price |\n|---|---|\n| Blade kit | USD 29 |\n"
    second = "| Wheel set | USD 49 |\n"
    assert _questions(first, "en", headers)["USD 29"] == "What is the price of blade kit?"
    assert _questions(second, "en", headers)["USD 49"] == "What is the price of wheel set?"
    assert _questions(second, "en") == {}  # without the first chunk the column is unknown: no guess


def test_thousands_separators_do_not_cut_a_chinese_question():
    # "调整为 2,599 元" once became "…调整为 2？" by splitting at the comma inside the number.
    qs = _questions("隼鸟 V7 自 2025 年 3 月 1 日起在中国大陆调整为 2,599 元。", "zh")
    assert qs["2025 年 3 月 1 日"] == "隼鸟 V7 自什么时候起在中国大陆调整为 2,599 元？"
