"""Answer settings side by side: accuracy per category and language, prompt tokens and latency, for
several settings of the answer path (k, context_tokens, reason) on one bench, each run through
`ragkit eval`'s rag arm (the code `ask` and `serve` run), with paired bootstrap differences
against the first setting.

This is how the evidence budget and the reasoning default were chosen (ragkit/pipeline.py,
DEFAULT_CONTEXT_TOKENS; results in evals/results/answer-settings/):

    python evals/answer_settings.py --bench data/bench/sample.jsonl --index .ragkit/demo-index \\
        --name sample --settings "k=3,context_tokens=0,reason=off" "k=5,context_tokens=250,reason=auto"
    python evals/answer_settings.py --bench .ragkit/cmrc/bench.jsonl --index .ragkit/cmrc-index --limit 200 \\
        --name cmrc --settings "k=3,context_tokens=0,reason=off" "k=5,context_tokens=250,reason=auto"

Each setting's run goes to `--runs/NAME/SETTING/` and resumes there (eval reuses finished items),
so a long comparison survives an interruption. The first setting is the baseline.
Latencies here come from whatever else the machine was doing: for speed, use
evals/perf/answer_speed.py, which times settings side by side on one loaded model.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def parse_setting(text: str) -> dict:
    """"k=3,context_tokens=0,reason=off" -> {"k": 3, ...}; "" -> {} (the defaults)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        out[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    return out


def label(setting: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in setting.items()).replace("context_tokens", "ctx").replace("_", "")


def run(bench: str, index: str, setting: dict, out: Path, limit: int | None, model: str | None) -> dict:
    from ragkit.cli.progress import TerminalProgress
    from ragkit.eval.config import EvalConfig
    from ragkit.eval.runner import run_eval

    config = EvalConfig(bench=bench, index=index, out=str(out), arms=["rag"], limit=limit,
                        models={"*": model} if model else {}, **setting)
    return run_eval(config, progress=TerminalProgress(), log=print)


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "items.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def summarise(report: dict, items: list[dict]) -> dict:
    arm = report["arms"]["rag"]
    tokens = [r["prompt_tokens"] for r in items if r.get("prompt_tokens")]
    latency = [r["latency_ms"] for r in items if r.get("latency_ms")]
    q = statistics.quantiles
    return {
        "n": arm["n"], "accuracy": arm["accuracy"], "ci95": arm["ci95"]["accuracy"], "f1": arm.get("f1"),
        "by_category": {c: v["accuracy"] for c, v in (arm.get("by_category") or {}).items()},
        "by_language": {c: v["accuracy"] for c, v in (arm.get("by_language") or {}).items()},
        "refused": arm.get("refused"),
        "prompt_tokens_p50": statistics.median(tokens) if tokens else None,
        "prompt_tokens_p95": q(tokens, n=20)[-1] if len(tokens) > 1 else None,
        "latency_ms_p50": statistics.median(latency) if latency else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", required=True)
    ap.add_argument("--index", required=True)
    ap.add_argument("--name", required=True, help="results name (evals/results/answer-settings/NAME.json)")
    ap.add_argument("--settings", nargs="+", required=True, help='"k=3,context_tokens=0,reason=off" ...')
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--runs", default=".ragkit/answer-settings")
    ap.add_argument("--results", default="evals/results/answer-settings")
    args = ap.parse_args()

    from ragkit.eval.report import pair_diff

    settings = [parse_setting(s) for s in args.settings]
    summary: dict = {"bench": args.bench, "limit": args.limit, "model": args.model or "default", "settings": []}
    base_rows = None
    for setting in settings:
        out = Path(args.runs) / args.name / label(setting)
        report = run(args.bench, args.index, setting, out, args.limit, args.model)
        items = [r for r in rows(out) if r["arm"] == "rag"]
        scored = report_rows(out)
        entry = {"setting": setting, **summarise(report, items)}
        if base_rows is None:
            base_rows = scored
        else:
            entry["vs_first"] = pair_diff(base_rows, scored)
            for cat in sorted({r["category"] for r in scored}):
                a = [r for r in base_rows if r["category"] == cat]
                b = [r for r in scored if r["category"] == cat]
                entry.setdefault("vs_first_by_category", {})[cat] = pair_diff(a, b)
        summary["settings"].append(entry)
        print(json.dumps(entry, ensure_ascii=False))
    dest = Path(args.results)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / f"{args.name}.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written {dest / (args.name + '.json')}")


def report_rows(out: Path) -> list[dict]:
    """The scored rag rows of a run, in bench order (what the paired bootstrap pairs)."""
    report_items = [r for r in rows(out) if r["arm"] == "rag"]
    return sorted(report_items, key=lambda r: r["id"])


if __name__ == "__main__":
    main()
