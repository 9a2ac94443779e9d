"""Answering the bench with each planned arm (arms.py): one Pipeline per (model, adapter, language,
backend), each item's row keyed and appended to items.jsonl at once, rows of an earlier run reused
when their key matches, and an optional judge pass.

Resuming: every finished item is appended to OUT/items.jsonl with a key hashing what decided its
output (arm, model, adapter, decoding, k, mode, index version, question). A re-run reuses rows
whose key matches and recomputes their scores from the stored output, so metric fixes apply
without generating again. An item's context is part of its key.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..errors import ContextOverflow
from ..generate.citations import strip_citations
from ..hashing import settings_hash
from ..pipeline import AnswerSettings, Pipeline
from ..raft import final_answer
from ..types import BenchItem, Hit
from . import metrics
from .arms import ARMS
from .config import EvalConfig
from .judge import Judge, parse_judge_spec
from .passages import context_hits, gold_chunks, index_search, oracle_passages


def fingerprint(path: str | None) -> str | None:
    """Size and mtime of a file or a directory's files: a retrained adapter gets a new key."""
    if not path:
        return None
    p = Path(path)
    if p.is_file():
        st = p.stat()
        return f"{st.st_size}:{int(st.st_mtime)}"
    if p.is_dir():
        parts = sorted(f"{f.relative_to(p)}:{f.stat().st_size}:{int(f.stat().st_mtime)}" for f in p.rglob("*") if f.is_file())
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return None


def item_key(arm: str, item: BenchItem, model_spec: dict, settings: dict) -> str:
    extra = {"context": item.context} if item.context else {}  # items without one keep their old keys
    return settings_hash({"arm": arm, "q": item.question, "model": model_spec, **settings, **extra}, 20)


def read_items(path: Path) -> dict[tuple[str, str, str], dict]:
    """Finished rows of an earlier run, by (arm, item id, key). A torn last line is ignored."""
    rows: dict[tuple[str, str, str], dict] = {}
    if not path.is_file():
        return rows
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                r = json.loads(line)
                rows[(r["arm"], r["id"], r["key"])] = r
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return rows


def score_row(row: dict, item: BenchItem) -> dict:
    """(Re)compute a row's scores from its stored output: its answer part, for a reply that quotes
    its evidence first (a RAFT adapter's, ragkit/raft.py)."""
    text = strip_citations(final_answer(row.get("output") or ""))
    row["scores"] = metrics.score_answer(text, item.answers, refused=bool(row.get("refused")))
    row["answers"] = list(item.answers)
    row["category"], row["difficulty"] = item.category, item.difficulty
    return row


def answer_row(arm: str, item: BenchItem, lang: str, key: str, pipe, closed_book: bool,
               passages: list[Hit] | None = None) -> dict:
    t0 = time.perf_counter()
    error = None
    try:
        ans = pipe.answer(item.question, closed_book=closed_book, passages=passages)
    except ContextOverflow as e:
        # One over-long item must not end a long run: recorded as an empty, wrong answer.
        ans, error = None, str(e)
    latency = round((time.perf_counter() - t0) * 1000, 2)
    row = {"arm": arm, "id": item.id, "key": key, "lang": lang, "question": item.question}
    if ans is None:
        row.update(output="", refused=False, prompt="", sources=[], model=getattr(pipe.generator, "model", "?"),
                   prompt_tokens=0, completion_tokens=0, latency_ms=latency, decode_tps=None, error=error)
        return row
    row.update(
        model=ans.model,
        prompt=ans.prompt,
        sources=[{"rank": h.rank, "source": h.source, "chunk_id": h.chunk_id, "score": round(h.score, 4)}
                 for h in ans.hits],
        output=ans.answer,
        refused=bool(ans.refused),
        prompt_tokens=ans.prompt_tokens,
        completion_tokens=ans.completion_tokens,
        latency_ms=latency,
        decode_tps=(ans.timings or {}).get("tokens_per_s"),
        error=None,
    )
    if ans.reasoning is not None:
        row["reasoning"] = ans.reasoning  # the facts, expression and value (reason on/auto), for reading failures
    return row


def index_version(index) -> str | None:
    vd = getattr(index, "version_dir", None)
    return Path(vd).name if vd is not None else None


def oracle_chooser(index, items: list[BenchItem], mode: str) -> Callable[[BenchItem, int], list[Hit]]:
    """The oracle arm's passages for an item, at most `cap` of them (ragkit.eval.passages)."""
    gold, search = gold_chunks(index, items), index_search(index, mode)
    return lambda item, cap: oracle_passages(item, gold, search, cap)


def given_passages(arm: str, item: BenchItem, pipe, k: int, oracle) -> list[Hit] | None:
    """What an arm reads instead of retrieving: the item's own context (every arm), else the
    oracle's gold chunks (as many as the rag arm shows: min(k, the pipeline's passages)); None:
    the arm's usual way (retrieval or closed-book). Without `oracle`, the oracle arm reads context
    or nothing (closed-book)."""
    if item.context:
        return context_hits(item.context)
    if ARMS[arm].passages == "gold" and oracle is not None:
        return oracle(item, min(k, pipe.passages)) or None
    return None


