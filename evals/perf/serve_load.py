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

With --mixed it measures what a team's server sees instead (mixed_load below): streamed questions
and uploads into a knowledge base at once, at 1, 4 and 8 clients, against the plain Pipeline at
one client; first token, total and queue time (p50/p95), errors, and the uploads' ingest jobs.
Results go to evals/results/serve/load_mixed.json.

    .venv/bin/python evals/perf/serve_load.py --mixed --index /tmp/sample-index --model qwen2.5-coder-0.5b
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
    ap.add_argument("--mixed", action="store_true", help="Questions and uploads mixed (see mixed_load).")
    ap.add_argument("--model", default=None, help="--mixed: the model [default: the server's default].")
    ap.add_argument("--upload-every", type=int, default=4, help="--mixed: every Nth request of a client is an upload.")
    args = ap.parse_args()
    if args.mixed:
        if args.levels == "1,4,16":
            args.levels = "1,4,8"
        if args.out == str(OUT):
            args.out = str(OUT.with_name("load_mixed.json"))
        return mixed_load(args)
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


# ------------------------------------------------------------------------------------ --mixed
UPLOAD_SOURCES = sorted((ROOT / "data" / "corpus" / "en").glob("*.md"))


def pct(values: list[float], q: float) -> float | None:
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 3) if v else None


async def stream_question(c: httpx.AsyncClient, url: str, question: str, model: str) -> dict:
    """One streamed chat request: first-token and total seconds, the server's queue_ms, the status."""
    t = time.perf_counter()
    first, timings, status = None, {}, None
    try:
        async with c.stream("POST", url, json={"model": model, "stream": True,
                                               "messages": [{"role": "user", "content": question}]}) as r:
            status = r.status_code
            async for line in r.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                obj = json.loads(line[6:])
                if "error" in obj:
                    status = obj["error"].get("code") or "stream_error"
                delta = (obj.get("choices") or [{}])[0].get("delta", {})
                if first is None and delta.get("content"):
                    first = time.perf_counter() - t
                if "timings" in obj:
                    timings = obj["timings"]
    except httpx.HTTPError as e:
        status = type(e).__name__
    return {"kind": "question", "status": status, "first_s": first, "total_s": time.perf_counter() - t,
            "queue_ms": timings.get("queue_ms"), "server_total_ms": timings.get("total_ms")}


async def upload_one(c: httpx.AsyncClient, base: str, kb: str, name: str, data: bytes) -> dict:
    t = time.perf_counter()
    try:
        r = await c.post(f"{base}/v1/vector_stores/{kb}/files", files=[("file", (name, data, "text/markdown"))])
        status, job = r.status_code, (r.json().get("id") if r.status_code == 202 else None)
    except httpx.HTTPError as e:
        status, job = type(e).__name__, None
    return {"kind": "upload", "status": status, "total_s": time.perf_counter() - t, "job": job}


