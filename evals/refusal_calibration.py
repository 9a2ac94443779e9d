"""Calibrate `ragkit ask`'s "not in the documents" threshold: best hybrid score of answerable
bench questions against off-domain ones, per language, and what each threshold would do.

A question whose best retrieved chunk scores below the threshold is refused before the model
runs. For each candidate threshold the script prints, per language, the share of answerable
questions wrongly refused and of off-domain questions let through, and suggests the threshold
that lets the fewest off-domain questions through while refusing at most 2% of answerable ones.
This is how DEFAULT_MIN_SCORE in ragkit/pipeline.py was chosen (see README, results).

    python evals/refusal_calibration.py --index .ragkit/demo-index \
        --bench data/bench/sample.jsonl --off data/bench/off_domain.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ragkit.eval.bench import load_bench
from ragkit.index import Index
from ragkit.lang import detect_language

THRESHOLDS = [round(0.05 + 0.01 * i, 2) for i in range(31)]  # 0.05 … 0.35
MAX_WRONG_REFUSALS = 0.02


def best_scores(index: Index, questions: list[str]) -> dict[str, list[float]]:
    by_lang: dict[str, list[float]] = {}
    for q in questions:
        hits = index.search(q, k=1, mode="hybrid")
        by_lang.setdefault(detect_language(q), []).append(hits[0].score if hits else 0.0)
    return by_lang


def suggest(answerable: list[float], off: list[float]) -> float:
    """The threshold letting the fewest off-domain questions through within the refusal budget."""
    ok = [t for t in THRESHOLDS if sum(s < t for s in answerable) <= MAX_WRONG_REFUSALS * len(answerable)]
    return max(ok) if ok else THRESHOLDS[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--bench", required=True, help="answerable questions (a ragkit bench file)")
    ap.add_argument("--off", required=True, help="off-domain questions, JSON lines with a 'question' field")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    index = Index.open(args.index)
    answerable = best_scores(index, [i.question for i in load_bench(args.bench)])
    off_qs = [json.loads(line)["question"] for line in Path(args.off).read_text(encoding="utf-8").splitlines()
              if line.strip()]
    off = best_scores(index, off_qs)
    result = {}
    for lang in sorted(answerable):
        a, o = answerable[lang], off.get(lang, [])
        result[lang] = {
            "answerable": {"n": len(a), "min": round(min(a), 3), "max": round(max(a), 3)},
            "off_domain": {"n": len(o), "min": round(min(o), 3) if o else None, "max": round(max(o), 3) if o else None},
            "thresholds": {t: {"answerable_refused": round(sum(s < t for s in a) / len(a), 3),
                               "off_domain_answered": round(sum(s >= t for s in o) / max(1, len(o)), 3)}
                           for t in THRESHOLDS},
            "suggested": suggest(a, o),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for lang, r in result.items():
        a, o = r["answerable"], r["off_domain"]
        print(f"{lang}: answerable n={a['n']} best score {a['min']}-{a['max']}; "
              f"off-domain n={o['n']} best score {o['min']}-{o['max']}")
        print("  threshold  answerable refused  off-domain answered")
        for t, v in r["thresholds"].items():
            mark = "  <- suggested" if t == r["suggested"] else ""
            print(f"  {t:9.2f}  {v['answerable_refused']:19.3f}  {v['off_domain_answered']:19.3f}{mark}")


if __name__ == "__main__":
    main()
