"""`ragkit build-sft-data`: QA pairs for LoRA SFT from every chunk of an index, answer first.

For each chunk: pick answer spans (spans.py), write a question per span with rules, a model, or
both (`method`), anchor it to its document, filter it (filters.py), rephrase each kept question
(paraphrase.py). Every chunk's result is appended to a work file keyed by a hash of the settings,
so an interrupted run continues where it stopped. `finish` then drops bench look-alikes, adds the
"explain" and "list" phrasings, mixes in general data and writes the output (formats.py); with
`recipe="raft"` the same pairs become RAFT examples instead, each read from its oracle chunk among
distractors with the prompt `ask` sends (raft.py, docs/raft.md).

    from ragkit.sftdata.qa import SFTDataConfig, build_sft_data
    summary = build_sft_data("idx", "out/sft.jsonl", SFTDataConfig(per_chunk=3, paraphrases=2))

Why `method="template"` by default: on the sample corpus (2-core CPU, shared), rule-written
questions were correct and answerable in 38 of 40 sampled pairs and the whole index took ~30 s;
the bundled models wrote a correct question for about 1 in 12 spans (SmolLM2, English; Gemma 3
mostly echoed the Chinese sentence), their rephrasings kept the meaning about half the time, and
each call took 9-19 s on the loaded machine (a full hybrid run: hours). `hybrid`/`model` are for a
stronger `--model`/`--base-url`; every model text still passes the same filters.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ..errors import UsageError
from ..generate import load_generator
from ..hashing import settings_hash
from ..index import Index
from ..lang import detect_language
from ..pipeline import AnswerSettings
from ..progress import NullProgress, Progress
from ..settings import CommaList, Settings
from . import filters
from .formats import FORMATS, write_outputs
from .paraphrase import ModelWriter, anchor, clean_title, rule_variants, template_question
from .raft import write_raft_outputs
from .spans import Span, pick_spans

METHODS = ("hybrid", "template", "model")
TASKS = ("direct", "explain", "list")
WORK_VERSION = 2
RAFT_FIELDS = ("recipe", "distractors", "oracle_share", "negatives", "without_oracle", "quote_chars")


class SFTDataConfig(Settings):
    """Settings of one build. Those in `work_key` decide each chunk's pairs (and the work file).

    `ragkit build-sft-data` takes its option defaults from here, and an experiment's
    `sft_data.options` are these fields."""

    per_chunk: int = Field(default=3, ge=1, le=20)
    paraphrases: int = Field(default=2, ge=0, le=10)
    method: Literal["hybrid", "template", "model"] = "template"  # measured best with the bundled models
    tasks: CommaList = Field(default_factory=lambda: list(TASKS))
    model: str | None = None  # None: the bundled default for each chunk's language
    backend: Literal["llamacpp", "hf", "openai"] | None = None
    base_url: str | None = None
    n_ctx: int | None = Field(default=None, ge=1)
    model_paraphrases: int = Field(default=1, ge=0)  # of the `paraphrases`, at most this many are asked of the model
    limit_chunks: int | None = Field(default=None, ge=1)
    seed: int = 0
    # recipe raft (sftdata/raft.py): the same QA pairs, each read from its oracle chunk among distractors
    recipe: Literal["qa", "raft"] = "qa"
    distractors: int = Field(default=3, ge=0, le=10)  # passages besides the oracle
    oracle_share: float = Field(default=0.8, ge=0.0, le=1.0)  # examples whose passages hold the oracle
    negatives: Literal["hard", "random"] = "hard"  # top hits from other sources, or random chunks
    without_oracle: Literal["answer", "refuse"] = "answer"  # the target when the oracle is left out
    quote_chars: int = Field(default=160, ge=20)  # longest evidence quote in a target

    def without_raft_defaults(self) -> dict:
        """The fields as JSON, those of the raft recipe left out where they hold their defaults: the
        settings of a qa build as they were before the recipe existed (run hashes and resolved
        experiments made then stay the same)."""
        d = self.model_dump(mode="json")
        for f in RAFT_FIELDS:
            if d[f] == type(self).model_fields[f].default:
                d.pop(f)
        return d

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        bad = set(tasks) - set(TASKS)
        if bad or not tasks:
            raise ValueError(f"tasks must be among {', '.join(TASKS)}, not {', '.join(sorted(bad)) or 'none'}")
        return tasks

    def work_key(self) -> dict:
        keys = ("per_chunk", "paraphrases", "method", "model", "backend", "base_url", "model_paraphrases", "seed")
        return {k: getattr(self, k) for k in keys}


@dataclass
class Summary:
    index: str
    out: str
    chunks_total: int = 0
    chunks_seen: int = 0
    chunks_resumed: int = 0
    spans: int = 0
    generated: int = 0  # candidate questions written (by rules and model) for the spans
    kept: int = 0  # QA pairs kept (direct questions and lists), before rephrasings
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(filters.FILTERS, 0))
    paraphrases_generated: int = 0
    paraphrases_kept: int = 0
    paraphrases_dropped: dict[str, int] = field(default_factory=dict)  # rephrasings, per filter
    kept_by_writer: dict[str, int] = field(default_factory=dict)
    kept_by_lang: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    model_calls: int = 0
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)
    work_file: str = ""
    notes: list[str] = field(default_factory=list)
    raft: dict = field(default_factory=dict)  # recipe raft: examples, with_oracle, distractors by kind, prompt

    def to_dict(self) -> dict:
        return asdict(self)


def doc_titles(chunks) -> dict[str, str]:
    """Each source's title: its first heading, else its first short line, else the file name."""
    titles: dict[str, str] = {}
    for c in chunks:
        if c.source in titles:
            continue
        first = next((ln.strip() for ln in c.text.splitlines() if ln.strip()), "")
        if first.startswith("#"):
            t = first.lstrip("#").strip()
        elif c.title and c.start == 0:
            t = c.title
        elif 0 < len(first) <= 80 and c.start == 0:
            t = first
        else:
            t = Path(c.source).stem.replace("-", " ").replace("_", " ")
        titles[c.source] = clean_title(t)
    return titles


