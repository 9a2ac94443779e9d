"""Build data/general/retention.jsonl: the general bench that measures what fine-tuning costs.

About 100 items, half English, half Chinese, in four parts of ~25:

    reading zh   CMRC 2018 trial questions (CC BY-SA 4.0) with `context`: the sentence holding the
                 answer and its neighbours, at most 400 characters; one question per paragraph, short
                 answers, taken after the first 200 questions (those the README's model table used)
    reading en   data/general/src/reading_en.jsonl: short original paragraphs on general topics
    general en   closed-book questions from data/general/src/closed_book_candidates.jsonl that the
    general zh   BASE model (qwen2.5-coder-0.5b) answered right before any tuning

None may resemble the domain bench, the mix data (data/general/general.jsonl) or SFT data from the
sample corpus: ragkit's own leakage guard (ragkit.sftdata.filters.BenchGuard, Jaccard >= LEAK_JACCARD or
containment >= LEAK_CONTAINMENT over character n-grams) is run both ways, and a flagged item is
dropped. Every choice, the base model's answers and the guard's verdicts go to
data/general/retention.selection.json. Also written: retention-en.jsonl / retention-zh.jsonl (each
language's half, for English- or Chinese-only runs) and general-en.jsonl (the English rows of the mix
data, so an English-only run mixes at the ratio it asks for).

The base model was run once on the candidates (~1.5 s per item on 2 cores):

    nice -n 10 ragkit eval --bench data/general/src/closed_book_candidates.jsonl --arms closed_book \\
        --model qwen2.5-coder-0.5b --max-tokens 32 --out /tmp/retention-candidates
    ragkit ingest data/corpus --index /tmp/idx && ragkit build-sft-data --index /tmp/idx \\
        --out /tmp/sft_full.jsonl --paraphrases 4          # every task, the most rephrasings
    python evals/build_retention.py --base-answers /tmp/retention-candidates/items.jsonl \\
        --sft /tmp/sft_full.jsonl

Without --base-answers the answers recorded in retention.selection.json are used, so the file can be
rebuilt (and checked against new SFT data) without a model.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERAL = ROOT / "data" / "general"
# ../shared/benches beside the checkout (a worktree's is two levels further down)
CMRC = next((p for p in (ROOT.parent / "shared", ROOT.parents[1] / "shared")
             if (p / "benches").is_dir()), ROOT.parent / "shared") / "benches" / "cmrc2018" / "cmrc2018_trial.json"
PER_PART = 25
CONTEXT_MAX = 400  # characters, the most a context may have
CONTEXT_AIM = 200  # neighbouring sentences are added only while the context stays this short
ANSWER_MAX = 6  # characters: CMRC spans longer than this are often phrased differently by a model
CMRC_SKIP = 200  # the README's model table read the first 200 trial questions
BASE_MODEL = "qwen2.5-coder-0.5b"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each Chinese sentence (ending in 。！？ or the text's end)."""
    out, start = [], 0
    for m in re.finditer(r"[。！？!?]", text):
        out.append((start, m.end()))
        start = m.end()
    if start < len(text):
        out.append((start, len(text)))
    return out


def trim_context(text: str, answer: str, answer_start: int) -> str | None:
    """The sentence holding the answer, widened by whole neighbouring sentences while it stays within
    CONTEXT_AIM characters; None when that sentence alone is over CONTEXT_MAX or the answer is not
    in the paragraph."""
    if text[answer_start:answer_start + len(answer)] != answer:
        answer_start = text.find(answer)
        if answer_start < 0:
            return None
    spans = sentences(text)
    i = next(k for k, (s, e) in enumerate(spans) if s <= answer_start < e)
    j = i
    while spans[j][1] < answer_start + len(answer) and j + 1 < len(spans):
        j += 1  # an answer that runs over a sentence end
    lo, hi = i, j
    for step in range(len(spans)):
        grown = False
        for cand in ((lo - 1, hi), (lo, hi + 1)) if step % 2 == 0 else ((lo, hi + 1), (lo - 1, hi)):
            a, b = cand
            if 0 <= a and b < len(spans) and spans[b][1] - spans[a][0] <= CONTEXT_AIM:
                lo, hi, grown = a, b, True
                break
        if not grown:
            break
    ctx = text[spans[lo][0]:spans[hi][1]].strip()
    return ctx if answer in ctx and len(ctx) <= CONTEXT_MAX else None


