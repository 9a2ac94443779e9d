"""`ragkit eval`: run the bench through each arm, score every answer, write items.jsonl and the report.

Arms differ in the knowledge source only; the bench, prompts, decoding and k are shared:

    closed_book  base model, no retrieval        sft      tuned model, no retrieval
    rag          base model + retrieval          sft_rag  tuned model + retrieval
    oracle       base model given the gold source's chunks (ragkit.eval.passages): rag's ceiling

An item with its own `context` is answered from it by every arm, without retrieval. With a general
bench (`general_bench`), every arm also answers it: retention and forgetting (ragkit.eval.retention).

Each item's question decides its language, and the language picks the model (`models`, default
models.default_llm: Qwen2.5-Coder-1.5B where installed, else the language's tiny model). The
tuned model of a language is `tuned_models[lang]` (a merged model) or the base model with `adapters[lang]`; "*"
stands for every language. A sft arm runs on the items whose language has a tuned model; with
none it is skipped with a note.

Resuming: every finished item is appended to OUT/items.jsonl with a key hashing what decided its
output (arm, model, adapter, decoding, k, mode, index version, question). A re-run reuses rows
whose key matches and recomputes their scores from the stored output, so metric fixes apply
without generating again. An item's context is part of its key.

    from ragkit.eval.runner import EvalConfig, run_eval
    report = run_eval(EvalConfig(bench="data/bench/sample.jsonl", index=".ragkit/demo-index", out="out"))
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..errors import ContextOverflow, UsageError
from ..hashing import settings_hash
from ..progress import NullProgress, Progress
from ..types import BenchItem, Hit
from . import metrics
from .config import (
    ARM_RECIPE,
    RETRIEVAL_ARMS,
    TUNED_ARMS,
    EvalConfig,
    config_dict,
    resolve_adapter,
    select_items,
)


def _fingerprint(path: str | None) -> str | None:
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
    """(Re)compute a row's scores from its stored output."""
    from ..generate.citations import strip_citations
    from ..sft.raft import final_answer

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
    return row


def _index_version(index) -> str | None:
    vd = getattr(index, "version_dir", None)
    return Path(vd).name if vd is not None else None


def run_retrieval(items: list[BenchItem], index, config: EvalConfig, progress) -> tuple[dict, list[dict]]:
    from .report import retrieval_breakdown
    from .retrieval import evaluate_retrieval

    progress.stage("retrieval", len(items))
    agg, rows = evaluate_retrieval(
        items, lambda q: index.search(q, k=10, mode=config.mode),
        answer_in=lambda answers, ctx: bool(metrics.contains_answer(ctx, answers)),
        context_k=config.k, on_item=progress.advance,
    )
    progress.done()
    for item, r in zip(items, rows):
        gold = set(item.sources)
        r["first_relevant"] = next((i for i, s in enumerate(r["retrieved"], 1) if s in gold), None)
    agg.update(retrieval_breakdown(rows))
    return agg, rows