def work_hash(index_manifest: dict, config: SFTDataConfig) -> str:
    """The key of a build's work file: the index's files and the settings that decide each chunk's pairs."""
    key = {"v": WORK_VERSION, "index": index_manifest.get("files") or index_manifest.get("created"),
           **config.work_key()}
    return settings_hash(key, 12)


class _ChunkWorker:
    """Turns one chunk into pairs; holds what crosses chunks (duplicates, table headers, overlap)."""

    def __init__(self, config: SFTDataConfig, titles: dict[str, str], load_writer: Callable[[str], ModelWriter]):
        self.config = config
        self.titles = titles
        self.load_writer = load_writer
        self.seen = filters.NearDupIndex()
        self.headers: dict[str, dict] = {}
        self.covered: dict[str, int] = {}  # source → end offset of the chunks already read

    def spans(self, chunk, lang: str) -> list[Span]:
        skip = max(0, self.covered.get(chunk.source, 0) - chunk.start)
        self.covered[chunk.source] = max(self.covered.get(chunk.source, 0), chunk.end)
        spans = pick_spans(chunk.text, lang, self.config.per_chunk, chunk.title, skip_before=skip,
                           headers=self.headers.setdefault(chunk.source, {}))
        for sp in spans:
            sp.question = template_question(sp) if sp.kind != "list" else None
        return spans

    def replay(self, record: dict) -> None:
        """Remember the questions of a chunk done in an earlier run (for the duplicate filter)."""
        for p in record["pairs"]:
            self.seen.add(p["question"])
            for v in p["variants"]:
                self.seen.add(v["question"])

    def run(self, chunk, lang: str, spans: list[Span]) -> dict:
        t0 = time.perf_counter()
        cfg, title = self.config, self.titles.get(chunk.source)
        drops: dict[str, int] = {}
        pdrops: dict[str, int] = {}  # rephrasings are counted apart: most rule rewrites are expected to fail
        counts = {"spans": len(spans), "generated": 0, "paraphrases_generated": 0, "model_calls": 0}
        writer = self.load_writer(lang) if cfg.method != "template" else None
        calls0 = writer.calls if writer else 0
        pairs = []
        for n, sp in enumerate(spans):
            candidates = []  # (question, writer) in order of preference
            if sp.kind == "list":
                q = _list_instruction(sp, title, lang)
                candidates.append((q, "template"))
            else:
                if sp.question and (cfg.method != "model" or sp.kind == "faq"):
                    candidates.append((anchor(sp.question, title, lang), "faq" if sp.kind == "faq" else "template"))
                # hybrid: the model writes the questions the rules cannot phrase; model: all of them.
                if writer and sp.kind != "faq" and (cfg.method == "model" or not sp.question):
                    mq = writer.question(sp.marked, title, lang)
                    if mq:
                        candidates.append((anchor(mq, title, lang), "model"))
                    else:  # the model's text held no question: written, and dropped for its length
                        counts["generated"] += 1
                        drops["length"] = drops.get("length", 0) + 1
            counts["generated"] += len(candidates)
            kept = []
            for q, who in candidates:
                why = self.check(q, sp, chunk.text, lang, model=who == "model")
                if why:
                    drops[why] = drops.get(why, 0) + 1
                else:
                    self.seen.add(q)
                    kept.append((q, who))
            if not kept:
                continue
            (q, who), others = kept[0], kept[1:]
            variants = [{"question": oq, "writer": ow} for oq, ow in others][: cfg.paraphrases]
            if sp.kind != "list":
                self._rephrase(q, sp, chunk.text, lang, title, writer, variants, pdrops, counts)
            pairs.append({
                "id": f"{chunk.chunk_id}-{n}", "question": q, "answer": sp.answer, "kind": sp.kind,
                "writer": who, "context": sp.context, "items": sp.items,
                "span": [chunk.start + sp.start, chunk.start + sp.end], "variants": variants,
            })
        counts["model_calls"] = (writer.calls - calls0) if writer else 0
        return {"chunk_id": chunk.chunk_id, "source": chunk.source, "lang": lang, "end": chunk.end,
                "title": title, "pairs": pairs, "drops": drops, "paraphrase_drops": pdrops, **counts,
                "seconds": round(time.perf_counter() - t0, 3)}

    def _rephrase(self, q, sp, text, lang, title, writer, variants, drops, counts) -> None:
        want = self.config.paraphrases
        core = filters.char_ngrams(filters.strip_anchor(q))
        tries: list[tuple[str | None, str]] = []
        if writer and self.config.method != "template":
            for _ in range(min(self.config.model_paraphrases, want - len(variants))):
                p = writer.paraphrase(filters.strip_anchor(q), lang)
                tries.append((anchor(p, title, lang, 1) if p else None, "model"))
        tries += [(v, "rule") for v in rule_variants(q, title, lang)]
        for v, who in tries:
            if len(variants) >= want:
                break
            counts["paraphrases_generated"] += 1
            if v is None:
                drops["length"] = drops.get("length", 0) + 1
                continue
            why = self.check(v, sp, text, lang, model=who == "model")
            if not why and filters.jaccard(filters.char_ngrams(filters.strip_anchor(v)), core) >= filters.NEAR_DUP:
                why = "near_duplicate"  # only the anchor changed: not a rephrasing
            if why:
                drops[why] = drops.get(why, 0) + 1
                continue
            self.seen.add(v)
            variants.append({"question": v, "writer": who})

    def check(self, q: str, sp: Span, text: str, lang: str, model: bool) -> str | None:
        """The name of the first filter `q` fails, or None when it passes them all."""
        long = sp.kind in ("list", "faq")
        if not filters.supported(sp.answer, text):
            return "unsupported"
        if sp.kind != "list" and filters.contains_answer(q, sp.answer):
            return "contains_answer"
        if filters.needs_context(q, lang):
            return "needs_context"
        if not filters.length_ok(q, sp.answer, lang, long_answer=long):
            return "length"
        if model and filters.inconsistent(q, sp.kind, text, lang, sp.answer):
            return "inconsistent"
        hit = self.seen.match(q)
        return hit[0] if hit else None