def cmrc_items(path: Path) -> list[dict]:
    """CMRC trial questions after the first CMRC_SKIP, one per paragraph, answer at most ANSWER_MAX
    characters, with a trimmed context; in file order."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    out, seen = [], 0
    for article in data:
        for para in article["paragraphs"]:
            chosen = None
            for qa in para["qas"]:
                seen += 1
                if seen <= CMRC_SKIP or chosen is not None or not qa["question"].strip():
                    continue
                a = qa["answers"][0]
                answer = a["text"].strip()
                bare = answer.strip("。，、；：！？")
                if not 1 <= len(answer) <= ANSWER_MAX or bare != answer or bare in qa["question"]:
                    continue  # too long to match, a clause rather than a span, or a yes/no echo
                ctx = trim_context(para["context"], answer, a["answer_start"])
                if ctx and len(ctx) >= 40:
                    answers = sorted({x["text"].strip() for x in qa["answers"] if x["text"].strip() in ctx})
                    chosen = {"id": f"read-zh-{qa['id']}", "question": qa["question"].strip(), "answers": answers,
                              "sources": [f"cmrc2018/{para['id']}"], "category": "reading", "difficulty": "medium",
                              "context": [ctx], "notes": f"CMRC 2018 trial {qa['id']} (CC BY-SA 4.0), context trimmed"}
            if chosen:
                out.append(chosen)
    return out


def guards(paths: list[Path]):
    """(name, BenchGuard) per file of questions the retention items must not resemble."""
    from ragkit.sftdata.filters import BenchGuard

    return [(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p), BenchGuard.from_file(p)) for p in paths]


def leaks(questions: list[str], checks) -> dict[str, str]:
    """{question: "file: the question it resembles"} for each of `questions` that the guard flags,
    either way round: this question against each file's, and each file's against this one (a
    retention question inside a longer question of the file)."""
    from ragkit.sftdata.filters import BenchGuard

    out: dict[str, str] = {}
    mine = BenchGuard(questions)
    for name, guard in checks:
        for q in questions:
            if q not in out and (hit := guard.leak(q)):
                out[q] = f"{name}: {hit}"
        for other in guard.questions:
            if (hit := mine.leak(other)) and hit not in out:
                out[hit] = f"{name}: {other}"
    return out


def base_answers(items_path: Path | None, previous: dict) -> dict[str, dict]:
    """{candidate id: {output, correct}} from the base model's eval items, else from the last selection."""
    if items_path is None:
        return {k: v for k, v in previous.get("base_answers", {}).items()}
    rows = [r for r in read_jsonl(items_path) if r.get("arm") == "closed_book"]
    return {r["id"]: {"output": r["output"], "correct": bool(r["scores"]["accuracy"])} for r in rows}


def build(args) -> dict:
    sel_path = GENERAL / "retention.selection.json"
    previous = json.loads(sel_path.read_text(encoding="utf-8")) if sel_path.is_file() else {}
    others = [ROOT / "data" / "bench" / "sample.jsonl", GENERAL / "general.jsonl", *map(Path, args.sft)]
    checks = guards(others)
    answers = base_answers(Path(args.base_answers) if args.base_answers else None, previous)
    if not answers:
        sys.exit("no base-model answers: pass --base-answers ITEMS.jsonl (see the docstring)")
    chosen, log = [], {"base_model": BASE_MODEL, "guarded_against": [n for n, _ in checks], "dropped": {},
                       "base_answers": answers}

    def take(part: str, pool: list[dict]) -> None:
        kept, flagged = [], leaks([it["question"] for it in pool], checks)
        for it in pool:
            why = flagged.get(it["question"])
            if why:
                log["dropped"][it["id"]] = f"resembles {why}"
            elif len(kept) < PER_PART:
                kept.append(it)
        log[part] = [it["id"] for it in kept]
        chosen.extend(kept)

    take("reading_zh", cmrc_items(Path(args.cmrc)))
    reading_en = [{**r, "sources": ["general"], "category": "reading", "difficulty": "medium",
                   "notes": "original paragraph written for ragkit"} for r in read_jsonl(GENERAL / "src" / "reading_en.jsonl")]
    take("reading_en", reading_en)
    cands = read_jsonl(GENERAL / "src" / "closed_book_candidates.jsonl")
    for lang in ("en", "zh"):
        pool = []
        for c in cands:
            if not c["id"].startswith(f"gen-{lang}-"):
                continue
            a = answers.get(c["id"])
            if a is None or not a["correct"]:
                log["dropped"][c["id"]] = "the base model did not answer it" if a is None else \
                    f"the base model got it wrong: {a['output']!r}"
                continue
            pool.append({**c, "notes": f"closed book; {BASE_MODEL} answered {a['output']!r} before tuning"})
        take(f"general_{lang}", pool)
    return {"items": chosen, "log": log}


def write(result: dict) -> None:
    items = result["items"]
    lines = {"all": [], "en": [], "zh": []}
    for it in items:
        line = json.dumps(it, ensure_ascii=False) + "\n"
        lang = "zh" if re.search(r"[\u4e00-\u9fff]", it["question"]) else "en"
        lines["all"].append(line)
        lines[lang].append(line)
    (GENERAL / "retention.jsonl").write_text("".join(lines["all"]), encoding="utf-8")
    for lang in ("en", "zh"):
        (GENERAL / f"retention-{lang}.jsonl").write_text("".join(lines[lang]), encoding="utf-8")
    general = (GENERAL / "general.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    en_rows = [x for x in general if x.strip() and not re.search(r"[\u4e00-\u9fff]", json.loads(x)["instruction"])]
    (GENERAL / "general-en.jsonl").write_text("".join(en_rows), encoding="utf-8")
    log = result["log"]
    log["counts"] = {k: len(v) for k, v in log.items() if k.startswith(("reading_", "general_"))}
    (GENERAL / "retention.selection.json").write_text(json.dumps(log, ensure_ascii=False, indent=1) + "\n",
                                                      encoding="utf-8")
    print(json.dumps({"items": len(items), **log["counts"], "dropped": len(log["dropped"])}, ensure_ascii=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cmrc", default=str(CMRC), help="CMRC 2018 trial JSON")
    ap.add_argument("--base-answers", help="items.jsonl of the base model's closed_book eval on the candidates")
    ap.add_argument("--sft", action="append", default=[], help="SFT data (JSONL) the items must not resemble")
    write(build(ap.parse_args()))


if __name__ == "__main__":
    main()
