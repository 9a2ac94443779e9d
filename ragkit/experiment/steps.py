"""`ragkit run`: carry out an experiment (ragkit.experiment.config.ExperimentConfig) step by step in a run directory.

    ingest → bench_draft (when the bench is drafted from the corpus) → sft_data → train (one LoRA
    adapter per language) → [raft_data → raft_train, with `raft:`] → eval → report

Layout of runs/<name>-<timestamp>/:

    config.yaml      the resolved experiment (file + --set overrides, absolute paths, every default)
    state.json       finished steps with the hash of their inputs
    index/           the ingested corpus           sft/       SFT data (all, and per language)
    adapters/<lang>/ LoRA adapters                 eval/      items.jsonl, report.{json,md}, charts
    raft/            RAFT data (with `raft:`)      adapters-raft/<lang>/  the raft_rag arm's adapters

A step whose inputs hash the same as when it last finished is skipped; an interrupted step starts
again (train resumes from its checkpoints, eval reuses finished items). In a sweep's cell,
index/, sft/ and adapters/ are links into the sweep's shared step cache (ragkit.experiment.sweep).

    from ragkit.experiment import load_experiment, run_experiment
    run_experiment(load_experiment("pipelines/sample-quick.yaml"))
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from ..benchset.draft import draft_bench
from ..errors import RagkitError, UsageError
from ..eval.report import load_report, render_markdown
from ..eval.runner import run_eval
from ..hashing import settings_hash
from ..index import ingest
from ..lang import detect_language
from ..progress import NullProgress, Progress
from ..raft import RAFT_KEY, prompt_settings
from ..sftdata import qa
from ..train import export
from ..train import train as training
from ..train.data import detect_format, read_records, record_pairs
from .config import ExperimentConfig

STEPS = ("ingest", "bench_draft", "sft_data", "train", "raft_data", "raft_train", "eval", "report")


def _files_fingerprint(paths: list[str]) -> list[tuple[str, int, int]]:
    """(path, size, mtime in ns) of every file under `paths`: a changed corpus or bench means a new hash."""
    out = []
    for p in map(Path, paths):
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        out += [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return out


class RunState:
    """state.json of a run directory: which steps finished, with which input hash."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "state.json"
        self.data = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {"steps": {}}

    def up_to_date(self, step: str, h: str) -> bool:
        s = self.data["steps"].get(step)
        return bool(s and s.get("status") == "done" and s.get("hash") == h)

    def mark(self, step: str, h: str, seconds: float, **info) -> None:
        self.data["steps"][step] = {"status": "done", "hash": h, "seconds": round(seconds, 1), **info}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(self.path)


def choose_run_dir(cfg: ExperimentConfig, runs_dir: str | Path, how: str = "auto") -> tuple[Path, bool]:
    """(run directory, whether it continues an earlier run).

    how: "new" always starts runs/<name>-<timestamp>; "resume" continues the latest run of this
    name; "auto" continues it only when its resolved config equals this one (a changed --set
    starts a new run, so the two can be compared with `ragkit report`).
    """
    import re
    import time

    import yaml

    if how not in ("auto", "resume", "new"):
        raise ValueError("how must be auto, resume or new")
    runs = Path(runs_dir)
    pat = re.compile(rf"{re.escape(cfg.name)}-\d{{8}}-\d{{6}}(-\d+)?")
    existing = sorted((d for d in runs.glob(f"{cfg.name}-*") if d.is_dir() and pat.fullmatch(d.name)
                       and (d / "config.yaml").is_file()), key=lambda d: d.name)
    latest = existing[-1] if existing else None
    if latest is not None and how != "new":
        same = yaml.safe_load((latest / "config.yaml").read_text(encoding="utf-8")) == cfg.to_dict()
        if how == "resume" or same:
            return latest, True
    if how == "resume":
        raise UsageError(f"no earlier run of '{cfg.name}' under {runs}; run without --resume to start one")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    d, n = runs / f"{cfg.name}-{stamp}", 1
    while d.exists():
        n += 1
        d = runs / f"{cfg.name}-{stamp}-{n}"
    return d, False


