"""Load on `ragkit serve`: 1, 4 and 16 concurrent clients, beside an in-process Pipeline and llama.cpp's server.

Three arms answer the same sample-bench questions with the bundled smollm2-135m (greedy, few tokens):

  serve      `ragkit serve` as a process; N clients send non-streaming chat completions at once
  pipeline   the same questions through `Pipeline.answer` in this process, one after another
  llama.cpp  the exact prompts the pipeline built, sent to `python -m llama_cpp.server`
             (/v1/completions, same stops, same max_tokens) by the same N clients

At one client the three arms take turns question by question (pipeline, serve, llama.cpp), so a
busy spell on a shared machine hits all three; the per-question ratios serve/pipeline (what the
HTTP server costs per answer) and serve/llama.cpp (retrieval + prompt building + HTTP against bare
generation) are reported as medians, beside the server's own overhead per request: the client's
latency minus the time the pipeline spent inside the server (its `timings`), which the machine's
noise does not blur. At 4 and 16 clients each server gets the same distinct
questions in turn. It prints p50/p95 latency, answers/s and errors per arm and level, and serve's
answers/s over llama.cpp's at each level.
Only questions the pipeline does not refuse before generating are used, so every arm generates.
Everything listens on 127.0.0.1, each arm has a time budget, and both servers are stopped at the
end. Target: 0 errors, no 5xx (a 503 would mean the queue was full; --queue is set above the
largest level). Results go to evals/results/serve/load.json.

    ragkit ingest data/corpus --index /tmp/sample-index
    .venv/bin/python evals/perf/serve_load.py --index /tmp/sample-index        # 4 questions, k=2, 16 tokens
    .venv/bin/python evals/perf/serve_load.py --index DIR --levels 1,4 --questions 8 -k 3 --budget-s 120
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "evals" / "results" / "serve" / "load.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], url: str, env: dict, timeout: float = 180) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd[:4]} exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"{cmd[:4]} did not come up in {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def summary(lat: list[float], wall: float, statuses: list) -> dict:
    ok = sorted(t for t, s in zip(lat, statuses) if s == 200)
    errors = {str(s): statuses.count(s) for s in set(statuses) if s != 200}
    return {"n": len(statuses), "ok": len(ok), "errors": errors,
            "p50_s": round(statistics.median(ok), 3) if ok else None,
            "p95_s": round(ok[min(len(ok) - 1, int(0.95 * len(ok)))], 3) if ok else None,
            "answers_per_s": round(len(ok) / wall, 3) if wall else None, "wall_s": round(wall, 2),
            "load_avg": round(os.getloadavg()[0], 2)}


async def clients(url: str, bodies: list[dict], concurrency: int, budget_s: float) -> dict:
    """`concurrency` clients share the bodies; each request's latency and status are kept. At
    `budget_s` the requests still open are dropped (their connections close, which `ragkit serve`
    turns into cancellations) and counted as cut, not as errors."""
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    statuses: list = []
    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=concurrency)) as c:
        async def one(body):
            async with sem:
                t = time.perf_counter()
                try:
                    r = await c.post(url, json=body)
                    status = r.status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                lat.append(time.perf_counter() - t)
                statuses.append(status)

        tasks = [asyncio.ensure_future(one(b)) for b in bodies]
        await asyncio.wait(tasks, timeout=budget_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    out = summary(lat, time.perf_counter() - t0, statuses)
    out["cut"] = len(bodies) - len(statuses)
    return out


def pick_questions(pipe, n: int) -> list[tuple[str, str]]:
    """(question, prompt) for the first n English sample-bench questions the pipeline would generate for."""
    rows = [json.loads(x) for x in (ROOT / "data" / "bench" / "sample.jsonl").read_text(encoding="utf-8").splitlines()]
    out = []
    for row in rows:
        if not row["id"].startswith("en"):
            continue
        hits = pipe.retrieve(row["question"])
        if hits and max(h.score for h in hits) >= pipe.threshold("en"):
            out.append((row["question"], pipe.plan(row["question"], hits[: pipe.passages], "en").text))
        if len(out) == n:
            break
    return out


def paired_round(pipe, arms: dict, questions, budget_s: float) -> dict:
    """One client: each question through the pipeline, then serve, then llama.cpp's server, so
    the three latencies of a question are taken within seconds of each other; per-question
    ratios are kept beside the medians (steadier on a shared machine)."""
    lat: dict[str, list[float]] = {"pipeline": [], "serve": [], "llama_cpp_server": []}
    statuses: dict[str, list] = {k: [] for k in lat}
    overhead_ms: list[float] = []
    t0 = time.perf_counter()
    with httpx.Client(timeout=300) as c:
        for q, prompt in questions:
            if time.perf_counter() - t0 > budget_s:
                break
            t = time.perf_counter()
            pipe.answer(q)
            lat["pipeline"].append(time.perf_counter() - t)
            statuses["pipeline"].append(200)
            for arm, (url, make) in arms.items():
                t = time.perf_counter()
                try:
                    r = c.post(url, json=make(q, prompt))
                    statuses[arm].append(r.status_code)
                except httpx.HTTPError as e:
                    statuses[arm].append(type(e).__name__)
                    r = None
                lat[arm].append(time.perf_counter() - t)
                if arm == "serve" and r is not None and r.status_code == 200:
                    # What serving adds to the pipeline's own time (retrieval + generation, measured
                    # inside the server): HTTP, JSON, the hand-off to the model's worker thread.
                    tm = r.json()["timings"]
                    overhead_ms.append(lat[arm][-1] * 1000 - tm["total_ms"] - tm.get("queue_ms", 0.0))
    wall = time.perf_counter() - t0
    out = {arm: {"1": summary(lat[arm], wall, statuses[arm]) | {"cut": len(questions) - len(lat[arm]),
                                                                "latencies_s": [round(x, 3) for x in lat[arm]]}}
           for arm in lat}
    for arm in out.values():  # three arms shared the wall clock: answers/s from each arm's own time
        r = arm["1"]
        r["answers_per_s"] = round(r["ok"] / sum(r["latencies_s"]), 3) if r["ok"] else None
    pairs = {"serve_over_pipeline": [s / p for s, p in zip(lat["serve"], lat["pipeline"])],
             "serve_over_llama_cpp": [s / m for s, m in zip(lat["serve"], lat["llama_cpp_server"])]}
    out["paired_1_client"] = {k: round(statistics.median(v), 3) if v else None for k, v in pairs.items()}
    out["paired_1_client"]["serve_overhead_ms_median"] = round(statistics.median(overhead_ms), 2) if overhead_ms else None
    out["paired_1_client"]["serve_overhead_ms"] = [round(x, 2) for x in overhead_ms]
    return out


def bodies_for(level: int, questions, make, n_min: int = 4) -> list[dict]:
    n = max(min(n_min, len(questions)), level)
    return [make(*questions[i % len(questions)]) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True, help="Index of data/corpus (ragkit ingest data/corpus --index DIR).")
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--questions", type=int, default=4, help="Requests per level: max(this, N clients), each a different question.")
    ap.add_argument("--out", default=str(OUT), help="Where the JSON results go.")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("-k", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=45,
                    help="Per arm and level; requests still open then are dropped and counted as cut.")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    from ragkit.generate import Decoding, load_generator
    from ragkit.generate.prompts import answer_stop
    from ragkit.index import Index
    from ragkit.pipeline import Pipeline

    gen = load_generator("smollm2-135m")
    pipe = Pipeline(Index.open(args.index), gen, k=args.k, decoding=Decoding(max_tokens=args.max_tokens))
    questions = pick_questions(pipe, max(args.questions, *levels))  # no question twice within a level
    threads = gen.llm.n_threads
    env = {**os.environ, "RAGKIT_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    print(f"{len(questions)} English sample-bench questions, k={args.k}, max_tokens={args.max_tokens}, "
          f"smollm2-135m, {threads} llama.cpp threads, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    pipe.answer(questions[0][0])  # warm-up: the first answer evaluates the shared system prompt
    results: dict = {"config": vars(args) | {"threads": threads, "n_questions": len(questions),
                                             "cpu": _cpu_name(), "cpus": os.cpu_count()},
                     "pipeline": {}, "serve": {}, "llama_cpp_server": {}}

    from ragkit.models import resolve_llm

    stops = answer_stop("chat")

    def completion(_q, prompt):
        return {"prompt": prompt, "max_tokens": args.max_tokens, "temperature": 0, "stop": stops or None}

    # Both servers run side by side (an idle one costs no CPU) and the arms alternate level by
    # level, so a busy spell on a shared machine falls on both rather than on one.
    sp, lp = free_port(), free_port()
    procs = [start([sys.executable, "-c", "from ragkit.cli import main; main()", "serve", "--index", args.index,
                    "--model", "smollm2-135m", "--port", str(sp), "--max-tokens", str(args.max_tokens),
                    "-k", str(args.k), "--queue", str(max(levels) + 8), "--log-level", "warning"],
                   f"http://127.0.0.1:{sp}/healthz", env)]
    try:
        procs.append(start([sys.executable, "-m", "llama_cpp.server", "--model", str(resolve_llm("smollm2-135m")[1]),
                            "--n_ctx", "4096", "--n_threads", str(threads), "--host", "127.0.0.1", "--port", str(lp),
                            "--verbose", "False"], f"http://127.0.0.1:{lp}/v1/models", env))
        arms = {"serve": (f"http://127.0.0.1:{sp}/v1/chat/completions", _chat),
                "llama_cpp_server": (f"http://127.0.0.1:{lp}/v1/completions", completion)}
        for url, make in arms.values():
            asyncio.run(clients(url, bodies_for(1, questions[:1], make), 1, 120))  # warm-up
        for c in levels:
            if c == 1:
                results.update(paired_round(pipe, arms, questions, args.budget_s))
                for arm in ("pipeline", "serve", "llama_cpp_server"):
                    print(f"{arm:<17} 1:", results[arm]["1"], flush=True)
                continue
            for arm, (url, make) in arms.items():
                results[arm][str(c)] = asyncio.run(clients(url, bodies_for(c, questions, make, args.questions), c,
                                                           args.budget_s))
                print(f"{arm:<17}{c:2d}:", results[arm][str(c)], flush=True)
    finally:
        for p in procs:
            stop(p)
    report(results, levels, Path(args.out))


def _chat(question, _prompt):
    return {"model": "ragkit", "messages": [{"role": "user", "content": question}], "stream": False}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def report(results: dict, levels: list[int], out: Path) -> None:
    s1, p1 = results["serve"]["1"], results["pipeline"]["1"]
    ratios = {"serve_p50_over_pipeline_p50": round(s1["p50_s"] / p1["p50_s"], 3) if s1["p50_s"] else None}
    for c in levels:
        s, lc = results["serve"].get(str(c)), results["llama_cpp_server"].get(str(c))
        if not (s and lc):
            continue
        if s["answers_per_s"] and lc["answers_per_s"]:
            ratios[f"serve_answers_per_s_over_llama_cpp_c{c}"] = round(s["answers_per_s"] / lc["answers_per_s"], 3)
    ratios.update({f"paired_median_{k}": v for k, v in results.get("paired_1_client", {}).items()
                   if not isinstance(v, list)})
    results["ratios"] = ratios
    print(f"\n{'arm':<18}{'clients':>8}{'ok':>5}{'p50 s':>8}{'p95 s':>8}{'ans/s':>8}  errors  cut at the budget")
    for arm in ("pipeline", "serve", "llama_cpp_server"):
        for c, r in results[arm].items():
            print(f"{arm:<18}{c:>8}{r['ok']:>5}{r['p50_s']!s:>8}{r['p95_s']!s:>8}{r['answers_per_s']!s:>8}  "
                  f"{r['errors'] or 0}  {r.get('cut', 0)}")
    for k, v in ratios.items():
        print(f"{k}: {v}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
