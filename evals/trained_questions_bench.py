"""A bench of questions the adapter was trained on, to tell "did not learn" from "did not generalise".

When the sft arm does no better than closed_book on the real bench, the question is whether
training put the facts into the model at all. This samples N trained QA pairs per language
(the question exactly as trained, its answer span as the acceptable answer, its chunk's source)
and writes them in bench format, so `ragkit eval --arms closed_book,sft` measures recall of the
training data itself: high there and low on the bench means the model memorised the phrasing
but cannot use the fact when asked differently.

    python evals/trained_questions_bench.py runs/RUN/sft/qa.jsonl --n 40 --out trained.jsonl
    ragkit eval --bench trained.jsonl --arms closed_book,sft --adapter en=runs/RUN/adapters/en.gguf \\
        --adapter zh=runs/RUN/adapters/zh.gguf --index runs/RUN/index --out trained-eval
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="SFT data written by build-sft-data (its .provenance.jsonl beside it)")
    ap.add_argument("--n", type=int, default=40, help="questions per language")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    prov_path = args.data.with_name(args.data.stem + ".provenance.jsonl")
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    prov = {p["id"]: p for p in map(json.loads, prov_path.read_text(encoding="utf-8").splitlines()) if p}
    picked: dict[str, list[dict]] = {}
    for row in rows:
        p = prov.get(row.get("id"))
        # Direct questions in their original wording with a short answer (a figure, a name): the
        # answer is the span itself, and containment is a fair test of it.
        if (p and p.get("origin") == "generated" and p.get("task") == "direct" and p.get("variant") == "original"
                and len(p["answer_span"]) <= 40):
            picked.setdefault(p["language"], []).append({
                "id": f"trained-{row['id']}", "question": row["instruction"], "answers": [p["answer_span"]],
                "sources": [p["source"]], "category": "trained", "difficulty": "easy",
            })
    rng = random.Random(args.seed)
    out = []
    for lang in sorted(picked):
        items = picked[lang]
        rng.shuffle(items)
        out += items[: args.n]
    args.out.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in out), encoding="utf-8")
    print(f"{args.out}: {len(out)} trained questions ({', '.join(f'{k} {min(len(v), args.n)}' for k, v in picked.items())})")


if __name__ == "__main__":
    main()