def split_by_language(data: Path, out_dir: Path, langs: list[str]) -> dict[str, Path]:
    """One SFT file per language (records keep their format; a record's language is its first
    question's), so each language's adapter trains on its own base model."""

    files = {lang: out_dir / f"{data.stem}-{lang}.jsonl" for lang in langs}
    sinks = {lang: [] for lang in langs}
    for _, rec in read_records(data):
        fmt = detect_format(rec)
        pairs = record_pairs(rec, fmt) if fmt else []
        lang = detect_language(pairs[0][0]) if pairs else None
        if isinstance(rec, dict) and isinstance(rec.get(RAFT_KEY), dict):  # its question's, not its passages'
            lang = rec[RAFT_KEY].get("lang")
        if lang in sinks:
            sinks[lang].append(json.dumps(rec, ensure_ascii=False) + "\n")
    for lang, lines in sinks.items():
        if lines:
            files[lang].write_text("".join(lines), encoding="utf-8")
    return {lang: files[lang] for lang in langs if sinks[lang]}


def merge_bench(paths: list[str], out: Path) -> Path:
    """The bench as one file: the given file itself, or several files joined (ids must stay unique)."""
    if len(paths) == 1:
        return Path(paths[0])
    text = "".join(Path(p).read_text(encoding="utf-8-sig").rstrip("\n") + "\n" for p in paths)
    out.write_text(text, encoding="utf-8")
    return out


def step_ingest(cfg: ExperimentConfig, run_dir: Path, progress) -> dict:
    s = ingest(cfg.corpus, run_dir / "index", cfg.index.ingest_config(), progress=progress)
    if s.skipped:
        raise RagkitError(f"ingest skipped {len(s.skipped)} file(s) ({s.skipped[0][0]}: {s.skipped[0][1]}); "
                          "fix or remove them so every arm sees the whole corpus")
    return {"chunks": s.chunks, "files": s.files_seen}


def step_bench_draft(cfg: ExperimentConfig, run_dir: Path, log, progress) -> dict:

    out = run_dir / "bench.jsonl"
    s = draft_bench(run_dir / "index", out, cfg.bench_draft.options, progress=progress)
    for note in s.notes:
        log(f"bench_draft: {note}")
    log(f"bench_draft: {s.items} items in {out}, none reviewed yet: read them with `ragkit bench review {out}` "
        "and run again to evaluate on the accepted ones")
    return {"file": str(out), "items": s.items, "by_cell": s.by_cell, "by_lang": s.by_lang}


def step_sft_data(cfg: ExperimentConfig, run_dir: Path, bench: Path, progress, raft: bool = False) -> dict:
    """sft/qa.jsonl, or with `raft` raft/raft.jsonl: the same QA pairs as RAFT examples, their
    prompts shaped by the eval section's answer settings."""
    s = cfg.sft_data
    out = run_dir / "raft" / "raft.jsonl" if raft else run_dir / "sft" / "qa.jsonl"
    summary = qa.build_sft_data(run_dir / "index", out, cfg.raft_data_config() if raft else s.data_config(),
                                fmt=s.format, mix=s.mix, mix_ratio=s.mix_ratio,
                                exclude_bench=bench if s.exclude_bench else None, progress=progress,
                                answer_settings=cfg.answer_settings())
    return {"file": str(out), "rows": summary.rows, "kept_by_lang": summary.kept_by_lang,
            **({"raft": summary.raft} if raft else {})}


