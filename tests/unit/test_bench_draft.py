"""`ragkit bench draft` on a tiny corpus built to hold every kind of item (a conflict between two
dated documents, a stated change, a table to compute over, a fact two documents repeat), with a
fake question writer: the verification filters, the mix and languages, and resuming a killed run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ragkit.benchset.draft import DraftConfig, allocate, draft_bench, parse_mix, read_work
from ragkit.benchset.facts import Fact
from ragkit.benchset.pools import Candidate
from ragkit.benchset.verify import check
from ragkit.errors import SettingsError
from ragkit.eval.bench import validate_bench
from ragkit.index import IngestConfig, ingest
from ragkit.ingest.chunking import ChunkingConfig
from ragkit.sftdata.filters import NearDupIndex
from ragkit.types import Completion

MANUAL = """# Falcon X2 Drone Manual

Edition 1, released March 2024.

| Specification | Falcon X2 |
|---|---|
| Weight | 895 g |
| Maximum speed | 60 km/h |
| Camera | 4K at 60 fps |

| Mode | Flight time |
|---|---|
| Normal mode | 38 minutes |
| Sport mode | 25 minutes |

The Falcon X2 stops its propellers within 2 seconds when it lands.
Service hotline: 400-123-4567.
"""
FIRMWARE = """# Falcon X2 Firmware 2.0 Release Notes

Released: June 2025.

| Specification | Falcon X2 |
|---|---|
| Maximum speed | 68 km/h |

The maximum speed of the Falcon X2 is raised from 60 km/h to 68 km/h.
If the battery is below 20%, the drone returns home after 10 seconds.
Service hotline: 400-123-4567.
"""
WARRANTY_ZH = """# 猎鹰 X2 保修政策

发布日期：2025 年 1 月 1 日