def run_eval(
    config: EvalConfig,
    *,
    load_generator: Callable | None = None,
    index=None,
    progress: Progress | None = None,
    retrieval_only: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the eval described by `config`; write OUT/{items.jsonl, report.json, report.md, *.png}.

    `load_generator` (default ragkit.generate.load_generator) and `index` may be injected (tests).
    """
    from .bench import load_bench
    from .charts import write_charts
    from .report import build_report, write_report

    progress = progress or NullProgress()
    log = log or (lambda msg: None)
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; eval writes a folder of results there: choose a new or existing folder")
    out.mkdir(parents=True, exist_ok=True)
    all_items = load_bench(config.bench)
    items = select_items(all_items, config.limit)
    arms = [] if retrieval_only else list(config.arms)
    if index is None and config.index:
        from ..index.store import Index

        index = Index.open(config.index)
    if load_generator is None:
        from ..generate import load_generator
    from ..lang import detect_language

    retrieval, ret_rows = ({}, [])
    searched = [it for it in items if not it.context]  # items with their own passages retrieve nothing
    if index is not None and searched:
        retrieval, ret_rows = run_retrieval(searched, index, config, progress)
        with (out / "retrieval_items.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in ret_rows)

    langs = {it.id: detect_language(it.question) for it in items}
    plan, skipped, notes = plan_arms(config, arms, langs)
    items_path = out / "items.jsonl"
    oracle = oracle_chooser(index, items, config.mode) if "oracle" in plan and index is not None else None
    rows_by_arm, reused = answer_arms(config, plan, items, langs, index, load_generator, progress, items_path, oracle)
    if reused:
        log(f"Reused {reused} finished item(s) from {items_path}")
    if n_blind := sum(1 for r in rows_by_arm.get("oracle", []) if not r.get("sources")):
        notes.append(f"oracle: {n_blind} item(s) have no chunk of their gold sources in the index and were "
                     "answered closed-book")

    if config.judge and rows_by_arm:
        judge_rows(config, rows_by_arm, items, load_generator, progress, items_path)
    errors = {a: sum(1 for r in rs if r.get("error")) for a, rs in rows_by_arm.items()}
    for a, n in errors.items():
        if n:
            notes.append(f"{a}: {n} item(s) failed (prompt too long) and count as wrong; see items.jsonl")

    write_items(items_path, [r for rs in rows_by_arm.values() for r in rs])
    cfg = config_dict(config, len(items), len(all_items))
    cfg["index_version"] = _index_version(index)
    cfg["tuned_arms"] = tuned_arms(plan)
    report = build_report(retrieval, rows_by_arm, cfg, skipped, notes, n_boot=config.n_boot, seed=config.seed)
    if config.general_bench and rows_by_arm:
        from .retention import retention_report, run_retention

        general_rows = run_retention(config, list(rows_by_arm), index, load_generator, progress, out, log,
                                     report["notes"])
        report.update(retention_report(general_rows, n_boot=config.n_boot, seed=config.seed))
    charts = write_charts(report, out)
    write_report(out, report, charts)
    return report


def plan_arms(config: EvalConfig, arms: list[str], langs: dict[str, str]):
    """Which (model, adapter, backend) answers each arm in each language; arms with no model are
    skipped, and partial or mixed-backend plans get a note for the report."""
    skipped: dict[str, str] = {}
    notes: list[str] = []
    plan: dict[str, dict[str, tuple]] = {}  # arm -> lang -> (model, adapter, backend)
    for arm in arms:
        specs = {}
        for lang in sorted(set(langs.values())):
            if arm not in TUNED_ARMS:
                specs[lang] = (config.base_model(lang), None, config.backend)
            elif (tuned := config.tuned_model(lang, arm)) is not None:
                model, adapter = tuned
                specs[lang] = resolve_adapter(model, adapter, config.backend) if adapter else (model, None, config.backend)
        if not specs:
            how = "--raft-adapter DIR" if ARM_RECIPE.get(arm) == "raft" else "--adapter DIR (or --tuned-model)"
            skipped[arm] = f"no tuned model: pass {how} to run it" if arm in TUNED_ARMS else "no model"
            continue
        missing = sorted(set(langs.values()) - set(specs))
        if missing:
            n = sum(1 for lang in langs.values() if lang in specs)
            notes.append(f"{arm} ran on the {n} items in {', '.join(sorted(specs))} only; no tuned model "
                         f"for {', '.join(missing)}")
        plan[arm] = specs
    backends = {arm: {_backend_name(config, lang, s) for lang, s in specs.items()} for arm, specs in plan.items()}
    if len(set().union(*backends.values()) if backends else set()) > 1:
        notes.append("arms ran on different backends (" + "; ".join(
            f"{a}: {', '.join(sorted(bs))}" for a, bs in backends.items())
            + "): PEFT adapters run on hf in full precision while the base GGUF runs quantised on llama.cpp; "
            "for a like-for-like comparison use --backend hf for every arm or export the adapter to GGUF")
    return plan, skipped, notes


def tuned_arms(plan: dict) -> dict:
    """{tuned arm: {recipe, adapters: {lang: adapter or merged model}}}: what report.md shows."""
    return {arm: {"recipe": ARM_RECIPE[arm], "adapters": {lang: adapter or model for lang, (model, adapter, _) in
                                                         specs.items()}}
            for arm, specs in plan.items() if arm in ARM_RECIPE}


def oracle_chooser(index, items: list[BenchItem], mode: str) -> Callable[[BenchItem, int], list[Hit]]:
    """The oracle arm's passages for an item, at most `cap` of them (ragkit.eval.passages)."""
    from .passages import gold_chunks, index_search, oracle_passages

    gold, search = gold_chunks(index, items), index_search(index, mode)
    return lambda item, cap: oracle_passages(item, gold, search, cap)


def given_passages(arm: str, item: BenchItem, pipe, k: int, oracle) -> list[Hit] | None:
    """What an arm reads instead of retrieving: the item's own context (every arm), else the
    oracle's gold chunks (as many as the rag arm shows: min(k, the pipeline's passages)); None:
    the arm's usual way (retrieval or closed-book). Without `oracle`, the oracle arm reads context
    or nothing (closed-book)."""
    from .passages import context_hits

    if item.context:
        return context_hits(item.context)
    if arm == "oracle" and oracle is not None:
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
    if arm not in RETRIEVAL_ARMS:
        return (pipe_key, item.id, "closed")
    return None


def answer_arms(config: EvalConfig, plan, items, langs, index, load_generator, progress, items_path: Path,
                oracle=None):
    """Answer every planned (arm, item), reusing rows of an earlier run whose key matches and, in
    this run, rows of another arm that sent the same prompt (prompt_signature); each new
    row is appended to `items_path` at once. `oracle` chooses the oracle arm's passages
    (oracle_chooser). Returns ({arm: scored rows}, rows reused)."""
    from ..pipeline import Pipeline

    done = read_items(items_path)
    decoding = config.decoding()
    settings = {"decoding": asdict(decoding), "base_url": config.base_url, "n_ctx": config.n_ctx}
    oracle_settings = {"k": config.k, "mode": config.mode, "index": _index_version(index)}
    arm_settings = {"oracle": oracle_settings, **{a: {**oracle_settings, "min_score": config.min_score}
                                                  for a in RETRIEVAL_ARMS}}
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
                spec = {"model": model, "adapter": adapter, "adapter_fp": _fingerprint(adapter), "lang": lang,
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
                        pipes[pk] = Pipeline(index, gen, k=config.k, mode=config.mode, decoding=decoding,
                                             min_score=config.min_score)
                    passages = given_passages(arm, item, pipes[pk], config.k, oracle)
                    same = prompt_signature(arm, pk, item, passages) if decoding.temperature == 0 else None
                    if same is not None and same in answered:
                        row = {**answered[same], "arm": arm, "key": key, "same_as": answered[same]["arm"]}
                    else:
                        row = answer_row(arm, item, lang, key, pipes[pk], closed_book=arm not in RETRIEVAL_ARMS,
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


def _backend_name(config: EvalConfig, lang: str, spec: tuple) -> str:
    """The backend an arm's generator runs on; "default" when the model cannot be resolved here."""
    from ..errors import RagkitError
    from ..generate import resolved_backend

    model, _adapter, backend = spec
    try:
        return resolved_backend(model, backend, base_url=config.base_url, lang=lang)
    except RagkitError:
        return backend or "default"


def judge_rows(config: EvalConfig, rows_by_arm, items, load_generator, progress, items_path: Path) -> None:
    """Grade every row not yet graded by this judge; unparseable replies are kept as such.

    Each graded row is appended to items.jsonl at once (a later line wins when it is read back), so
    an interrupted judging pass keeps the verdicts it has."""
    from .judge import Judge, parse_judge_spec

    backend, model = parse_judge_spec(config.judge)
    judge = Judge(load_generator(model, backend, base_url=config.base_url if backend == "openai" else None,
                                 n_ctx=config.n_ctx))
    by_id = {it.id: it for it in items}
    todo = [r for rs in rows_by_arm.values() for r in rs
            if not (r.get("judge") and r["judge"].get("model") == config.judge)]
    progress.stage("judge", len(todo))
    from ..generate.citations import strip_citations

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


