"""Time to first token and prompt tokens: new answer settings against the old ones, side by side.

Warm: one long-lived `Pipeline` per setting over the same index, each with its own copy of the
model (so each keeps its own llama.cpp cache, as a served model would), answering the same
questions in turn (A, B, A, B ...), so that whatever else the machine does hits both alike. The old
setting runs without kept prompt prefixes (only llama.cpp's reuse of the previous prompt), as
before they existed. Cold: `ragkit ask --json` as a new process per question, both settings in
turn, timing the whole command and reading the first-token time it reports.

    python evals/perf/answer_speed.py --index .ragkit/demo-index --questions 24 --cold 4
    python evals/perf/answer_speed.py --old "k=3,context_tokens=0,reason=off" --new ""   # defaults

Prints one JSON object (also written to evals/results/answer-settings/speed.json with --save)
with p50/p95 per setting and the ratios old/new. Name the CPU when you quote it: prompt reading
on an AVX2-only CPU is several times slower than on one with AVX-512 VNNI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "evals"))
from answer_settings import parse_setting  # noqa: E402  (one reading of "k=3,context_tokens=0")


def questions(n: int) -> list[str]:
    """n questions from the sample bench, English and Chinese alternating, every category."""
    rows = {lang: [json.loads(x) for x in (ROOT / "data/bench" / f"{lang}.jsonl").read_text().splitlines() if x]
            for lang in ("en", "zh")}
    out = []
    for i in range(n):
        lang_rows = rows["en" if i % 2 == 0 else "zh"]
        out.append(lang_rows[(i // 2) * (len(lang_rows) // max(1, n // 2)) % len(lang_rows)]["question"])
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                isa = "AVX-512 VNNI" if "avx512_vnni" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
                return f"{line.split(':', 1)[1].strip()}, {isa}, {os.cpu_count()} CPUs"
    except OSError:
        pass
    return platform.processor()


def stats(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {}
    q = statistics.quantiles(values, n=20) if len(values) > 1 else [values[0]] * 19
    return {"n": len(values), "p50": round(statistics.median(values), 1), "p95": round(q[-1], 1)}


def warm(index_dir: str, model: str | None, qs: list[str], old: dict, new: dict, max_tokens: int) -> dict:
    from ragkit import Index, Pipeline
    from ragkit.generate import Decoding
    from ragkit.generate.llamacpp import LlamaCppGenerator
    from ragkit.models import default_llm, resolve_llm

    name, path = resolve_llm(model or default_llm("en"))
    index = Index.open(index_dir)
    pipes = {
        "old": Pipeline(index, LlamaCppGenerator(path, name, kept_prefixes=0), decoding=Decoding(max_tokens=max_tokens),
                        **old),
        "new": Pipeline(index, LlamaCppGenerator(path, name), decoding=Decoding(max_tokens=max_tokens), **new),
    }
    for pipe in pipes.values():  # warm-up: embedder, jieba, BM25 arrays, the model's first pass
        pipe.answer(qs[0])
    rows = {k: [] for k in pipes}
    for i, q in enumerate(qs):
        order = ("old", "new") if i % 2 == 0 else ("new", "old")
        for key in order:
            a = pipes[key].answer(q)
            rows[key].append({"first_token_ms": a.timings.get("first_token_ms"), "total_ms": a.timings["total_ms"],
                              "prompt_tokens": a.prompt_tokens, "reasoned": bool(a.reasoning and a.reasoning.get("used"))})
        print(f"  warm {i + 1}/{len(qs)}", file=sys.stderr)
    for pipe in pipes.values():
        pipe.close()
    return summarise(rows)


def cold(index_dir: str, model: str | None, qs: list[str], old: dict, new: dict, max_tokens: int) -> dict:
    rows = {"old": [], "new": []}
    for i, q in enumerate(qs):
        for key, setting in (("old", old), ("new", new)) if i % 2 == 0 else (("new", new), ("old", old)):
            cmd = [str(Path(sys.executable).parent / "ragkit"), "ask", q, "--index", index_dir, "--json",
                   "--max-tokens", str(max_tokens)]
            cmd += ["--model", model] if model else []
            for k, v in setting.items():
                cmd += ["-k" if k == "k" else f"--{k.replace('_', '-')}", str(v)]
            t0 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            wall = (time.perf_counter() - t0) * 1000
            a = json.loads(out.stdout)
            rows[key].append({"first_token_ms": a["timings"].get("first_token_ms"), "total_ms": a["timings"]["total_ms"],
                              "prompt_tokens": a["prompt_tokens"], "command_ms": wall,
                              "retrieval_ms": a["timings"]["retrieval_ms"]})
        print(f"  cold {i + 1}/{len(qs)}", file=sys.stderr)
    return summarise(rows, extra=("command_ms", "retrieval_ms"))


def summarise(rows: dict, extra: tuple = ()) -> dict:
    out = {}
    for key, rs in rows.items():
        out[key] = {f: stats([r[f] for r in rs]) for f in ("first_token_ms", "total_ms", "prompt_tokens", *extra)}
        if rs and "reasoned" in rs[0]:
            out[key]["reasoned"] = sum(r["reasoned"] for r in rs)
    out["ratio_old_over_new"] = {
        f: round(out["old"][f]["p50"] / out["new"][f]["p50"], 2)
        for f in ("first_token_ms", "total_ms", "prompt_tokens", *extra)
        if out["old"][f] and out["new"][f] and out["new"][f]["p50"]
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=".ragkit/demo-index")
    ap.add_argument("--model", default=None, help="bundled name [default: the default model]")
    ap.add_argument("--old", default="k=3,context_tokens=0,reason=off", help="the settings before (k=3: `ask`'s k then)")
    ap.add_argument("--new", default="", help="the settings after (empty: the defaults)")
    ap.add_argument("--questions", type=int, default=24, help="warm questions (half English, half Chinese)")
    ap.add_argument("--cold", type=int, default=4, help="cold CLI questions per setting (0 skips)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--save", action="store_true")
    args = ap.parse_args()
    old, new = parse_setting(args.old), parse_setting(args.new)
    qs = questions(args.questions)
    result = {"cpu": cpu_name(), "model": args.model or "default", "old": old, "new": new or "defaults",
              "warm": warm(args.index, args.model, qs, old, new, args.max_tokens)}
    if args.cold:
        result["cold"] = cold(args.index, args.model, qs[: args.cold], old, new, args.max_tokens)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.save:
        dest = ROOT / "evals/results/answer-settings/speed.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