def prompt_signature(arm: str, pipe_key: tuple, item: BenchItem, passages: list[Hit] | None) -> tuple | None:
    """What decides an answer besides the generator, when no retrieval does: two arms on one
    generator (pipe_key) with one signature send the same prompt, so greedy decoding gives the same
    answer and the second arm takes the first's row (marked `same_as`). On a general bench, where
    every arm reads an item's own context, this halves the work (rag = closed_book, sft_rag = sft
    there; the oracle arm is closed_book on items without gold chunks). None: retrieval decides."""
    if passages:
        return (pipe_key, item.id, "given", tuple(h.text for h in passages))
    if not ARMS[arm].retrieves:
        return (pipe_key, item.id, "closed")
    return None


def answer_arms(config: EvalConfig, plan, items, langs, index, load_generator, progress, items_path: Path,
                oracle=None):
    """Answer every planned (arm, item), reusing rows of an earlier run whose key matches and, in
    this run, rows of another arm that sent the same prompt (prompt_signature); each new
    row is appended to `items_path` at once. `oracle` chooses the oracle arm's passages
    (oracle_chooser). Returns ({arm: scored rows}, rows reused)."""
    done = read_items(items_path)
    decoding = config.decoding()
    settings = {"decoding": asdict(decoding), "base_url": config.base_url, "n_ctx": config.n_ctx,
                "passages": config.passages, "examples": config.examples, "context_tokens": config.context_tokens,
                "reason": config.reason}
    oracle_settings = {"k": config.k, "mode": config.mode, "index": index_version(index)}
    arm_settings = {a.name: {**oracle_settings, "min_score": config.min_score} if a.retrieves else oracle_settings
                    for a in ARMS.values() if a.reads_index}
    pipes: dict[tuple, Pipeline] = {}
    answered: dict[tuple, dict] = {}  # prompt_signature -> the row that answered it in this call
    rows_by_arm: dict[str, list[dict]] = {}
    reused = 0
    with items_path.open("a", encoding="utf-8") as sink:
        for n_arm, arm in enumerate(plan, 1):
            arm_items = [it for it in items if langs[it.id] in plan[arm]]
            progress.stage(f"{arm} ({n_arm}/{len(plan)})", len(arm_items))
            rows = []
            for item in arm_items:
                lang = langs[item.id]
                model, adapter, backend = plan[arm][lang]
                spec = {"model": model, "adapter": adapter, "adapter_fp": fingerprint(adapter), "lang": lang,
                        "backend": backend}
                key = item_key(arm, item, spec, {**settings, **arm_settings.get(arm, {})})
                row = done.get((arm, item.id, key))
                if row is not None:
                    reused += 1
                else:
                    pk = (model, adapter, lang, backend)
                    if pk not in pipes:
                        gen = load_generator(model, backend, adapter=adapter, base_url=config.base_url,
                                             lang=lang, n_ctx=config.n_ctx)
                        pipes[pk] = Pipeline(index, gen, settings=AnswerSettings.check(
                            {f: getattr(config, f) for f in AnswerSettings.model_fields}), decoding=decoding)
                    passages = given_passages(arm, item, pipes[pk], config.k, oracle)
                    same = prompt_signature(arm, pk, item, passages) if decoding.temperature == 0 else None
                    if same is not None and same in answered:
                        row = {**answered[same], "arm": arm, "key": key, "same_as": answered[same]["arm"]}
                    else:
                        row = answer_row(arm, item, lang, key, pipes[pk], closed_book=not ARMS[arm].retrieves,
                                         passages=passages)
                        if same is not None:
                            answered[same] = row
                    sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                    sink.flush()
                rows.append(score_row(row, item))
                progress.advance()
            progress.done()
            rows_by_arm[arm] = rows
    return rows_by_arm, reused


def judge_rows(config: EvalConfig, rows_by_arm, items, load_generator, progress, items_path: Path) -> None:
    """Grade every row not yet graded by this judge; unparseable replies are kept as such.

    Each graded row is appended to items.jsonl at once (a later line wins when it is read back), so
    an interrupted judging pass keeps the verdicts it has."""
    backend, model = parse_judge_spec(config.judge)
    judge = Judge(load_generator(model, backend, base_url=config.base_url if backend == "openai" else None,
                                 n_ctx=config.n_ctx))
    by_id = {it.id: it for it in items}
    todo = [r for rs in rows_by_arm.values() for r in rs
            if not (r.get("judge") and r["judge"].get("model") == config.judge)]
    progress.stage("judge", len(todo))

    with items_path.open("a", encoding="utf-8") as sink:
        for r in todo:
            item = by_id[r["id"]]
            v = judge.grade(item.question, item.answers, strip_citations(r.get("output") or ""))
            r["judge"] = {"model": config.judge, **v.to_dict()}
            sink.write(json.dumps(r, ensure_ascii=False) + "\n")
            sink.flush()
            progress.advance()
    progress.done()


def write_items(path: Path, rows: list[dict]) -> None:
    """Rewrite items.jsonl with this run's rows only, in arm and bench order (atomic)."""
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    os.replace(tmp, path)