def _list_instruction(sp: Span, title: str | None, lang: str) -> str:
    """"List …" request for a list span, named by its lead-in line (or its section heading)."""
    lead = sp.context.strip(" :：")
    t = clean_title(title) if title else None
    if lang == "zh":
        where = f"根据《{t}》，" if t else ""
        return f"{where}“{lead}”包括哪些内容？" if len(lead) <= 20 else f"{where}请列出“{lead}”的要点。"
    where = f'According to "{t}", list' if t else "List"
    return f'{where} the items under "{lead}".'


def _work_path(out: Path, h: str) -> Path:
    return out.parent / f".{out.name}.{h}.work.jsonl"


def read_work(path: Path, key: str = "chunk_id") -> dict[str, dict]:
    """Records of an earlier run by their `key` field (chunk records here; the bench draft keys its
    outcomes by candidate); a torn last line (the run was killed mid-write) is ignored."""
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and key in rec:
            done[rec[key]] = rec
    return done


def build_sft_data(
    index_dir: str | Path,
    out: str | Path,
    config: SFTDataConfig | None = None,
    *,
    fmt: str = "alpaca",
    mix: str | Path | None = None,
    mix_ratio: float = 0.0,
    exclude_bench: str | Path | None = None,
    progress: Progress | None = None,
    generator_factory: Callable[[str], object] | None = None,
    fresh: bool = False,
    answer_settings: AnswerSettings | None = None,
) -> Summary:
    """Generate, filter and write SFT data from an index; returns the summary.

    `generator_factory(lang)` returns a ragkit generator for a language (tests pass fakes); by
    default `load_generator(config.model, ...)` with the bundled model for each language.
    `answer_settings` (recipe raft) shape the prompt as they shape `ask`'s and eval's: k, passages,
    context_tokens, examples (default: the answer path's defaults).
    """

    config = config or SFTDataConfig()
    progress = progress or NullProgress()
    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if mix and not 0 < mix_ratio < 1:
        raise UsageError("mix_ratio (--mix-ratio) must be between 0 and 1 (the share of general rows in the output)")
    guard = filters.BenchGuard.from_file(exclude_bench) if exclude_bench else None
    t0 = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    index = Index.open(index_dir)
    chunks = list(index.chunks())
    titles = doc_titles(chunks)
    h = work_hash(index.manifest, config)
    work = _work_path(out, h)
    if fresh and work.exists():
        work.unlink()
    done = read_work(work)
    summary = Summary(index=str(index_dir), out=str(out), chunks_total=len(chunks), work_file=str(work))
    worker = _ChunkWorker(config, titles, writer_loader(config, generator_factory))
    todo = chunks[: config.limit_chunks] if config.limit_chunks else chunks
    records = []
    progress.stage("chunks", len(todo))
    with work.open("a", encoding="utf-8") as wf:
        for chunk in todo:
            lang = detect_language(chunk.text)
            spans = worker.spans(chunk, lang)
            rec = done.get(chunk.chunk_id)
            if rec is not None:
                worker.replay(rec)
                summary.chunks_resumed += 1
            else:
                rec = worker.run(chunk, lang, spans)
                wf.write(json.dumps(rec, ensure_ascii=False) + "\n")
                wf.flush()
            records.append(rec)
            progress.advance(1)
    progress.done()
    add_counts(summary, records)
    if config.recipe == "raft":
        write_raft_outputs(records, out, fmt, summary, index, chunks, config, answer_settings or AnswerSettings(),
                           guard=guard, mix=mix, mix_ratio=mix_ratio)
    else:
        write_outputs(records, out, fmt, summary, guard=guard, mix=mix, mix_ratio=mix_ratio,
                      tasks=config.tasks, seed=config.seed)
    summary.seconds = round(time.perf_counter() - t0, 2)
    return summary


def writer_loader(config: SFTDataConfig, generator_factory: Callable[[str], object] | None):
    """lang -> ModelWriter, loading each language's generator once, when a chunk first needs it."""
    writers: dict[str, ModelWriter] = {}

    def load_writer(lang: str) -> ModelWriter:
        if lang not in writers:
            if generator_factory is not None:
                gen = generator_factory(lang)
            else:
                gen = load_generator(config.model, config.backend, base_url=config.base_url, lang=lang,
                                     n_ctx=config.n_ctx)
            writers[lang] = ModelWriter(gen)
        return writers[lang]

    return load_writer


def add_counts(summary: Summary, records: list[dict]) -> None:
    """Sum every chunk record's counts into the summary."""
    summary.chunks_seen = len(records)
    for rec in records:
        summary.spans += rec["spans"]
        summary.generated += rec["generated"]
        summary.paraphrases_generated += rec["paraphrases_generated"]
        summary.model_calls += rec["model_calls"]
        for k, v in rec["drops"].items():
            summary.dropped[k] = summary.dropped.get(k, 0) + v
        for k, v in rec.get("paraphrase_drops", {}).items():
            summary.paraphrases_dropped[k] = summary.paraphrases_dropped.get(k, 0) + v
