"""Counts of a bench file's items per category and difficulty (and language), to check its balance.

    python evals/bench_stats.py data/bench/sample.jsonl
    python evals/bench_stats.py data/bench/sample.jsonl --json

A category with a handful of items gives confidence intervals too wide to read anything into;
this shows which ones before an eval is run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ragkit.eval.bench import DIFFICULTIES, load_bench
from ragkit.lang import detect_language


def bench_stats(path: str) -> dict:
    items = load_bench(path)
    cats = Counter(it.category for it in items)
    diffs = Counter(it.difficulty for it in items)
    langs = Counter(detect_language(it.question) for it in items)
    cross = Counter((it.category, it.difficulty) for it in items)
    return {
        "file": str(path),
        "items": len(items),
        "by_category": dict(sorted(cats.items())),
        "by_difficulty": {d: diffs[d] for d in DIFFICULTIES if diffs[d]},  # easy..hard, simple..complex
        "by_language": dict(sorted(langs.items())),
        "category_x_difficulty": {c: {d: cross[(c, d)] for d in DIFFICULTIES if cross[(c, d)]} for c in sorted(cats)},
        "multi_answer_items": sum(1 for it in items if len(it.answers) > 1),
        "multi_source_items": sum(1 for it in items if len(it.sources) > 1),
    }


def render(s: dict) -> str:
    diffs = list(s["by_difficulty"])
    lines = [f"{s['file']}: {s['items']} items; languages: "
             + ", ".join(f"{k} {v}" for k, v in s["by_language"].items()), ""]
    head = ["category", *diffs, "total"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cat, row in s["category_x_difficulty"].items():
        lines.append(f"| {cat} | " + " | ".join(str(row.get(d, 0)) for d in diffs) + f" | {s['by_category'][cat]} |")
    lines.append("| total | " + " | ".join(str(s["by_difficulty"][d]) for d in diffs) + f" | {s['items']} |")
    lines += ["", (f"items with several acceptable answers: {s['multi_answer_items']}; "
              f"with several gold sources: {s['multi_source_items']}")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench", nargs="+", help="bench JSONL file(s)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    stats = [bench_stats(b) for b in args.bench]
    if args.json:
        print(json.dumps(stats if len(stats) > 1 else stats[0], ensure_ascii=False, indent=2))
    else:
        print("\n\n".join(render(s) for s in stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