猎鹰 X2 整机保修 24 个月。电池保修 12 个月。维修一般在 7 个工作日内完成。客服热线：400-123-4567。
"""


@pytest.fixture
def index(tmp_path, fake_embedder):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "falcon-x2-manual.md").write_text(MANUAL, encoding="utf-8")
    (root / "falcon-x2-firmware-2.0.md").write_text(FIRMWARE, encoding="utf-8")
    (root / "保修.md").write_text(WARRANTY_ZH, encoding="utf-8")
    idx = tmp_path / "idx"
    ingest([root], idx, IngestConfig(embed_model="fake-embedder", chunking=ChunkingConfig(chunk_size=120, chunk_overlap=0)))
    return idx


class AskingGen:
    """Turns the marked answer into a question word: "flies for [38 minutes]" → "flies for what?";
    with `leak` it keeps the answer in the question (which the filters must drop). Counts calls;
    `fail_after` raises KeyboardInterrupt on that call (a killed run)."""

    prompt_style = "fewshot"
    context_length = 4096
    backend, model = "fake", "fake"
    max_passages = None

    def __init__(self, lang, leak=False, fail_after=None):
        self.lang, self.leak, self.fail_after, self.calls = lang, leak, fail_after, 0

    def count_tokens(self, text):
        return len(text.split())

    def generate(self, prompt, decoding, on_token=None):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt
        line = prompt.rstrip().splitlines()[-2]  # "Sentence: ... [answer] ..." before the label
        text = line.split(":", 1)[1].strip()
        o, c = ("[", "]") if self.lang == "en" else ("【", "】")
        m = re.search(re.escape(o) + "(.+?)" + re.escape(c), text)
        if not m:
            return Completion(text="no question here")
        wh = "what" if self.lang == "en" else "多少"
        inner = m.group(1) if self.leak else wh
        q = (text[: m.start()] + inner + text[m.end():]).rstrip("。.") + ("?" if self.lang == "en" else "？")
        return Completion(text=q + "\nrun-on text")


class Answerer(AskingGen):
    def __init__(self):
        super().__init__("en")

    def generate(self, prompt, decoding, on_token=None):
        return Completion(text="I do not know.")


def factory(made, **kw):
    def make(lang):
        made[lang] = made.get(lang) or AskingGen(lang, **kw)
        return made[lang]
    return make


def lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_a_draft_is_a_valid_bench_of_every_kind_with_sources_chunks_and_fingerprints(index, tmp_path):
    out = tmp_path / "bench.jsonl"
    s = draft_bench(index, out, DraftConfig(n=12), generator_factory=factory({}))
    items = lines(out)
    assert validate_bench(out) == (len(items), []) and s.items == len(items) >= 8
    assert all(it["status"] == "draft" and it["sources"] and it["chunk_ids"] and it["fingerprints"] for it in items)
    kinds = {(it["category"], it["difficulty"]) for it in items}
    assert ("knowledge", "hard") in kinds and any(c == "logic" for c, _ in kinds)
    hard = [it for it in items if it["difficulty"] == "hard" and "disagree" in (it.get("notes") or "")]
    assert hard and all("68 km/h" in it["answers"] for it in hard)  # the newer document wins
    logic = [it for it in items if it["category"] == "logic"]
    assert logic and all(re.search(r"\d - \d.* = \d", it["notes"]) for it in logic)  # the computation recorded
    assert {"en", "zh"} <= {it["id"].split("-")[1] for it in items}
    summary = json.loads(out.with_name("bench.jsonl.draft.json").read_text(encoding="utf-8"))
    assert summary["items"] == len(items) and summary["index"] == str(index)


def fact(answer, chunk_text, context=None, kind="quantity"):
    return Fact(answer, kind, "en", "doc.md", "c1", "Falcon X2 Manual", context or chunk_text, "", None, chunk_text)


def test_an_answer_not_in_its_chunk_is_dropped():
    text = "The Falcon X2 flies for 38 minutes per charge."
    seen = NearDupIndex()
    ok = Candidate("knowledge/easy", "en", [fact("38 minutes", text)], "38 minutes")
    assert check("How long does the Falcon X2 fly per charge?", ok, "model", seen) is None
    wrong = Candidate("knowledge/easy", "en", [fact("45 minutes", text)], "45 minutes")
    assert check("How long does the Falcon X2 fly per charge?", wrong, "model", seen) == "unsupported"
    # a computation whose recorded result does not follow from its operands is unsupported too
    t2 = "Normal mode lasts 38 minutes. Sport mode lasts 25 minutes."
    calc = Candidate("logic/simple", "en", [fact("38 minutes", t2), fact("25 minutes", t2)], "11 minutes",
                     compute={"op": "difference", "operands": ["38 minutes", "25 minutes"], "result": 11.0})
    assert check("How much longer does Normal mode last than Sport mode?", calc, "rules", seen) == "unsupported"
    calc.compute["result"], calc.answer = 13.0, "13 minutes"
    assert check("How much longer does Normal mode last than Sport mode?", calc, "rules", seen) is None
    # a computed answer needs a question that asks for the computation, and only it may ask for one
    assert check("How long does Normal mode last on the Falcon X2?", calc, "model", seen) == "inconsistent"
    assert check("By how much does the Falcon X2 flight time exceed 30 minutes?", ok, "model", seen) == "inconsistent"


def test_a_garbled_or_ambiguous_question_is_dropped():
    # hand reading 4: a wh-word where the answer was cut out of a noun phrase, and a table row named
    # by words another row shares
    seen = NearDupIndex()
    text = "Only with the Dock Pro. The Dock Pro's 3 L dust bag lasts about 60 days."
    bag = Candidate("knowledge/easy", "en", [fact("3 L", text)], "3 L")
    assert check("The Dock Pro's how many L dust bag lasts about 60 days?", bag, "rules", seen) == "garbled"
    assert check("How big is the Dock Pro's dust bag?", bag, "model", seen) is None
    table = ("| Product | Fits | Price (USD) |\n|---|---|---|\n| Blade kit, 9 blades | M3 | 24.99 |\n"
             "| Blade kit, 12 blades | M5 | 29.99 |\n| Rear wheel pair | M3 | 39.99 |")
    cell = fact("24.99", table, kind="cell")
    cell.meta = {"row": "Blade kit, 9 blades", "col": "Price (USD)"}
    kit = Candidate("knowledge/medium", "en", [cell], "24.99")
    assert check("What is the price of the blade kit?", kit, "model", seen) == "ambiguous"
    assert check("What is the price of the M3 blade kit?", kit, "model", seen) is None
    assert check("What is the price of the Blade kit, 9 blades?", kit, "rules", seen) is None
    # hand reading 5: two values asked, one gold
    zh_text = "电池温度低于 0 °C 或高于 45 °C 时，机器将停止工作。"
    cold = Candidate("knowledge/easy", "zh", [fact("0 °C", zh_text)], "0 °C")
    cold.facts[0].lang = "zh"
    assert check("电池温度低于多少度或高于多少度时，机器将停止工作？", cold, "model", seen) == "two_asked"
    assert check("电池温度低于多少度时，机器将停止工作？", cold, "model", seen) is None
    assert check("How many blades and how many screws come in the kit?", bag, "model", seen) == "two_asked"


def test_a_rule_question_names_a_column_as_a_column():
    from ragkit.benchset.writing import rule_question

    table = "| Part | Clean | Replace |\n|---|---|---|\n| Main roller brush | weekly | every 12 months |\n| Side brush | weekly | every 6 months |"
    a, b = fact("every 12 months", table, kind="cell"), fact("every 6 months", table, kind="cell")
    a.meta, b.meta = {"row": "Main roller brush", "col": "Replace"}, {"row": "Side brush", "col": "Replace"}
    c = Candidate("logic/simple", "en", [a, b], "6 months",
                  compute={"op": "difference", "operands": ["12 months", "6 months"], "result": 6.0, "table": True})
    assert rule_question(c) == ('According to "Falcon X2 Manual", in the "Replace" column, '
                                'by how much does Main roller brush exceed Side brush?')


def test_a_question_containing_its_answer_is_dropped(index, tmp_path):
    text = "The Falcon X2 flies for 38 minutes per charge."
    c = Candidate("knowledge/easy", "en", [fact("38 minutes", text)], "38 minutes")
    assert check("Does the Falcon X2 fly for 38 minutes per charge?", c, "model", NearDupIndex()) == "contains_answer"
    # end to end: a writer that leaves the answer in; those questions are dropped (the rules' kept)
    out = tmp_path / "leaky.jsonl"
    s = draft_bench(index, out, DraftConfig(n=10), generator_factory=factory({}, leak=True))
    from ragkit.sftdata.filters import contains_answer

    items = lines(out)
    assert s.dropped["contains_answer"] > 0 and items
    assert not [it for it in items if contains_answer(it["question"], it["answers"][0])]


def test_a_computation_whose_question_states_every_operand_is_dropped():
    text = "The battery warranty is extended from 12 months to 18 months."
    calc = Candidate("logic/simple", "en", [fact("18 months", text), fact("12 months", text)], "6 months",
                     compute={"op": "difference", "operands": ["18 months", "12 months"], "result": 6.0})
    given = "The battery warranty is extended from 12 months to 18 months: by how much did it change?"
    assert check(given, calc, "model", NearDupIndex()) == "contains_answer"
    assert check("By how many months was the battery warranty extended?", calc, "model", NearDupIndex()) is None


def test_a_killed_draft_resumes_without_asking_again(index, tmp_path):
    out = tmp_path / "bench.jsonl"
    full_gens: dict = {}
    full = draft_bench(index, tmp_path / "full.jsonl", DraftConfig(n=12), generator_factory=factory(full_gens))
    killed: dict = {}
    with pytest.raises(KeyboardInterrupt):
        draft_bench(index, out, DraftConfig(n=12), generator_factory=factory(killed, fail_after=5))
    partial = lines(out)  # written atomically after each item: a valid bench even now
    assert 0 < len(partial) < full.items and validate_bench(out)[1] == []
    work = next(tmp_path.glob(".bench.jsonl.*.work.jsonl"))
    assert read_work(work)
    again: dict = {}
    s = draft_bench(index, out, DraftConfig(n=12), generator_factory=factory(again))
    assert s.resumed > 0 and s.items == full.items
    assert [it["question"] for it in lines(out)] == [it["question"] for it in lines(tmp_path / "full.jsonl")]
    asked_again = sum(g.calls for g in again.values())
    assert asked_again == sum(g.calls for g in full_gens.values()) - sum(min(g.calls, 5) for g in killed.values())


def test_quotas_follow_the_mix_and_the_languages():
    q = allocate(150, parse_mix("knowledge/easy=20,knowledge/medium=20,knowledge/hard=15,logic/simple=15,"
                                "logic/complex=10,common=20"), {"en": 0.5, "zh": 0.5})
    assert sum(q.values()) == 150
    assert q[("knowledge/easy", "en")] + q[("knowledge/easy", "zh")] == 30
    assert abs(sum(v for (c, lang), v in q.items() if lang == "en") - 75) <= 1
    with pytest.raises(SettingsError, match="CELL=WEIGHT"):
        DraftConfig(mix="easy=3")
    with pytest.raises(SettingsError, match="positive"):
        DraftConfig(mix="common=0")


def test_the_rules_writer_needs_no_model(index, tmp_path):
    out = tmp_path / "rules.jsonl"
    s = draft_bench(index, out, DraftConfig(n=8, writer="rules"),
                    generator_factory=lambda lang: pytest.fail("the rules writer must not load a model"))
    assert s.items > 0 and s.by_writer == {"rules": s.items} and s.model_calls == 0


def test_an_experiment_drafts_its_bench_after_ingest_and_evaluates_on_it(index, tmp_path, monkeypatch):
    import functools

    import yaml

    from ragkit.eval.runner import run_eval
    from ragkit.experiment import load_experiment, run_experiment, steps

    corpus = tmp_path / "corpus"
    exp = tmp_path / "mine.yaml"
    exp.write_text(yaml.safe_dump({
        "name": "mine", "corpus": str(corpus), "bench": [],
        "index": {"embed_model": "fake-embedder", "chunk_size": 120, "chunk_overlap": 0},
        "bench_draft": {"enabled": True, "options": {"n": 6, "writer": "rules"}},
        "sft_data": {"enabled": False}, "train": {"enabled": False},
        "eval": {"arms": ["closed_book"], "models": {"*": "fake"}, "mode": "bm25", "max_tokens": 8},
    }))
    (tmp_path / "x.jsonl").write_text("")
    with pytest.raises(SettingsError, match="keep one"):
        load_experiment(exp, [f"bench={tmp_path / 'x.jsonl'}"])
    with pytest.raises(SettingsError, match="bench_draft.enabled: true"):
        load_experiment(exp, ["bench_draft.enabled=false"])
    monkeypatch.setattr(steps, "run_eval", functools.partial(run_eval, load_generator=lambda *a, **k: Answerer()))
    result = run_experiment(load_experiment(exp), tmp_path / "runs")
    run_dir = Path(result["run_dir"])
    drafted = lines(run_dir / "bench.jsonl")
    assert result["steps"]["bench_draft"] == "done" and len(drafted) == 6
    assert result["report"]["config"]["n_items"] == 6
    # reviewed in place, the next run keeps the draft and evaluates the accepted items only
    from ragkit.benchset.review import update_item

    update_item(run_dir / "bench.jsonl", drafted[0]["id"], "accepted")
    again = run_experiment(load_experiment(exp), tmp_path / "runs")
    assert again["steps"]["bench_draft"] == "up to date" and again["report"]["config"]["n_items"] == 1


class KnowItAll(AskingGen):
    """Writes questions like AskingGen; asked a question without documents, it replies with the
    whole corpus, so it "knows" every answer closed-book."""

    def generate(self, prompt, decoding, on_token=None):
        if "[" in prompt or "【" in prompt:
            return super().generate(prompt, decoding, on_token)
        self.calls += 1
        return Completion(text=" ".join((MANUAL, FIRMWARE, WARRANTY_ZH)).replace("\n", " "))


def test_the_closed_book_check_drops_what_the_model_already_knows(index, tmp_path):
    made: dict = {}
    s = draft_bench(index, tmp_path / "b.jsonl", DraftConfig(n=4, closed_book_check=True),
                    generator_factory=lambda lang: made.setdefault(lang, KnowItAll(lang)))
    kept = lines(tmp_path / "b.jsonl")
    assert s.closed_book_calls > 0 and s.dropped["closed_book"] == s.closed_book_calls - len(kept)
    # what it could not recite is a computed value, found in no document
    assert s.dropped["closed_book"] > 0 and all(it["category"] == "logic" for it in kept)


def test_answer_forms_accept_what_a_correct_reply_writes():
    from ragkit.benchset.pools import answer_forms

    assert answer_forms("USD 70") == ["USD 70", "70"]
    assert {"1,899", "1899"} <= set(answer_forms("1,899.00"))
    assert "90 min" in answer_forms("about 90 min") and "60 天" in answer_forms("约 60 天")
    assert answer_forms("up to 1,500 m²")[0] == "up to 1,500 m²" and "1,500 m²" not in answer_forms("up to 1,500 m²")
    assert answer_forms("11.5 kg") == ["11.5 kg", "11.5kg"]  # a unit is part of the answer
    assert "7.5 Ah" in answer_forms("7.5 Ah lithium-ion") and "150 minutes" in answer_forms("about 150 minutes on Quiet mode")
    assert "400-820-1616" in answer_forms("400-820-1616，每天 9:00–21:00")
    assert "220" not in answer_forms("220 V~ 50 Hz")  # never a number without its unit
    # a whole table cell or spec line: either alternative, or its first clause (hand reading 4)
    assert {"USD 1,299", "CNY 8,999", "USD 1299"} <= set(answer_forms("USD 1,299 / CNY 8,999"))
    assert "rain pause" in answer_forms("rain pause: rain sensor wet for 3 minutes")
    assert "将机器移回平缓区域" in answer_forms("将机器移回平缓区域；超过坡度上限的区域请设为禁区")
    assert "抬起 2 秒内刀盘停转" in answer_forms("抬起 2 秒内刀盘停转，支持 PIN 码防盗")
    assert answer_forms("9:00–21:00") == ["9:00–21:00"]


def test_a_value_a_document_changes_is_no_common_item():
    # hand reading 5: "75 minutes" stated in two documents while a newer one reduces it to 65
    from ragkit.benchset.draft import doc_titles
    from ragkit.benchset.facts import extract_facts
    from ragkit.benchset.pools import build_pools
    from ragkit.types import Chunk

    docs = {
        "x2-manual.md": "# Falcon X2 Manual\n\nThe Falcon X2 recharges in about 75 minutes. The Falcon X2 weighs 895 g.",
        "x2-notes-1.md": "# Falcon X2 Notes 1.0\n\nThe Falcon X2 recharges in about 75 minutes. The Falcon X2 weighs 895 g.",
        "x2-notes-2.md": "# Falcon X2 Notes 2.0\n\nA new charger reduces the recharge time of the Falcon X2 "
                         "from about 75 minutes to about 65 minutes.",
    }
    chunks = [Chunk(f"{s}#0", s, t, 0, len(t)) for s, t in docs.items()]
    facts = extract_facts(chunks, doc_titles(chunks))
    pools = build_pools(facts, {c.source: [c] for c in chunks}, docs)
    common = [c.answer for c in pools["common"].get("en", [])]
    assert "895 g" in common and not any("75 minutes" in a for a in common)
    assert any(c.answer == "10 minutes" for c in pools["logic/simple"]["en"])  # the change itself
    assert not any("75 minutes" in c.answer for cell in ("knowledge/easy", "knowledge/medium")
                   for c in pools[cell].get("en", []) if c.sources == ["x2-notes-2.md"])


def test_two_things_prices_in_two_documents_make_a_total_and_a_fee_or_cut_does_not():
    from ragkit.benchset.draft import doc_titles
    from ragkit.benchset.facts import extract_facts
    from ragkit.benchset.pools import build_pools, recompute
    from ragkit.benchset.verify import asks_computation
    from ragkit.types import Chunk

    docs = {
        "x2-launch.md": "# Falcon X2 Launch\n\nThe Falcon X2 drone has a retail price of USD 899.",
        "x2-care.md": "# Falcon Care Plan\n\nThe Falcon Care plan for the X2 is priced at USD 129. "
                      "A service fee of USD 49 applies per claim.",
        "hub-guide.md": "# Falcon Hub Guide\n\n充电中心 H1 的价格为 1,299 元。",
        "x2-price-cut.md": "# Falcon X2 价格调整\n\n猎鹰 X2 的建议零售价为 6,999 元，每台下调 500 元。",
    }
    chunks = [Chunk(f"{s}#0", s, t, 0, len(t)) for s, t in docs.items()]
    facts = extract_facts(chunks, doc_titles(chunks))
    pools = build_pools(facts, {c.source: [c] for c in chunks}, docs)
    totals = [c for cs in pools["logic/complex"].values() for c in cs if c.compute.get("total")]
    assert [(c.answer, sorted(c.compute["operands"])) for c in totals if c.lang == "en"] == \
        [("USD 1,028", ["USD 129", "USD 899"])]  # the fee is no price
    zh = [c.answer for c in totals if c.lang == "zh"]
    assert zh == ["8,298 元"]  # 6,999 + 1,299; the 500 cut is no price
    assert all(recompute(c) for c in totals)
    c = totals[0]
    c.compute["result"] = 1000.0
    assert not recompute(c)
    assert asks_computation("How much do the Falcon X2 and the Falcon Care plan cost together?", "en")
    assert asks_computation("同时买猎鹰 X2 和充电中心 H1 一共要多少钱？", "zh")
    assert not asks_computation("How much does the Falcon X2 cost?", "en")


def test_a_total_question_names_both_things_by_their_table_rows():
    from ragkit.benchset.draft import doc_titles
    from ragkit.benchset.facts import extract_facts
    from ragkit.benchset.pools import build_pools, thing_name
    from ragkit.benchset.writing import rule_question
    from ragkit.types import Chunk

    docs = {  # a price column in one document, a column per product in another
        "profile.md": "# 猎鹰公司简介\n\n| 产品 | 类别 | 首发价格（人民币） |\n|---|---|---|\n| 猎鹰 X2 | 无人机 | 6,999 元 |\n"
                      "| 猎鹰 X5 | 无人机 | 9,999 元 |\n",
        "faq.md": "# 猎鹰常见问题\n\n| 项目 | 充电中心 H1 | 遥控器 R1 |\n|---|---|---|\n| 建议零售价 | 1,299 元 | 899 元 |\n",
    }
    chunks = [Chunk(f"{s}#0", s, t, 0, len(t)) for s, t in docs.items()]
    facts = extract_facts(chunks, doc_titles(chunks))
    pools = build_pools(facts, {c.source: [c] for c in chunks}, docs)
    totals = [c for c in pools["logic/complex"].get("zh", []) if c.compute.get("total")]
    assert totals and all({f.source for f in c.facts} == set(docs) for c in totals)  # never within one document
    names = {thing_name(f) for c in totals for f in c.facts}
    assert names <= {"猎鹰 X2", "猎鹰 X5", "充电中心 H1", "遥控器 R1"} and "猎鹰 X2" in names
    q = rule_question(totals[0])
    a, b = totals[0].facts
    assert q == f"同时购买{thing_name(a)}和{thing_name(b)}，一共要多少钱？"
    assert check(q, totals[0], "rules", NearDupIndex()) is None


def test_a_total_question_naming_the_documents_is_dropped():
    a = fact("USD 899", "The Falcon X2 has a retail price of USD 899.")
    b = fact("USD 129", "The Falcon Care plan is priced at USD 129.")
    a.title, b.title = "Falcon X2 Launch", "Falcon Care Plan"
    total = Candidate("logic/complex", "en", [a, b], "USD 1,028",
                      compute={"op": "sum", "operands": ["USD 899", "USD 129"], "result": 1028.0, "total": True})
    assert check("How much do the Falcon X2 and its Care plan cost together?", total, "model", NearDupIndex()) is None
    named = 'How much do "Falcon X2 Launch" and "Falcon Care Plan" cost together?'
    assert check(named, total, "model", NearDupIndex()) == "inconsistent"
    compare = Candidate("logic/complex", "en", [a, b], "USD 770",
                        compute={"op": "difference", "operands": ["USD 899", "USD 129"], "result": 770.0, "compare": True})
    named = 'By how much does the price in "Falcon X2 Launch" exceed the one in "Falcon Care Plan"?'
    assert check(named, compare, "model", NearDupIndex()) == "inconsistent"


def test_a_resumed_draft_verifies_what_it_replays():
    from ragkit.benchset.draft import _Drafter

    text = "The Falcon X2 weighs 895 g."
    c = Candidate("knowledge/easy", "en", [fact("895 g", text)], "895 g")
    drafter = _Drafter(DraftConfig(writer="rules"), None)
    rec = {"key": c.key, "item": {"question": "How much does the Falcon X2 weigh?"}, "drops": {}, "lang": "en",
           "writer": "model"}
    assert drafter.replay(rec, c) is rec
    assert drafter.replay({**rec, "key": "b"}, c) is None  # now a duplicate: drafted afresh
    leaked = {**rec, "item": {"question": "Does the Falcon X2 weigh 895 g?"}}  # a filter added since
    assert drafter.replay(leaked, c) is None


def test_two_spec_tables_naming_one_attribute_shorter_and_longer_are_compared():
    from ragkit.benchset.draft import doc_titles
    from ragkit.benchset.facts import extract_facts
    from ragkit.benchset.pools import build_pools
    from ragkit.types import Chunk

    docs = {  # "续航" in one table, "续航时间" in another: one attribute of two products
        "x2.md": "# 猎鹰 X2 快速入门\n\n| 项目 | 参数 |\n|---|---|\n| 续航时间 | 约 38 分钟 |\n| 重量 | 895 g |\n",
        "faq.md": "# 常见问题\n\n| 项目 | 猎鹰 X5 |\n|---|---|\n| 续航 | 约 45 分钟 |\n| 起飞重量 | 1,200 g |\n",
    }
    chunks = [Chunk(f"{s}#0", s, t, 0, len(t)) for s, t in docs.items()]
    facts = extract_facts(chunks, doc_titles(chunks))
    pools = build_pools(facts, {c.source: [c] for c in chunks}, docs)
    compared = [c for c in pools["logic/complex"].get("zh", []) if c.compute.get("compare")]
    assert [c.answer for c in compared] == ["7 分钟"]  # 重量 is not the start of 起飞重量: not compared
