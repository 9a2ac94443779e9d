"""Follow-up questions in a conversation: answered as well as the same question asked standalone?

Sixteen pairs written over data/corpus (8 English, 8 Chinese), each built on a sample-bench item: a
first turn that names the product, a fixed assistant reply, then a follow-up that leans on it
("How much does it weigh?"); its standalone form is the bench question, with the bench's answers.
Each follow-up is answered through the server's own path (conversation.follow_up, then
Pipeline.answer, as app.answer_job does):

    standalone   the bench question alone (the ceiling)
    followup     the follow-up with the conversation (what `ragkit serve` does now: the rewrite
                 answered, the earlier turns in the prompt only after a fallback)
    all_turns    the same, with the earlier turns always in the prompt (what it did before)
    bare         the follow-up alone, no history (the server of wave 2: last message only)

and scores "an accepted answer appears in the reply" (case and space insensitive), with the
time each took; `rewrite_ms` is the extra generation a follow-up costs. Each arm's retrieval is
scored too (a gold source of the bench item among the k hits), which is cheap; the bare arm's
answers are generated only with --bare-answers (on the shared 2-core machine one answer took
minutes).

    PYTHONPATH=. .venv/bin/python evals/conversation_followups.py --index /tmp/conv-index \
        --model qwen2.5-coder-0.5b --out evals/results/serve/conversation_0.5b.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "data" / "bench" / "sample.jsonl"

# (bench id, first user turn, assistant reply, follow-up)
PAIRS = [
    ("en-009", "Tell me about the Kestrel M3 robot mower.", "The Kestrel M3 is Kestrel's first robot mower.",
     "How much does it weigh?"),
    ("en-011", "What is the Kestrel M3?", "It is a robot lawn mower made by Kestrel Home Robotics.",
     "How loud is it while mowing?"),
    ("en-005", "I am looking at the Kestrel V7 robot vacuum.", "The Kestrel V7 is a robot vacuum and mop.",
     "What is its maximum suction power?"),
    ("en-007", "Does the Kestrel V7 have a dustbin?", "Yes, the Kestrel V7 has a dustbin.",
     "What is its capacity?"),
    ("en-010", "What is the Kestrel M5?", "The Kestrel M5 is a robot mower for larger lawns.",
     "And what is its cutting width?"),
    ("en-019", "How do I charge the Kestrel V7?", "Place the V7 on its dock to charge it.",
     "How long does it take from empty?"),
    ("zh-015", "隼鸟 M3 是什么产品？", "隼鸟 M3 是隼鸟推出的割草机器人。", "它整机有多重？"),
    ("zh-008", "隼鸟 V7 能拖地吗？", "可以，隼鸟 V7 是扫拖一体机器人，带水箱。", "它的水箱容量是多少？"),
    ("en-012", "I want a mower for a big lawn. What about the Kestrel M5?",
     "The Kestrel M5 is Kestrel's robot mower for larger lawns.", "What battery does it have?"),
    ("en-008", "What does the Kestrel Dock Pro do?", "The Dock Pro empties the Kestrel V7 after every run.",
     "How big is its dust bag?"),
    ("zh-003", "隼鸟 M3 适合什么样的院子？", "隼鸟 M3 是一款割草机器人，适合家用草坪。", "它最大能打理多大面积？"),
    ("zh-005", "隼鸟 M3 用什么电池？", "隼鸟 M3 使用可充电锂电池。", "容量是多少？"),
    ("zh-006", "我在看隼鸟 M5。", "隼鸟 M5 是面向大草坪的割草机器人。", "它充满电能连续割多久？"),
    ("zh-007", "隼鸟 V7 是扫地机器人吗？", "是的，隼鸟 V7 是扫拖一体机器人。", "它的最大吸力是多少？"),
    ("zh-010", "隼鸟 M5 能在坡地上用吗？", "可以，隼鸟 M5 能在一定坡度的草坪上工作。", "最大能爬多陡的坡？"),
    ("zh-002", "隼鸟家居机器人是一家什么公司？", "隼鸟家居机器人有限公司生产扫地机器人和割草机器人。", "总部在哪个城市？"),
]


def norm(s: str) -> str:
    return "".join(s.lower().split()).replace(",", "")


def correct(reply: str, answers: list[str]) -> bool:
    return any(norm(a) in norm(reply) for a in answers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--out", default=str(ROOT / "evals" / "results" / "serve" / "conversation.json"))
    ap.add_argument("--bare-answers", action="store_true",
                    help="Also generate the bare arm's answers (else only its retrieval is scored).")
    args = ap.parse_args()

    from ragkit.conversation import follow_up
    from ragkit.generate import Decoding, load_generator
    from ragkit.index import Index
    from ragkit.pipeline import Pipeline

    bench = {d["id"]: d for d in map(json.loads, BENCH.read_text(encoding="utf-8").splitlines())}
    gen = load_generator(args.model)
    pipe = Pipeline(Index.open(args.index), gen, k=5, decoding=Decoding(max_tokens=args.max_tokens))
    pipe.answer("warmup: what is the Kestrel M3?")
    rows = []
    for item_id, first, reply, follow in PAIRS:
        item = bench[item_id]
        history = [{"role": "user", "content": first}, {"role": "assistant", "content": reply}]
        row = {"id": item_id, "followup": follow, "standalone": item["question"], "answers": item["answers"]}
        t0 = time.perf_counter()
        ans = pipe.answer(item["question"])
        row["standalone_reply"], row["standalone_ms"] = ans.answer, round((time.perf_counter() - t0) * 1000)
        for arm, turns_in_prompt in (("followup", "when_needed"), ("all_turns", "always")):
            t0 = time.perf_counter()
            turn = follow_up(gen, history, follow, turns_in_prompt=turns_in_prompt)
            ans = pipe.answer(turn.question, query=turn.query, history=turn.turns)
            row[f"{arm}_reply"], row[f"{arm}_ms"] = ans.answer, round((time.perf_counter() - t0) * 1000)
        rw = turn.rewrite
        row["rewrite"], row["rewrite_method"], row["rewrite_ms"] = rw.question, rw.method, rw.ms
        gold = {Path(s).name for s in item["sources"]}
        for arm, query in (("standalone", item["question"]), ("followup", rw.question), ("bare", follow)):
            row[f"{arm}_retrieved_gold"] = bool(gold & {Path(h.source).name for h in pipe.retrieve(query)})
        if args.bare_answers:
            t0 = time.perf_counter()
            ans = pipe.answer(follow)
            row["bare_reply"], row["bare_ms"] = ans.answer, round((time.perf_counter() - t0) * 1000)
        for arm in ARMS if args.bare_answers else ARMS[:3]:
            row[f"{arm}_correct"] = correct(row[f"{arm}_reply"], item["answers"])
        rows.append(row)
        print(json.dumps({k: row.get(k) for k in ("id", "rewrite", "rewrite_method", "standalone_correct",
                                                   "followup_correct", "all_turns_correct", "bare_retrieved_gold", "followup_retrieved_gold",
                                                   "rewrite_ms", "followup_ms", "standalone_ms")},
                         ensure_ascii=False), flush=True)
        partial(args, gen, rows)
    partial(args, gen, rows)


ARMS = ("standalone", "followup", "all_turns", "bare")
RETRIEVED = ("standalone", "followup", "bare")  # all_turns searches as followup does


def partial(args, gen, rows) -> None:
    """The summary of the rows so far, written after each pair (a slow run can be stopped and still report)."""
    answered = ARMS if args.bare_answers else ARMS[:3]
    summary = {
        "model": gen.model, "pairs": len(rows), "max_tokens": args.max_tokens,
        "correct": {arm: sum(r[f"{arm}_correct"] for r in rows) for arm in answered},
        "gold_source_retrieved": {arm: sum(r[f"{arm}_retrieved_gold"] for r in rows) for arm in RETRIEVED},
        "median_ms": {arm: statistics.median(r[f"{arm}_ms"] for r in rows) for arm in answered},
        "median_rewrite_ms": statistics.median(r["rewrite_ms"] for r in rows),
        "rewrite_methods": {m: sum(r["rewrite_method"] == m for r in rows) for m in ("rule", "referent", "model", "fallback")},
        "note": "2-core machine; times are comparable within this run only",
    }
    summary["followup_over_standalone_time"] = round(summary["median_ms"]["followup"] / summary["median_ms"]["standalone"], 2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, ensure_ascii=False, indent=1) + "\n",
                              encoding="utf-8")
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
