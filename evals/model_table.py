"""The bundled-model table: accuracy from `ragkit eval` runs, speed timed through `Pipeline.answer`.

Accuracy comes from eval runs (the same code `ragkit ask` uses), one output folder per model:

    ragkit eval --bench .ragkit/cmrc/bench.jsonl --index .ragkit/cmrc-index --arms rag \\
        --model MODEL -k 3 --max-tokens 48 --limit 200 --out .ragkit/models/cmrc-MODEL

Speed is timed here, after the accuracy runs and on an otherwise idle machine (the eval runs above
shared the CPU with other work, so their latencies are not quoted): the first N questions of each
bench, one warm-up answer first, median seconds per answer and decode tokens/s.

    python evals/model_table.py --runs .ragkit/models --cmrc-index .ragkit/cmrc-index \\
        --cmrc-bench .ragkit/cmrc/bench.jsonl --sample-index .ragkit/demo-index --questions 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

MODELS = ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "gemma3-270m", "smollm2-135m"]


def accuracy(run: Path) -> dict | None:
    """rag accuracy (overall and per language) with its CI from an eval run's report.json."""
    report = run / "report.json"
    if not report.is_file():
        return None
    arm = json.loads(report.read_text(encoding="utf-8"))["arms"]["rag"]
    out = {"n": arm["n"], "accuracy": arm["accuracy"], "ci95": arm["ci95"]["accuracy"]}
    for lang, row in (arm.get("by_language") or {}).items():
        out[lang] = {"n": row["n"], "accuracy": row["accuracy"]}
    return out


def speed(model: str, index_dir: str, questions: list[str]) -> dict:
    """Median seconds per answer and decode tokens/s over `questions`, after one warm-up."""
    from ragkit import Index, Pipeline
    from ragkit.generate import Decoding, clear_cache, load_generator

    pipe = Pipeline(Index.open(index_dir), load_generator(model), k=3, decoding=Decoding(max_tokens=48))
    pipe.answer(questions[0])
    secs, rates = [], []
    for q in questions:
        t0 = time.perf_counter()
        ans = pipe.answer(q)
        secs.append(time.perf_counter() - t0)
        if ans.completion_tokens > 1:
            rates.append(ans.timings["tokens_per_s"])
    clear_cache()
    return {"s_per_answer": round(statistics.median(secs), 2),
            "tokens_per_s": round(statistics.median(rates), 1) if rates else None}


def first_questions(bench: str, n: int) -> list[str]:
    rows = [json.loads(line) for line in Path(bench).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["question"] for r in rows[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=".ragkit/models", help="Folder holding cmrc-MODEL and sample-MODEL eval runs.")
    ap.add_argument("--cmrc-index", default=".ragkit/cmrc-index")
    ap.add_argument("--cmrc-bench", default=".ragkit/cmrc/bench.jsonl")
    ap.add_argument("--sample-index", default=".ragkit/demo-index")
    ap.add_argument("--sample-bench", default="data/bench/sample.jsonl")
    ap.add_argument("--questions", type=int, default=8, help="Questions per bench for the speed figures (0: skip).")
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for m in args.models:
        row = {"model": m, "cmrc": accuracy(Path(args.runs) / f"cmrc-{m}"),
               "sample": accuracy(Path(args.runs) / f"sample-{m}")}
        if args.questions:
            row["speed_cmrc"] = speed(m, args.cmrc_index, first_questions(args.cmrc_bench, args.questions))
            row["speed_sample"] = speed(m, args.sample_index, first_questions(args.sample_bench, args.questions))
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    if not args.json:
        print("| model | CMRC trial rag acc. [95% CI] (n) | sample rag en | sample rag zh | s/answer (CMRC, sample) | tokens/s |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            c, s = r["cmrc"], r["sample"]
            cm = f"{c['accuracy']:.2f} [{c['ci95'][0]:.2f}–{c['ci95'][1]:.2f}] ({c['n']})" if c else "-"
            en = f"{s['en']['accuracy']:.2f} ({s['en']['n']})" if s and "en" in s else "-"
            zh = f"{s['zh']['accuracy']:.2f} ({s['zh']['n']})" if s and "zh" in s else "-"
            sp = (f"{r['speed_cmrc']['s_per_answer']}, {r['speed_sample']['s_per_answer']}"
                  if "speed_cmrc" in r else "-")
            tps = r.get("speed_sample", {}).get("tokens_per_s", "-")
            print(f"| `{r['model']}` | {cm} | {en} | {zh} | {sp} | {tps} |")


if __name__ == "__main__":
    main()