async def mixed_level(base: str, kb: str, model: str, questions: list[str], clients_n: int, n_requests: int,
                      budget_s: float, upload_every: int, level_tag: str) -> list[dict]:
    """`clients_n` clients share `n_requests` requests; each client's every `upload_every`-th request
    is an upload of a small file (a distinct name each time) into the knowledge base, the others
    streamed questions. Requests still open at `budget_s` are dropped and counted as cut."""
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(n_requests):
        queue.put_nowait(i)
    results: list[dict] = []
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=clients_n + 2)) as c:
        async def client(ci: int):
            sent = 0
            while not queue.empty():
                i = queue.get_nowait()
                sent += 1
                if upload_every and sent % upload_every == 0:
                    src = UPLOAD_SOURCES[i % len(UPLOAD_SOURCES)]
                    results.append(await upload_one(c, base, kb, f"{level_tag}-{i}-{src.name}", src.read_bytes()))
                else:
                    results.append(await stream_question(c, f"{base}/v1/chat/completions", questions[i % len(questions)],
                                                         model))

        tasks = [asyncio.ensure_future(client(ci)) for ci in range(clients_n)]
        await asyncio.wait(tasks, timeout=budget_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    results.append({"kind": "cut", "n": n_requests - len(results)})
    return results


def level_summary(rows: list[dict]) -> dict:
    qs = [r for r in rows if r["kind"] == "question"]
    ups = [r for r in rows if r["kind"] == "upload"]
    ok = [r for r in qs if r["status"] == 200 and r["first_s"] is not None]
    errors: dict = {}
    for r in qs + ups:
        if r["status"] not in (200, 202) or (r["kind"] == "question" and r["first_s"] is None):
            errors[str(r["status"])] = errors.get(str(r["status"]), 0) + 1
    queue = [r["queue_ms"] / 1000 for r in ok if r["queue_ms"] is not None]
    return {"questions": len(qs), "answered": len(ok), "uploads": len(ups),
            "uploads_accepted": sum(r["status"] == 202 for r in ups), "errors": errors,
            "cut": sum(r.get("n", 0) for r in rows if r["kind"] == "cut"),
            "first_token_s": {"p50": pct([r["first_s"] for r in ok], 0.5), "p95": pct([r["first_s"] for r in ok], 0.95)},
            "total_s": {"p50": pct([r["total_s"] for r in ok], 0.5), "p95": pct([r["total_s"] for r in ok], 0.95)},
            "queue_s": {"p50": pct(queue, 0.5), "p95": pct(queue, 0.95)},
            "upload_request_s": {"p50": pct([r["total_s"] for r in ups], 0.5)},
            "load_avg": round(os.getloadavg()[0], 2)}


def mixed_load(args) -> None:
    """Questions and uploads against one `ragkit serve` (an --index for the questions, a knowledge
    base under a fresh --data-dir for the uploads), and the same questions through an in-process
    Pipeline at one client, taking turns with the server question by question."""
    import tempfile

    from ragkit.generate import Decoding, load_generator
    from ragkit.index import Index
    from ragkit.pipeline import Pipeline

    levels = [int(x) for x in args.levels.split(",")]
    gen = load_generator(args.model)
    pipe = Pipeline(Index.open(args.index), gen, k=args.k, decoding=Decoding(max_tokens=args.max_tokens))
    questions = [q for q, _ in pick_questions(pipe, max(args.questions, *levels))]
    data = tempfile.mkdtemp(prefix="ragkit-load-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    model_flag = ["--model", args.model] if args.model else []
    print(f"{len(questions)} questions, k={args.k}, max_tokens={args.max_tokens}, model {gen.model}, "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    proc = start([sys.executable, "-c", "from ragkit.cli import main; main()", "serve", "--index", f"docs={args.index}",
                  "--data-dir", data, *model_flag, "--port", str(port), "--max-tokens", str(args.max_tokens),
                  "-k", str(args.k), "--queue", str(max(levels) + 8), "--log-level", "warning"],
                 f"{base}/healthz", env, timeout=600)
    results: dict = {"config": vars(args) | {"model": gen.model, "cpu": _cpu_name(), "cpus": os.cpu_count()},
                     "pipeline_1": {}, "levels": {}}
    try:
        with httpx.Client(timeout=60) as c:
            c.post(f"{base}/v1/vector_stores", json={"name": "load"}).raise_for_status()
        pipe.answer(questions[0])  # warm-up, both sides
        asyncio.run(mixed_level(base, "load", "ragkit/docs", questions[:1], 1, 1, 600, 0, "warm"))
        # one client, paired: pipeline then serve, question by question (the ratio's basis)
        pl, sv = [], []
        t0 = time.perf_counter()
        for i, q in enumerate(questions[: args.questions]):
            if time.perf_counter() - t0 > args.budget_s:
                break
            first: list[float] = []
            t = time.perf_counter()
            pipe.answer(q, on_token=lambda _p, t=t, first=first: first.append(time.perf_counter() - t) if not first else None)
            pl.append({"first_s": first[0] if first else None, "total_s": time.perf_counter() - t})
            sv.append(asyncio.run(mixed_level(base, "load", "ragkit/docs", [q], 1, 1, args.budget_s, 0, f"p{i}"))[0])
        results["pipeline_1"] = {"n": len(pl),
                                 "first_token_s": {"p50": pct([r["first_s"] for r in pl if r["first_s"]], 0.5)},
                                 "total_s": {"p50": pct([r["total_s"] for r in pl], 0.5)}}
        results["serve_1_paired"] = level_summary(sv)
        ratios = [s["total_s"] / p["total_s"] for s, p in zip(sv, pl) if s["status"] == 200]
        first_ratios = [s["first_s"] / p["first_s"] for s, p in zip(sv, pl) if s.get("first_s") and p["first_s"]]
        results["serve_over_pipeline_1_client"] = {
            "total_median": round(statistics.median(ratios), 3) if ratios else None,
            "first_token_median": round(statistics.median(first_ratios), 3) if first_ratios else None}
        print("pipeline 1:", results["pipeline_1"], "\nserve 1 (paired):", results["serve_1_paired"],
              "\nratio:", results["serve_over_pipeline_1_client"], flush=True)
        for level in levels:
            rows = asyncio.run(mixed_level(base, "load", "ragkit/docs", questions, level,
                                           max(args.questions, 2 * level), args.budget_s, args.upload_every, f"c{level}"))
            results["levels"][str(level)] = level_summary(rows)
            print(f"serve mixed, {level} clients:", results["levels"][str(level)], flush=True)
        deadline = time.monotonic() + args.budget_s
        with httpx.Client(timeout=60) as c:
            while time.monotonic() < deadline:
                files = c.get(f"{base}/v1/vector_stores/load/files").json()["data"]
                if not any(f["status"] == "pending" for f in files):
                    break
                time.sleep(1)
            results["knowledge_base"] = {s: sum(f["status"] == s for f in files) for s in ("indexed", "skipped", "pending")}
            metrics = c.get(f"{base}/metrics").text
        results["ingest_jobs"] = {line.split('"')[1]: int(line.split()[-1]) for line in metrics.splitlines()
                                  if line.startswith("ragkit_ingest_jobs{")}
    finally:
        stop(proc)
        import shutil

        shutil.rmtree(data, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results["note"] = ("2-core machine (load average in each level's load_avg); compare figures within "
                       "this run only")
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: results[k] for k in ("serve_over_pipeline_1_client", "knowledge_base", "ingest_jobs")}))
    for level, r in results["levels"].items():
        print(f"{level} clients: {r['answered']}/{r['questions']} answered, {r['uploads_accepted']}/{r['uploads']} uploads, "
              f"errors {r['errors'] or 0}, cut {r['cut']}, first token p50/p95 {r['first_token_s']['p50']}/"
              f"{r['first_token_s']['p95']} s, total {r['total_s']['p50']}/{r['total_s']['p95']} s, queue "
              f"{r['queue_s']['p50']}/{r['queue_s']['p95']} s")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