def step_train(cfg: ExperimentConfig, run_dir: Path, log, progress, raft: bool = False) -> dict:
    """One adapter per language on sft/qa.jsonl in adapters/, or with `raft` on raft/raft.jsonl in
    adapters-raft/ (train.options with raft.train over them)."""
    data = run_dir / "raft" / "raft.jsonl" if raft else run_dir / "sft" / "qa.jsonl"
    folder = run_dir / ("adapters-raft" if raft else "adapters")
    per_lang = split_by_language(data, data.parent, cfg.train.languages)
    adapters = {}
    for lang in cfg.train.languages:
        if lang not in per_lang:
            log(f"train: no {lang} examples in {data.name}; the {'raft_rag arm skips' if raft else 'sft arms skip'} "
                f"{lang} items")
            continue
        out = folder / lang
        if raft:
            tc = training.TrainConfig(**cfg.raft_train_options().model_dump(), data=str(per_lang[lang]),
                                      base=cfg.base_model(lang), out=str(out))
        else:
            tc = cfg.train.train_config(str(per_lang[lang]), cfg.base_model(lang), str(out))
        if not (out / "train_summary.json").is_file():  # else finished in an interrupted earlier attempt
            tc.resume = out.is_dir() and (out / "checkpoints").is_dir()
            log(f"{'raft_' if raft else ''}train: {lang} adapter on {tc.base} "
                f"({'resuming' if tc.resume else 'starting'})")
            training.train(tc, progress=progress)
        adapters[lang] = str(out)
        if cfg.train.export_gguf:
            gguf_file = folder / f"{lang}.gguf"
            if not gguf_file.is_file():
                partial = gguf_file.with_name(f"{lang}.partial.gguf")  # never leave a torn adapter behind
                export.export_gguf_adapter(out, partial)
                partial.replace(gguf_file)
            adapters[lang] = str(gguf_file)
    return {"adapters": adapters}


class StepRunner:
    """Runs one named step of a run unless it is up to date (or, in a sweep, in the shared cache),
    and records its status: "up to date", "cached" or "done"."""

    def __init__(self, state: RunState, run_dir: Path, cache, log: Callable[[str], None]):
        self.state, self.run_dir, self.cache, self.log = state, run_dir, cache, log
        self.status: dict[str, str] = {}

    def __call__(self, name: str, h: str, fn: Callable[[], dict], clear: Path | None = None) -> dict:
        import shutil

        state, cache, run_dir, log = self.state, self.cache, self.run_dir, self.log
        shared = cache is not None and cache.shares(name)
        if state.up_to_date(name, h) and (not shared or cache.linked(name, h, run_dir)):
            self.status[name] = "up to date"
            log(f"[{name}] up to date")
            return state.data["steps"][name]
        prev = state.data["steps"].get(name)
        # shared: run_dir/<output> links to the cache directory of this hash (a partial one resumes)
        if shared and (entry := cache.reuse(name, h, run_dir, state)) is not None:
            self.status[name] = "cached"
            log(f"[{name}] from the shared cache ({cache.step_dir(name, h).name})")
            return entry
        if not shared and clear is not None and prev and prev.get("hash") != h and clear.exists():
            shutil.rmtree(clear)  # settings changed: outputs of the old settings must not be resumed
        log(f"[{name}] running")
        t0 = time.perf_counter()
        info = fn()
        state.mark(name, h, time.perf_counter() - t0, **info)
        if shared:
            cache.finish(name, h, run_dir, state.data["steps"][name])
        self.status[name] = "done"
        return state.data["steps"][name]


