"""`ragkit bench draft`: a bench of `n` items from an index, in the recipe's categories and the
corpus's languages, answer first, every item verified, written as it is made.

Quotas: each cell of the mix (knowledge/easy ... common) gets its share of `n`, split between the
languages in the proportion of the index's chunks (largest remainders, so totals are exact). A cell
whose candidates run out in one language takes them from the other; a cell that runs out
altogether passes its remainder to the cells that still have candidates, and the summary says so.
Cells are served in turn, so a run stopped early still holds every kind.

Resuming: every candidate's outcome (kept with its item, or dropped with the reason) is appended to
a work file beside the output, keyed by a hash of the index and the settings; a second run replays
those outcomes without asking the model again and carries on. The output itself is rewritten
atomically after each item (records.py), so it is a valid bench at every moment.

    from ragkit.benchset.draft import DraftConfig, draft_bench
    summary = draft_bench("idx", "bench/draft.jsonl", DraftConfig(n=150))
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ..errors import UsageError
from ..generate import load_generator
from ..generate.base import Decoding
from ..hashing import settings_hash
from ..index import Index
from ..lang import detect_language
from ..pipeline import Pipeline
from ..progress import NullProgress, Progress
from ..settings import Settings
from ..sftdata import filters
from ..sftdata.paraphrase import ModelWriter
from ..sftdata.qa import doc_titles
from ..sftdata.qa import read_work as read_keyed_work
from .facts import extract_facts
from .pools import CELLS, Candidate, build_pools
from .records import write_atomic, write_records
from .verify import REASONS, check, known_closed_book
from .writing import questions

# The recipe's kinds, in shares of the bench: knowledge at three levels (the bulk), logic at two,
# and the questions the field asks most often. A starting point, not a fitted value: the sample
# bench (data/bench/sample.jsonl, hand-written) has about the same proportions.
DEFAULT_MIX = "knowledge/easy=20,knowledge/medium=20,knowledge/hard=15,logic/simple=15,logic/complex=10,common=20"
WORK_VERSION = 1


def parse_mix(text: str) -> dict[str, float]:
    """"knowledge/easy=20,common=10,..." → shares summing to 1 (cells left out get none)."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        cell, sep, raw = part.partition("=")
        cell = cell.strip()
        if not sep or cell not in CELLS:
            raise ValueError(f"'{part}' is not CELL=WEIGHT with CELL one of {', '.join(CELLS)}")
        try:
            w = float(raw)
        except ValueError:
            raise ValueError(f"'{part}': the weight must be a number") from None
        if w < 0:
            raise ValueError(f"'{part}': the weight must not be negative")
        weights[cell] = w
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("at least one cell needs a positive weight")
    return {c: w / total for c, w in weights.items() if w > 0}


class DraftConfig(Settings):
    """Settings of one draft; `ragkit bench draft` takes its option defaults from here, and an
    experiment's `bench_draft.options` are these fields."""

    n: int = Field(default=150, ge=1, le=5000)
    mix: str = DEFAULT_MIX
    writer: Literal["model", "rules"] = "model"  # model: the model writes, the rules are the fallback
    model: str | None = None  # None: the bundled default for each language
    backend: Literal["llamacpp", "hf", "openai"] | None = None
    base_url: str | None = None
    n_ctx: int | None = Field(default=None, ge=1)
    closed_book_check: bool = False
    seed: int = 0

    @field_validator("mix")
    @classmethod
    def _mix(cls, value: str) -> str:
        parse_mix(value)
        return value

    def weights(self) -> dict[str, float]:
        return parse_mix(self.mix)


@dataclass
class DraftSummary:
    index: str
    out: str
    asked: int
    items: int = 0
    by_cell: dict[str, int] = field(default_factory=dict)
    by_lang: dict[str, int] = field(default_factory=dict)
    by_writer: dict[str, int] = field(default_factory=dict)
    quotas: dict[str, int] = field(default_factory=dict)
    candidates: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    resumed: int = 0
    model_calls: int = 0
    closed_book_calls: int = 0
    seconds: float = 0.0
    work_file: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def allocate(n: int, weights: dict[str, float], shares: dict[str, float]) -> dict[tuple[str, str], int]:
    """n split over (cell, language) by weight × share, largest remainders first."""
    exact = {(c, lang): n * w * s for c, w in weights.items() for lang, s in shares.items()}
    out = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (-(exact[k] - out[k]), CELLS.index(k[0]), k[1]))[: n - sum(out.values())]:
        out[k] += 1
    return out


def language_shares(by_source: dict[str, list]) -> dict[str, float]:
    """Each language's share of the corpus, counted in documents (a document's language is that of
    most of its chunks). Documents rather than chunks: chunk counts follow the embedding model's
    tokenizer, which cuts Chinese into about twice as many chunks as English of the same length."""
    langs = Counter(Counter(detect_language(c.text) for c in cs).most_common(1)[0][0] for cs in by_source.values())
    total = sum(langs.values())
    return {lang: n / total for lang, n in sorted(langs.items())}


