"""Every sixth raft_rag failure of an eval's items.jsonl, with sft_rag's reply to the same question and the
start of the passages, for a reading by hand (evals/results/sample-raft/failures.md). Scored as the eval
scores an evidence-form reply: its answer part (ragkit.raft.final_answer).

    PYTHONPATH=. .venv/bin/python evals/raft_failures.py runs/sample-raft-*/eval/items.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ragkit.eval.metrics import contains_answer
from ragkit.raft import final_answer

BENCH = Path(__file__).resolve().parents[1] / "data" / "bench" / "sample.jsonl"


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def main(items_path: str, arm: str = "raft_rag", other: str = "sft_rag", every: int = 6) -> None:
    rows = read_jsonl(items_path)
    bench = {b["id"]: b for b in read_jsonl(BENCH)}
    by = {(r["arm"], r["id"]): r for r in rows}

    def right(r: dict) -> bool:
        return bool(contains_answer(final_answer(r["output"]), bench[r["id"]]["answers"]))

    mine = [r for r in rows if r["arm"] == arm and r["id"] in bench]
    fails = [r for r in mine if not right(r)]
    print(f"{arm}: {len(fails)} failures of {len(mine)}; every {every}th: {len(fails[::every])}")
    for r in fails[::every]:
        b, o = bench[r["id"]], by.get((other, r["id"]))
        print(f"\n## {r['id']} ({b['category']}/{b['difficulty']}) {r['question']}\n gold: {b['answers'][:3]}\n"
              f" {arm}: {r['output'][:260]!r}\n {other}: {(o or {}).get('output', '')[:120]!r} "
              f"({'right' if o and right(o) else 'wrong'})")
        ctx = r["prompt"].split("Context:")[-1] if "Context:" in r["prompt"] else r["prompt"][-900:]
        print(" context:", " ".join(ctx[:900].split())[:700])


if __name__ == "__main__":
    main(*sys.argv[1:2])
