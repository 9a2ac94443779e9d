"""Soak tests (issue 14): readers under a re-ingesting writer, and ingests killed with SIGKILL.

Both are bounded (a fixed number of re-ingests and kills, a 60 s deadline) and use the fake
embedder, so they run in `make test` in seconds. Each prints its figures (run with -s).

Every version of the soak corpus has all its files at one generation, so a search whose hits
carry two generations read a torn or half-written version; a reader's generation may only grow.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import re
import signal
import threading
import time

from ragkit.index import Index, IngestConfig, ingest, versions
from ragkit.index.manifest import read_current

FAKE = IngestConfig(embed_model="fake-embedder")
N_WRITES = 10
N_KILLS = 8
FILES = 6
DEADLINE_S = 60.0
GEN = re.compile(r"generation (\d+)")


def write_corpus(root, gen: int, files: int = FILES) -> None:
    root.mkdir(exist_ok=True)
    for i in range(files):
        words = " ".join(f"w{gen}x{i}x{j}" for j in range(30))
        (root / f"doc{i}.md").write_text(f"# Doc {i}\n\nsoak marker generation {gen} of file {i}. {words}\n",
                                         encoding="utf-8")


def check_hits(hits, last: int) -> int:
    gens = {int(m.group(1)) for h in hits for m in GEN.finditer(h.text)}
    if len(hits) != 3 or len(gens) != 1:
        raise AssertionError(f"incomplete answer: {len(hits)} hits, generations {sorted(gens)}")
    gen = gens.pop()
    if gen < last:
        raise AssertionError(f"went back from generation {last} to {gen}")
    return gen


def reader_loop(index, stop, out: dict, mode: str) -> None:
    """Query until stopped; `index` is an open Index, or a directory to open afresh per query (the CLI)."""
    last, queries, errors = 0, 0, []
    deadline = time.time() + DEADLINE_S
    while not stop() and time.time() < deadline:
        try:
            ix = Index.open(index) if isinstance(index, (str, os.PathLike)) else index
            last = check_hits(ix.search("soak marker generation", k=3, mode=mode), last)
            if ix is not index:
                ix.close()
        except Exception as e:  # every failure is counted, none may happen
            errors.append(f"{type(e).__name__}: {e}")
        queries += 1
    out.update(queries=queries, errors=errors[:5], n_errors=len(errors), last=last)


def reader_process(idx, stop_file, result_file, mode, fresh) -> None:
    out: dict = {}
    reader_loop(idx if fresh else Index.open(idx), lambda: os.path.exists(stop_file), out, mode)
    with open(result_file, "w") as f:
        json.dump(out, f)


def test_readers_never_fail_while_a_writer_reingests(tmp_path, fake_embedder, monkeypatch):
    monkeypatch.setattr(versions, "REAP_GRACE_S", 0.0)  # reap as soon as leases allow: the hard case
    corpus, idx = tmp_path / "corpus", tmp_path / "idx"
    write_corpus(corpus, 0)
    ingest([corpus], idx, FAKE)
    stop_file = tmp_path / "stop"
    ctx = mp.get_context("fork")
    # a long-lived Index in another process, and one that opens the index afresh per query like `ragkit search`
    procs = [ctx.Process(target=reader_process, args=(idx, str(stop_file), str(tmp_path / f"r{i}.json"), mode, fresh))
             for i, (mode, fresh) in enumerate([("hybrid", False), ("hybrid", True)])]
    for p in procs:
        p.start()
    shared = Index.open(idx)  # one long-lived Index used by two threads, as `ragkit serve` will
    stop = threading.Event()
    outs = [{}, {}]
    threads = [threading.Thread(target=reader_loop, args=(shared, stop.is_set, outs[i], mode))
               for i, mode in enumerate(["hybrid", "dense"])]
    for t in threads:
        t.start()
    written = []
    try:
        for gen in range(1, N_WRITES + 1):
            write_corpus(corpus, gen)
            s = ingest([corpus], idx, FAKE)
            written.append(s.version_written)
            time.sleep(0.05)
        assert ingest([corpus], idx, FAKE).version_written is False  # unchanged: nothing new
    finally:
        stop.set()
        stop_file.touch()
        for t in threads:
            t.join(DEADLINE_S)
        for p in procs:
            p.join(DEADLINE_S)
    results = outs + [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(len(procs))]
    queries = sum(r["queries"] for r in results)
    errors = [e for r in results for e in r["errors"]]
    n_errors = sum(r["n_errors"] for r in results)
    print(f"\nconcurrency soak: {len(results)} readers ({len(procs)} processes, {len(threads)} threads on one Index), "
          f"{queries} queries, {n_errors} errors, {sum(written)} versions written, "
          f"{len(list(idx.glob('v-*')))} left on disk")
    assert n_errors == 0, errors
    assert all(written) and len(written) == N_WRITES
    assert all(r["queries"] > 0 for r in results)
    assert check_hits(shared.search("soak marker generation", k=3), 0) == N_WRITES  # the open Index moved on
    assert not ingest([corpus], idx, FAKE).version_written
    assert len(list(idx.glob("v-*"))) == 1  # no reader left on an old version: the next ingest reaped them


def _child_ingest(corpus, idx):
    # A forked child shares the parent's tqdm write lock (a multiprocessing semaphore, which bm25s's
    # progress bars take even when hidden); killed while holding it, it would leave the parent
    # deadlocked at its next ingest. The child gets a lock of its own.
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    ingest([corpus], idx, FAKE)
    os._exit(0)


def test_ingest_killed_at_random_points_never_breaks_the_index(tmp_path, fake_embedder):
    corpus, idx = tmp_path / "corpus", tmp_path / "idx"
    write_corpus(corpus, 0, files=30)
    ingest([corpus], idx, FAKE)
    t0 = time.perf_counter()
    write_corpus(corpus, 1, files=30)
    ingest([corpus], idx, FAKE)
    full = time.perf_counter() - t0
    rng = random.Random(14)
    ctx = mp.get_context("fork")
    landed = {"before swap": 0, "after swap": 0}
    last = 1
    for k in range(2, N_KILLS + 2):
        write_corpus(corpus, k, files=30)
        before = read_current(idx)
        child = ctx.Process(target=_child_ingest, args=(corpus, idx))
        child.start()
        time.sleep(rng.uniform(0.0, 1.3 * full))
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        landed["before swap" if read_current(idx) == before else "after swap"] += 1
        index = Index.open(idx)  # always opens, always answers from one complete version
        gen = check_hits(index.search("soak marker generation", k=3, mode="bm25"), 0)
        assert gen in (last, k)
        last = gen
        index.close()
    s = ingest([corpus], idx, FAKE)  # the dead writers' lock went with them
    final = Index.open(idx)
    assert check_hits(final.search("soak marker generation", k=3, mode="bm25"), 0) == N_KILLS + 1
    assert len(final) == s.chunks and all((v / "manifest.json").is_file() for v in idx.glob("v-*"))
    print(f"\nkill soak: {N_KILLS} SIGKILLs within {1.3 * full:.2f} s of start ({landed['before swap']} before the "
          f"swap, {landed['after swap']} after), index opened every time, next ingest completed")
