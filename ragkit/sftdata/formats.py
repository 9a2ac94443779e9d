"""Writing SFT data: alpaca, sharegpt and OpenAI messages JSONL, a LLaMA-Factory dataset_info.json,
and a provenance sidecar; plus the last steps before writing (leakage guard, task phrasings, mixing).

Row shapes (one JSON object per line, so `datasets.load_dataset("json", data_files=...)` reads it):

    alpaca    {"id", "instruction": question, "input": "", "output": answer}
    sharegpt  {"id", "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
    messages  {"id", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}

The instruction is the plain question, never the chunk: the tuned model must learn to answer
closed-book (the `raft` recipe's rows hold passages: sftdata/raft.py; `write_rows` writes both). `OUT.provenance.jsonl` maps each row id to its chunk, source, character span,
language, task and writer; general rows mixed in say which file and line they came from.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ..errors import DataFormatError, UsageError
from ..lang import detect_language

FORMATS = ("alpaca", "sharegpt", "messages")
_EXPLAIN = {
    "en": ["Explain briefly: {q}", "{q} Explain your answer.", "Give a short explanation: {q}"],
    "zh": ["请简要说明：{q}", "{q}请解释一下。", "请解释：{q}"],
}


def to_record(fmt: str, rid: str, question: str, answer: str) -> dict:
    if fmt == "alpaca":
        return {"id": rid, "instruction": question, "input": "", "output": answer}
    if fmt == "sharegpt":
        return {"id": rid, "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}
    if fmt == "messages":
        return {"id": rid, "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
    raise UsageError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")


def dataset_info_entry(fmt: str, file_name: str) -> dict:
    """LLaMA-Factory's description of a file in this format (data/dataset_info.json)."""
    if fmt == "alpaca":
        return {"file_name": file_name, "formatting": "alpaca",
                "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
    if fmt == "sharegpt":
        return {"file_name": file_name, "formatting": "sharegpt", "columns": {"messages": "conversations"},
                "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}}
    return {"file_name": file_name, "formatting": "sharegpt", "columns": {"messages": "messages"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                     "assistant_tag": "assistant", "system_tag": "system"}}


def read_general(path: str | Path) -> list[tuple[str, str, int]]:
    """(question, answer, line) from a general instruction file: alpaca, sharegpt or messages JSONL
    (or a JSON array). The first user→assistant turn of a conversation is used."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--mix file {path} does not exist")
    text = path.read_text(encoding="utf-8-sig")
    try:
        recs = list(enumerate(json.loads(text), 1)) if text.lstrip().startswith("[") else \
            [(n, json.loads(ln)) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path} is not JSON lines ({e.msg} at line {e.lineno})") from None
    out = []
    for n, r in recs:
        q = a = None
        if isinstance(r, dict) and "instruction" in r:
            q = " ".join(x for x in (str(r.get("instruction") or ""), str(r.get("input") or "")) if x.strip())
            a = r.get("output")
        elif isinstance(r, dict) and isinstance(r.get("conversations") or r.get("messages"), list):
            turns = r.get("conversations") or r.get("messages")
            texts = [(str(t.get("from", t.get("role", ""))).lower(), t.get("value", t.get("content"))) for t in turns
                     if isinstance(t, dict)]
            users = [i for i, (role, _) in enumerate(texts) if role in ("human", "user")]
            if users and users[0] + 1 < len(texts):
                q, a = texts[users[0]][1], texts[users[0] + 1][1]
        if isinstance(q, str) and isinstance(a, str) and q.strip() and a.strip():
            out.append((q.strip(), a.strip(), n))
    if not out:
        raise DataFormatError(f"{path} holds no usable rows (alpaca instruction/output, sharegpt or messages)")
    return out


def _explanation(pair: dict, lang: str) -> str:
    ctx = pair["context"]
    if pair["kind"] == "cell" and " | " in ctx and ": " in ctx:
        row, rest = ctx.split(" | ", 1)
        col, value = rest.split(": ", 1)
        return f"{row}的{col}：{value}。" if lang == "zh" else f"{row} — {col}: {value}."
    return ctx


def build_rows(records: list[dict], tasks, summary, guard=None) -> list[tuple[str, str, str, dict]]:
    """(id, question, answer, provenance) for every kept pair and its phrasings, bench leaks out."""
    rows = []
    for rec in records:
        lang = rec["lang"]
        for i, p in enumerate(rec["pairs"]):
            questions = [(p["question"], p["writer"], "original")] + [
                (v["question"], v["writer"], "paraphrase") for v in p["variants"]]
            if guard is not None:
                if guard.leak(p["question"]):
                    summary.dropped["bench_leak"] += len(questions)
                    continue
                keep = [q for q in questions if not guard.leak(q[0])]
                summary.dropped["bench_leak"] += len(questions) - len(keep)
                questions = keep
            summary.kept += 1
            summary.paraphrases_kept += len(questions) - 1
            summary.kept_by_writer[p["writer"]] = summary.kept_by_writer.get(p["writer"], 0) + 1
            summary.kept_by_lang[lang] = summary.kept_by_lang.get(lang, 0) + 1
            prov = {"origin": "generated", "pair_id": p["id"], "chunk_id": rec["chunk_id"], "source": rec["source"],
                    "span": p["span"], "answer_span": p["answer"], "language": lang, "kind": p["kind"]}
            if p["kind"] == "list":
                if "list" in tasks:
                    rows.append((f"{p['id']}-l", p["question"], p["answer"],
                                 {**prov, "task": "list", "writer": p["writer"], "variant": "original"}))
                continue
            if "direct" in tasks:
                for k, (q, who, variant) in enumerate(questions):
                    rows.append((f"{p['id']}-d{k}", q, p["answer"],
                                 {**prov, "task": "direct", "writer": who, "variant": variant}))
            if "explain" in tasks and p["kind"] != "faq":
                phr = _EXPLAIN[lang][i % len(_EXPLAIN[lang])]
                rows.append((f"{p['id']}-x", phr.format(q=p["question"]), _explanation(p, lang),
                             {**prov, "task": "explain", "writer": p["writer"], "variant": "original"}))
    return rows


def mix_rows(rows: list, general: list[tuple[str, str, int]], ratio: float, mix_file: str, seed: int) -> list:
    """General rows so that they make up `ratio` of the output; the file is cycled (each pass
    shuffled) when it has fewer rows than that needs."""
    need = round(len(rows) * ratio / (1 - ratio))
    rng = random.Random(seed)
    out, pool = [], []
    while len(out) < need:
        if not pool:
            pool = list(general)
            rng.shuffle(pool)
        q, a, line = pool.pop()
        out.append((f"mix-{line}-{len(out)}", q, a,
                    {"origin": "mix", "file": str(mix_file), "line": line, "language": detect_language(q),
                     "task": "general"}))
    return out


def write_outputs(records, out: Path, fmt: str, summary, *, guard=None, mix=None, mix_ratio: float = 0.0,
                  tasks=("direct", "explain", "list"), seed: int = 0) -> None:
    """Rows → OUT (in `fmt`), OUT.provenance.jsonl and dataset_info.json beside OUT; counts go
    into `summary` (kept, rows per task, drops by the leakage guard)."""
    rows = build_rows(records, tasks, summary, guard)
    for _, _, _, prov in rows:
        summary.rows[prov["task"]] = summary.rows.get(prov["task"], 0) + 1
    if mix:
        general = read_general(mix)
        extra = mix_rows(rows, general, mix_ratio, str(mix), seed)
        summary.rows["general"] = len(extra)
        if len(extra) > len(general):
            summary.notes.append(f"--mix file has {len(general)} rows; repeated to reach ratio {mix_ratio}")
        rows = rows + extra
    random.Random(seed).shuffle(rows)
    write_rows([(to_record(fmt, rid, q, a), prov) for rid, q, a, prov in rows], out,
               dataset_info_entry(fmt, out.name), summary)


def write_rows(rows: list[tuple[dict, dict]], out: Path, info_entry: dict, summary) -> None:
    """(record, provenance) rows → OUT, OUT.provenance.jsonl (each written aside and renamed) and
    this file's entry in dataset_info.json beside OUT; the paths go into `summary.files`."""
    prov_path = out.with_name(out.stem + ".provenance.jsonl")
    tmp, ptmp = out.with_name(out.name + ".tmp"), prov_path.with_name(prov_path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f, ptmp.open("w", encoding="utf-8") as pf:
        for n, (rec, prov) in enumerate(rows):
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            pf.write(json.dumps({"id": rec["id"], "row": n, **prov}, ensure_ascii=False) + "\n")
    tmp.replace(out)
    ptmp.replace(prov_path)
    info_path = out.parent / "dataset_info.json"
    info = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            info = {}
    info[out.stem] = info_entry
    info_path.write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    summary.files = {"data": str(out), "provenance": str(prov_path), "dataset_info": str(info_path)}