class _Slot:
    def __init__(self, cell: str, lang: str, quota: int, pool: list[Candidate]):
        self.cell, self.lang, self.quota, self.pool, self.pos, self.kept = cell, lang, quota, pool, 0, 0

    @property
    def open(self) -> bool:
        return self.kept < self.quota and self.pos < len(self.pool)

    def next(self) -> Candidate:
        self.pos += 1
        return self.pool[self.pos - 1]


class _Drafter:
    """Writes and verifies candidates, and remembers what a bench needs across them."""

    def __init__(self, config: DraftConfig, generator_factory: Callable[[str], object] | None):
        self.config = config
        self.factory = generator_factory
        self.gens: dict[str, object] = {}
        self.writers: dict[str, object] = {}
        self.pipes: dict[str, object] = {}
        self.seen = filters.NearDupIndex()
        self.model_calls = 0
        self.closed_book_calls = 0

    def generator(self, lang: str):
        if lang not in self.gens:
            if self.factory is not None:
                self.gens[lang] = self.factory(lang)
            else:

                c = self.config
                self.gens[lang] = load_generator(c.model, c.backend, base_url=c.base_url, lang=lang, n_ctx=c.n_ctx)
        return self.gens[lang]

    def writer(self, lang: str):
        if self.config.writer != "model":
            return None
        if lang not in self.writers:

            self.writers[lang] = ModelWriter(self.generator(lang))
        return self.writers[lang]

    def pipeline(self, lang: str):
        if lang not in self.pipes:

            self.pipes[lang] = Pipeline(None, self.generator(lang), decoding=Decoding(max_tokens=32))
        return self.pipes[lang]

    def replay(self, rec: dict, c: Candidate) -> dict | None:
        """An earlier run's outcome for `c`, verified again (verify.check, without the closed-book
        check): None when its question no longer passes, so the candidate is drafted afresh. A run
        resumed after the filters or the candidates' order changed (a duplicate) then holds what a
        fresh run would."""
        if not rec.get("item"):
            return rec
        q = rec["item"]["question"]
        if check(q, c, rec.get("writer", "model"), self.seen) is not None:
            return None
        self.seen.add(filters.strip_anchor(q))
        return rec

    def run(self, c: Candidate) -> dict:
        """The outcome of one candidate: {"key", "item" or None, "drops": {reason: n}, "writer"}."""
        w = self.writer(c.lang)
        calls0 = w.calls if w else 0
        tries = questions(c, w)
        if w:
            self.model_calls += w.calls - calls0
        drops: dict[str, int] = {}
        for q, who in tries:
            why = check(q, c, who, self.seen)
            if why is None and self.config.closed_book_check:
                self.closed_book_calls += 1
                if known_closed_book(q, c.answers, self.pipeline(c.lang)):
                    why = "closed_book"
            if why:
                drops[why] = drops.get(why, 0) + 1
                if why == "closed_book":
                    break  # another phrasing asks the same known fact
                continue
            self.seen.add(filters.strip_anchor(q))
            forms = [filters.plain_text(filters.strip_anchor(t)) for t, _ in tries if t.strip()]
            item = {"id": "", "question": q, "answers": c.answers, "sources": c.sources, "category": c.category,
                    "difficulty": c.difficulty, **({"notes": c.notes} if c.notes else {}), "status": "draft",
                    "chunk_ids": c.chunk_ids, "evidence": list(dict.fromkeys(f.answer for f in c.facts)),
                    "fingerprints": list(dict.fromkeys(forms))}
            return {"key": c.key, "item": item, "drops": drops, "writer": who, "lang": c.lang, "cell": c.cell}
        return {"key": c.key, "item": None, "drops": drops, "lang": c.lang, "cell": c.cell}


def work_path(out: Path, h: str) -> Path:
    return out.parent / f".{out.name}.{h}.work.jsonl"


def read_work(path: Path) -> dict[str, dict]:
    """Outcomes of an earlier run by candidate key; a torn last line (killed mid-write) is ignored."""
    return read_keyed_work(path, key="key")