def run_experiment(
    cfg: ExperimentConfig,
    runs_dir: str | Path = "runs",
    *,
    how: str = "auto",
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    run_dir: Path | None = None,
    cache=None,
) -> dict:
    """Run every step not up to date; return {run_dir, steps: {step: "done" | "up to date" | "cached" | "off"}, report}.

    `run_dir` fixes the run directory (a sweep cell's); `cache` (ragkit.experiment.sweep.StepCache)
    keeps the outputs of ingest, sft_data and train in a directory per input hash that every cell
    with that hash links to, so cells share the steps they have in common."""
    import yaml

    log = log or (lambda m: None)
    progress = progress or NullProgress()
    if run_dir is None:
        run_dir, resumed = choose_run_dir(cfg, runs_dir, how)
    else:
        run_dir, resumed = Path(run_dir), (Path(run_dir) / "state.json").is_file()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), allow_unicode=True, sort_keys=False),
                                         encoding="utf-8")
    log(f"{'Continuing' if resumed else 'Starting'} run {run_dir}")
    state = RunState(run_dir)
    step = StepRunner(state, run_dir, cache, log)
    status = step.status

    h_ingest = settings_hash([cfg.index.model_dump(mode="json"), _files_fingerprint(cfg.corpus)])
    step("ingest", h_ingest, lambda: step_ingest(cfg, run_dir, progress))

    if cfg.bench_draft.enabled:
        h_draft = settings_hash([h_ingest, cfg.bench_draft.model_dump(mode="json")])
        step("bench_draft", h_draft, lambda: step_bench_draft(cfg, run_dir, log, progress))
        bench = run_dir / "bench.jsonl"  # reviewed in place: a review changes h_bench, not h_draft
    else:
        bench = merge_bench(cfg.bench, run_dir / "bench.jsonl")
    h_bench = settings_hash(_files_fingerprint([str(bench)]))
    adapters: dict[str, str] = {}
    h_train = None
    if cfg.sft_data.enabled:
        h_sft = settings_hash([h_ingest, cfg.to_dict()["sft_data"], h_bench if cfg.sft_data.exclude_bench else None,
                             _files_fingerprint([cfg.sft_data.mix]) if cfg.sft_data.mix else None])
        step("sft_data", h_sft, lambda: step_sft_data(cfg, run_dir, bench, progress))
        if cfg.train.enabled:
            h_train = settings_hash([h_sft, cfg.train.model_dump(mode="json"), {lang: cfg.base_model(lang) for lang in cfg.train.languages}])
            adapters = step("train", h_train, lambda: step_train(cfg, run_dir, log, progress),
                            clear=run_dir / "adapters")["adapters"]
    status.setdefault("sft_data", "off")
    status.setdefault("train", "off")
    raft_adapters: dict[str, str] = {}
    if cfg.raft.enabled and h_train is not None:
        h_raft_data = settings_hash([h_sft, cfg.raft_data_config().model_dump(mode="json"),
                                     prompt_settings(cfg.answer_settings())])
        step("raft_data", h_raft_data, lambda: step_sft_data(cfg, run_dir, bench, progress, raft=True))
        h_raft = settings_hash([h_raft_data, h_train, cfg.raft.train])
        raft_adapters = step("raft_train", h_raft, lambda: step_train(cfg, run_dir, log, progress, raft=True),
                             clear=run_dir / "adapters-raft")["adapters"]
        h_train = settings_hash([h_train, h_raft])

    ecfg = cfg.eval_config(str(bench), str(run_dir / "eval"), str(run_dir / "index"), adapters, raft_adapters)
    # h_train: a retrained adapter can land at the same path with the same size in the same second.
    # Without a general bench the hash is what it was before that setting existed (runs stay up to date).
    general = cfg.eval.general_bench
    h_eval = settings_hash([h_ingest, cfg.eval.model_dump(mode="json", exclude=None if general else {"general_bench"}),
                            adapters, [_files_fingerprint([a]) for a in adapters.values()], h_bench, h_train]
                           + ([raft_adapters, [_files_fingerprint([a]) for a in raft_adapters.values()]]
                              if raft_adapters else [])
                           + ([_files_fingerprint([general])] if general else []))
    step("eval", h_eval, lambda: {"items": run_eval(ecfg, progress=progress, log=log)["config"]["n_items"]})

    report = load_report(run_dir / "eval")
    charts = [f"eval/{c}" for c in ("accuracy.png", "recall.png", "retention.png") if (run_dir / "eval" / c).is_file()]
    (run_dir / "report.md").write_text(render_markdown(report, charts), encoding="utf-8")
    status["report"] = "done"
    return {"run_dir": str(run_dir), "resumed": resumed, "steps": status, "report": report}
