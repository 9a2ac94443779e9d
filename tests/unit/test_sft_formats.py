"""Output formats of build-sft-data: round trips through `datasets`, dataset_info.json, provenance,
reading general data in any format, and the mixing ratio."""

from __future__ import annotations

import json

import pytest

from ragkit.errors import DataFormatError
from ragkit.sftdata.formats import FORMATS, build_rows, mix_rows, read_general, write_outputs
from ragkit.sftdata.qa import Summary


def _records():
    pair = {"id": "c1-0", "question": 'According to "Falcon X2 Manual", how long is the flight time?',
            "answer": "38 minutes", "kind": "duration", "writer": "template",
            "context": "The flight time is 38 minutes.", "items": [], "span": [120, 130],
            "variants": [{"question": "For the Falcon X2, what is the flight time?", "writer": "rule"}]}
    cell = {"id": "c2-0", "question": "猎鹰 X2 的重量是多少？", "answer": "895 g", "kind": "cell", "writer": "template",
            "context": "猎鹰 X2 | 重量: 895 g", "items": [], "span": [10, 15], "variants": []}
    lst = {"id": "c1-1", "question": "What are the pre-flight checks?", "answer": "- propellers\n- battery",
           "kind": "list", "writer": "template", "context": "Pre-flight checks", "items": ["propellers", "battery"],
           "span": [200, 230], "variants": []}
    return [
        {"chunk_id": "c1", "source": "en/manual.md", "lang": "en", "pairs": [pair, lst]},
        {"chunk_id": "c2", "source": "zh/参数.md", "lang": "zh", "pairs": [cell]},
    ]


def _load(path, tmp_path):
    from datasets import load_dataset

    return load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache"))


def _qa(fmt, row):
    if fmt == "alpaca":
        return row["instruction"], row["output"]
    turns = row["conversations"] if fmt == "sharegpt" else row["messages"]
    key = "value" if fmt == "sharegpt" else "content"
    return turns[0][key], turns[1][key]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_round_trips_through_datasets(fmt, tmp_path):
    out = tmp_path / f"sft-{fmt}.jsonl"
    summary = Summary(index="idx", out=str(out))
    write_outputs(_records(), out, fmt, summary)
    ds = _load(out, tmp_path)
    written = {(q, a) for q, a in (_qa(fmt, r) for r in ds)}
    assert ('According to "Falcon X2 Manual", how long is the flight time?', "38 minutes") in written
    assert ("For the Falcon X2, what is the flight time?", "38 minutes") in written
    assert ("猎鹰 X2 的重量是多少？", "895 g") in written
    assert ("What are the pre-flight checks?", "- propellers\n- battery") in written
    assert len(ds) == summary.rows["direct"] + summary.rows["explain"] + summary.rows["list"] == 6
    # The instruction is the bare question: no chunk text for the model to copy from.
    assert all("The flight time is 38 minutes" not in _qa(fmt, r)[0] for r in ds)
    if fmt == "alpaca":
        assert set(ds.column_names) == {"id", "instruction", "input", "output"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_dataset_info_describes_the_file_for_llama_factory_and_keeps_other_entries(fmt, tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "x.json"}}), encoding="utf-8")
    out = tmp_path / "domain.jsonl"
    write_outputs(_records(), out, fmt, Summary(index="idx", out=str(out)))
    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["other"] == {"file_name": "x.json"}
    entry = info["domain"]
    assert entry["file_name"] == "domain.jsonl"
    row = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    if fmt == "alpaca":
        assert entry["formatting"] == "alpaca" and entry["columns"]["prompt"] == "instruction"
    else:
        assert entry["formatting"] == "sharegpt"
        msgs = row[entry["columns"]["messages"]]
        assert msgs[0][entry["tags"]["role_tag"]] == entry["tags"]["user_tag"]
        assert msgs[1][entry["tags"]["role_tag"]] == entry["tags"]["assistant_tag"]


def test_provenance_maps_every_row_to_chunk_source_span_and_language(tmp_path):
    out = tmp_path / "sft.jsonl"
    write_outputs(_records(), out, "alpaca", Summary(index="idx", out=str(out)))
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    prov = [json.loads(x) for x in (tmp_path / "sft.provenance.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [p["id"] for p in prov] == [r["id"] for r in rows]
    assert [p["row"] for p in prov] == list(range(len(rows)))
    by_id = {p["id"]: p for p in prov}
    direct = by_id["c1-0-d0"]
    assert (direct["chunk_id"], direct["source"], direct["span"], direct["language"], direct["task"]) == \
        ("c1", "en/manual.md", [120, 130], "en", "direct")
    assert by_id["c1-0-d1"]["variant"] == "paraphrase" and by_id["c1-0-d1"]["writer"] == "rule"
    assert by_id["c2-0-x"]["language"] == "zh" and by_id["c2-0-x"]["task"] == "explain"
    explain = next(r for r in rows if r["id"] == "c2-0-x")
    assert explain["output"] == "猎鹰 X2的重量：895 g。"


def test_tasks_select_the_phrasings_written(tmp_path):
    summary = Summary(index="idx", out="x")
    rows = build_rows(_records(), ("direct",), summary)
    assert {p["task"] for *_, p in rows} == {"direct"}
    assert summary.kept == 3  # the list pair is kept, only not written


def _general(tmp_path, n):
    path = tmp_path / "general.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."}) + "\n")
    return path


def test_mixing_hits_the_ratio_and_cycles_a_small_file(tmp_path):
    general = read_general(_general(tmp_path, 3))
    domain = [(f"d{i}", "q", "a", {"task": "direct"}) for i in range(30)]
    extra = mix_rows(domain, general, 0.25, "general.jsonl", seed=1)
    assert len(extra) / (len(extra) + len(domain)) == 0.25
    assert {q for _, q, _, _ in extra} == {"Question 0?", "Question 1?", "Question 2?"}
    assert all(p["origin"] == "mix" and p["line"] in (1, 2, 3) for *_, p in extra)


def test_mixed_output_has_the_requested_share_of_general_rows(tmp_path):
    out = tmp_path / "sft.jsonl"
    summary = Summary(index="idx", out=str(out))
    write_outputs(_records(), out, "alpaca", summary, mix=_general(tmp_path, 50), mix_ratio=0.4)
    prov = [json.loads(x) for x in (tmp_path / "sft.provenance.jsonl").read_text(encoding="utf-8").splitlines()]
    n_mix = sum(p["origin"] == "mix" for p in prov)
    assert n_mix == summary.rows["general"] == 4  # 6 domain rows: 4 / 10 = 0.4


def test_read_general_accepts_sharegpt_and_messages_and_rejects_empty_files(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text(
        json.dumps({"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]}) + "\n"
        + json.dumps({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                                   {"role": "assistant", "content": "4"}]}) + "\n",
        encoding="utf-8")
    assert [(q, a) for q, a, _ in read_general(path)] == [("Hi?", "Hello."), ("2+2?", "4")]
    path.write_text(json.dumps({"text": "no pairs here"}) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError):
        read_general(path)