def draft_bench(
    index_dir: str | Path,
    out: str | Path,
    config: DraftConfig | None = None,
    *,
    progress: Progress | None = None,
    generator_factory: Callable[[str], object] | None = None,
    fresh: bool = False,
) -> DraftSummary:
    """Draft a bench from an index into `out` (JSONL, every item "status": "draft"); returns the
    summary, also written to OUT.draft.json. `generator_factory(lang)` gives a generator (tests)."""

    config = config or DraftConfig()
    progress = progress or NullProgress()
    t0 = time.perf_counter()
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out / 'bench.jsonl'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    index = Index.open(index_dir)
    chunks = list(index.chunks())
    if not chunks:
        raise UsageError(f"index {index_dir} holds no chunks; ingest some documents first")
    by_source: dict[str, list] = {}
    for c in chunks:
        by_source.setdefault(c.source, []).append(c)
    shares = language_shares(by_source)
    texts = {s: "\n".join(c.text for c in cs) for s, cs in by_source.items()}
    facts = extract_facts(chunks, doc_titles(chunks))
    pools = build_pools(facts, by_source, texts)
    rng = random.Random(config.seed)
    for cell in pools:
        for lang in pools[cell]:
            rng.shuffle(pools[cell][lang])
            pools[cell][lang].sort(key=lambda c: c.fallback)  # stable: shuffled within each rank
    weights = config.weights()
    quotas = allocate(config.n, weights, shares)
    slots = [_Slot(cell, lang, quotas[(cell, lang)], pools[cell].get(lang, []))
             for cell in CELLS if cell in weights for lang in shares]
    s = DraftSummary(index=str(index_dir), out=str(out), asked=config.n,
                     quotas={f"{k[0]} {k[1]}": v for k, v in quotas.items()},
                     candidates={f"{c} {lang}": len(p) for c, ps in pools.items() for lang, p in ps.items()})
    h = settings_hash({"v": WORK_VERSION, "index": index.manifest.get("files") or index.manifest.get("created"),
                       **config.model_dump(mode="json")}, 12)
    work = work_path(out, h)
    s.work_file = str(work)
    if fresh and work.exists():
        work.unlink()
    done = read_work(work)
    drafter = _Drafter(config, generator_factory)
    items: list[dict] = []
    progress.stage("bench items", config.n)
    with work.open("a", encoding="utf-8") as wf:
        while True:
            _serve_slots(slots, drafter, done, items, s, wf, out, progress)
            if not _pass_on_deficit(slots, weights, s):
                break
    progress.done()
    write_records(out, items)
    s.items = len(items)
    s.by_cell = dict(Counter(f"{it['category']}/{it['difficulty']}" for it in items))
    s.by_lang = dict(Counter(detect_language(it["question"]) for it in items))
    s.model_calls, s.closed_book_calls = drafter.model_calls, drafter.closed_book_calls
    if s.items < config.n:
        s.notes.append(f"only {s.items} of {config.n} items: the corpus gave no more candidates that pass the filters")
    s.seconds = round(time.perf_counter() - t0, 2)
    write_atomic(out.with_name(out.name + ".draft.json"), json.dumps(s.to_dict(), ensure_ascii=False, indent=2))
    return s


def _serve_slots(slots, drafter: _Drafter, done: dict, items: list, s: DraftSummary, wf, out: Path, progress) -> None:
    """Take candidates from the open slots in turn until every slot is full or exhausted."""
    while any(sl.open for sl in slots):
        for sl in slots:
            if not sl.open:
                continue
            c = sl.next()
            rec = done.get(c.key)
            if rec is not None:
                rec = drafter.replay(rec, c)
            if rec is not None:
                s.resumed += 1
            else:
                rec = drafter.run(c)
                wf.write(json.dumps(rec, ensure_ascii=False) + "\n")
                wf.flush()
            for why, n in rec["drops"].items():
                s.dropped[why] = s.dropped.get(why, 0) + n
            if rec["item"] is None:
                continue
            sl.kept += 1
            item = dict(rec["item"], id=f"draft-{rec['lang']}-{len(items) + 1:03d}")
            items.append(item)
            s.by_writer[rec["writer"]] = s.by_writer.get(rec["writer"], 0) + 1
            write_records(out, items)  # a valid bench at every moment
            progress.advance(1)


def _pass_on_deficit(slots: list[_Slot], weights: dict[str, float], s: DraftSummary) -> bool:
    """Give the places exhausted slots could not fill to slots that still have candidates (the
    same cell in another language first, then the other cells by weight); False when none can."""
    short = [sl for sl in slots if sl.kept < sl.quota]
    takers = [sl for sl in slots if sl.pos < len(sl.pool)]
    if not short or not takers:
        return False
    extra = 0
    for sl in short:
        deficit = sl.quota - sl.kept
        s.notes.append(f"{sl.cell} ({sl.lang}): {sl.kept} of {sl.quota} items; {deficit} passed to other cells")
        sl.quota = sl.kept
        same = [t for t in takers if t.cell == sl.cell]
        for i in range(deficit if same else 0):
            same[i % len(same)].quota += 1
        extra += 0 if same else deficit
    order = sorted(takers, key=lambda t: -weights.get(t.cell, 0))  # one turn each, in order of weight
    for i in range(extra):
        order[i % len(order)].quota += 1
    return True
