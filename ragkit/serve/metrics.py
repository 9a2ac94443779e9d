"""`GET /metrics`: the server's counters in Prometheus' text format (version 0.0.4).

Written by hand (a few counters and two histograms) rather than through prometheus_client, which
is not a dependency. Counters are updated on the event loop thread; the ingest job counts and
the queue depth are read from their owners when scraped.

    ragkit_requests_total{route,status}       requests answered, by route template and HTTP status
    ragkit_queue_depth{model}                 generations running or waiting per model
    ragkit_queue_seconds / _answer_seconds    histograms: time queued, time from submission to the answer
    ragkit_prompt_tokens_total, ragkit_completion_tokens_total
    ragkit_ingest_jobs{state}                 ingest jobs queued, running, succeeded, failed
"""

from __future__ import annotations

import threading
from collections import Counter

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Histogram:
    def __init__(self):
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        i = next((i for i, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))
        self.counts[i] += 1
        self.total += seconds
        self.n += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for b, c in zip(BUCKETS, self.counts):
            running += c
            out.append(f'{name}_bucket{{le="{b}"}} {running}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.n}')
        out += [f"{name}_sum {self.total:.6f}", f"{name}_count {self.n}"]
        return out


class Metrics:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests: Counter = Counter()
        self.queue = Histogram()
        self.answer = Histogram()
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def request(self, route: str, status: int) -> None:
        with self.lock:
            self.requests[(route, status)] += 1

    def answered(self, timings: dict, prompt_tokens: int, completion_tokens: int) -> None:
        with self.lock:
            if timings.get("queue_ms") is not None:
                self.queue.observe(timings["queue_ms"] / 1000)
            if timings.get("total_ms") is not None:
                self.answer.observe((timings["total_ms"] + (timings.get("queue_ms") or 0)) / 1000)
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens

    def render(self, queue_depth: dict[str, int], jobs: dict[str, int]) -> str:
        def esc(v) -> str:
            return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

        with self.lock:
            lines = ["# HELP ragkit_requests_total Requests answered, by route and HTTP status.",
                     "# TYPE ragkit_requests_total counter"]
            lines += [f'ragkit_requests_total{{route="{esc(r)}",status="{s}"}} {n}'
                      for (r, s), n in sorted(self.requests.items())]
            lines += ["# HELP ragkit_queue_depth Generations running or waiting, per model.",
                      "# TYPE ragkit_queue_depth gauge"]
            lines += [f'ragkit_queue_depth{{model="{esc(m)}"}} {n}' for m, n in sorted(queue_depth.items())]
            lines += ["# HELP ragkit_queue_seconds Time a chat request waited for its model, from submission.",
                      "# TYPE ragkit_queue_seconds histogram", *self.queue.lines("ragkit_queue_seconds")]
            lines += ["# HELP ragkit_answer_seconds Time from submission to the whole answer.",
                      "# TYPE ragkit_answer_seconds histogram", *self.answer.lines("ragkit_answer_seconds")]
            lines += ["# HELP ragkit_prompt_tokens_total Prompt tokens evaluated.", "# TYPE ragkit_prompt_tokens_total counter",
                      f"ragkit_prompt_tokens_total {self.prompt_tokens}",
                      "# HELP ragkit_completion_tokens_total Answer tokens generated.",
                      "# TYPE ragkit_completion_tokens_total counter",
                      f"ragkit_completion_tokens_total {self.completion_tokens}"]
        lines += ["# HELP ragkit_ingest_jobs Ingest jobs by state (succeeded and failed since start).",
                  "# TYPE ragkit_ingest_jobs gauge"]
        lines += [f'ragkit_ingest_jobs{{state="{s}"}} {n}' for s, n in jobs.items()]
        return "\n".join(lines) + "\n"
