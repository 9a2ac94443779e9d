"""How well `needs_reasoning` picks the questions that need a computation (issue 26, --reason auto).

    python evals/reason_route.py [--cmrc /work/shared/benches/cmrc2018/cmrc2018_trial.json]
                                 [--out evals/results/reason/route.json]

- Sample bench (data/bench/sample.jsonl): precision and recall against the "logic" category,
  per language, with every miss and false alarm listed.
- Questions that should not be routed: the CMRC 2018 trial questions (Chinese reading) and, as
  sets the rule was NOT developed on, the retention bench's reading and closed-book questions
  (data/general/retention.jsonl) and the off-domain questions (data/bench/off_domain.jsonl):
  the share flagged.
- The cost: microseconds per question for the rule and for `sub_queries`.

No model is loaded; it runs in about a second.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ragkit.lang import detect_language
from ragkit.reason.route import needs_reasoning, sub_queries

ROOT = Path(__file__).resolve().parents[1]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _lang(item: dict) -> str:
    return item.get("lang") or ("zh" if item["id"].startswith("zh") else detect_language(item["question"]))


def score_bench(items: list[dict]) -> dict:
    out: dict = {}
    for lang in ("all", "en", "zh"):
        subset = [i for i in items if lang == "all" or _lang(i) == lang]
        tp = fp = fn = tn = 0
        for item in subset:
            routed, logic = needs_reasoning(item["question"], _lang(item)), item["category"] == "logic"
            tp += routed and logic
            fp += routed and not logic
            fn += logic and not routed
            tn += not routed and not logic
        out[lang] = {"items": len(subset), "logic": tp + fn, "routed": tp + fp, "tp": tp, "fp": fp,
                     "fn": fn, "tn": tn, "precision": round(tp / max(tp + fp, 1), 3),
                     "recall": round(tp / max(tp + fn, 1), 3)}
    out["false_alarms"] = [f"{i['id']} ({i['category']}): {i['question']}" for i in items
                           if needs_reasoning(i["question"], _lang(i)) and i["category"] != "logic"]
    out["misses"] = [f"{i['id']}: {i['question']}" for i in items
                     if i["category"] == "logic" and not needs_reasoning(i["question"], _lang(i))]
    return out


def share_flagged(questions: list[tuple[str, str]]) -> dict:
    flagged = [q for q, lang in questions if needs_reasoning(q, lang)]
    return {"questions": len(questions), "flagged": len(flagged),
            "share": round(len(flagged) / max(len(questions), 1), 4), "flagged_questions": flagged}


def cmrc_questions(path: Path) -> list[tuple[str, str]]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [(qa["question"], "zh") for article in data for p in article["paragraphs"] for qa in p["qas"]]


def cost_us(questions: list[tuple[str, str]]) -> dict:
    def per_call(fn) -> float:
        start = time.perf_counter()
        for q, lang in questions:
            fn(q, lang)
        return round((time.perf_counter() - start) / len(questions) * 1e6, 1)

    return {"needs_reasoning_us": per_call(needs_reasoning), "sub_queries_us": per_call(sub_queries)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=ROOT / "data/bench/sample.jsonl")
    parser.add_argument("--cmrc", type=Path, default=Path("/work/shared/benches/cmrc2018/cmrc2018_trial.json"))
    parser.add_argument("--out", type=Path, default=ROOT / "evals/results/reason/route.json")
    args = parser.parse_args()

    bench = _jsonl(args.bench)
    retention = _jsonl(ROOT / "data/general/retention.jsonl")
    off_domain = _jsonl(ROOT / "data/bench/off_domain.jsonl")
    result = {
        "rule": "ragkit/reason/route.py:needs_reasoning",
        "note": ("The cue lists were written from general principles, then revised once after reading "
                 "the sample bench's misses and false alarms and the CMRC trial set's false alarms, so "
                 "those two figures are in-sample; not_developed_on holds sets never looked at while "
                 "writing the rule."),
        "sample_bench": score_bench(bench),
        "not_developed_on": {
            "retention_reading": share_flagged([(i["question"], _lang(i)) for i in retention
                                                if i["category"] == "reading"]),
            "retention_closed_book": share_flagged([(i["question"], _lang(i)) for i in retention
                                                    if i["category"] != "reading"]),
            "off_domain": share_flagged([(i["question"], _lang(i)) for i in off_domain]),
        },
    }
    if args.cmrc.exists():
        cmrc = cmrc_questions(args.cmrc)
        result["cmrc2018_trial"] = share_flagged(cmrc)
    else:
        cmrc = []
        result["cmrc2018_trial"] = f"not found: {args.cmrc}"
    result["cost"] = cost_us([(i["question"], _lang(i)) for i in bench] + cmrc)
    result["sub_queries_on_routed_logic"] = {
        i["id"]: sub_queries(i["question"], _lang(i)) for i in bench
        if i["category"] == "logic" and len(sub_queries(i["question"], _lang(i))) > 1}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    s = result["sample_bench"]
    for lang in ("all", "en", "zh"):
        print(f"sample {lang}: precision {s[lang]['precision']}, recall {s[lang]['recall']} "
              f"({s[lang]['tp']} of {s[lang]['logic']} logic routed, {s[lang]['fp']} others routed)")
    for name, part in [("cmrc2018_trial", result["cmrc2018_trial"]), *result["not_developed_on"].items()]:
        if isinstance(part, dict):
            print(f"{name}: {part['flagged']} of {part['questions']} flagged ({part['share']:.1%})")
    print(f"cost: {result['cost']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
