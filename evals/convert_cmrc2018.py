"""Convert the CMRC 2018 trial set (SQuAD v1 format) into a ragkit corpus and bench.

One paragraph per text file (corpus/<title-id>.txt), one bench item per question whose source is
that paragraph's file. Answers are matched by text, not offsets (a few offsets are wrong upstream).

    python evals/convert_cmrc2018.py ../shared/benches/cmrc2018/cmrc2018_trial.json --out .ragkit/cmrc
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def convert(src: Path, out: Path, limit: int | None = None) -> tuple[int, int]:
    data = json.loads(src.read_text(encoding="utf-8"))["data"]
    corpus = out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    n_par = n_q = 0
    with (out / "bench.jsonl").open("w", encoding="utf-8") as bench:
        for article in data:
            for para in article["paragraphs"]:
                name = f"{para.get('id') or article.get('id') or n_par}.txt"
                (corpus / name).write_text(para["context"].strip() + "\n", encoding="utf-8")
                n_par += 1
                for qa in para["qas"]:
                    answers = sorted({a["text"].strip() for a in qa["answers"] if a["text"].strip()})
                    if not answers or not qa["question"].strip():
                        continue  # upstream has a couple of items with an empty question
                    item = {"id": qa["id"], "question": qa["question"].strip(), "answers": answers,
                            "sources": [name], "category": "knowledge", "difficulty": "easy"}
                    bench.write(json.dumps(item, ensure_ascii=False) + "\n")
                    n_q += 1
                if limit and n_par >= limit:
                    return n_par, n_q
    return n_par, n_q


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None, help="stop after this many paragraphs")
    args = ap.parse_args()
    n_par, n_q = convert(args.src, args.out, args.limit)
    print(f"{n_par} paragraphs, {n_q} questions → {args.out}")
