"""Answer spans: the facts in a chunk worth asking about, picked before any question is written.

Answer-first generation: small models (135M-270M) write poor QA pairs freely, but they (and
simple rules) can turn "this fact, in this sentence" into a question. So a chunk is first cut into
units (prose sentences, tables, "key: value" lines, lists, FAQ entries), and each unit yields typed
candidate answers: money, percentages, quantities and durations with units, dates, phone numbers,
e-mail addresses, counts, names, table cells and values. Each span keeps what a question can be
built from: `meta` for the rules in paraphrase.py (row and column of a cell, key of a value,
offsets in the sentence) and `marked`, the context with the answer marked, for a model.

    from ragkit.sftdata.spans import pick_spans
    spans = pick_spans(chunk.text, lang="zh", per_chunk=3, heading=chunk.title)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..lang import has_cjk
from .patterns import COMPILED, LIST_LINE, MONTHS, clean

# What a kind of fact is worth asking about. pick_spans takes the highest first and takes kinds under
# 2.0 (names) only when nothing better is left, so only the order matters: a document's own FAQ
# answer, then table cells and "key: value" facts, then typed values, then counts, names last. The
# order is a design choice, not a fitted weight (no measurement behind the exact numbers).
_SCORE = {"faq": 3.5, "cell": 3.2, "value": 3.1, "money": 3.0, "percent": 3.0, "quantity": 3.0, "duration": 3.0,
          "temperature": 3.0, "date": 3.0, "year": 2.8, "phone": 2.9, "email": 2.7, "count": 2.2,
          "name": 1.5}
_NOT_NAMES = set(MONTHS.split("|")) | {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                                         "Sunday", "I", "The", "This", "If", "When", "Please", "Note", "See"}


@dataclass
class Span:
    """One candidate answer and what a question about it can be built from."""

    answer: str  # clean answer text (the SFT output)
    kind: str  # a key of _SCORE, or "list"
    context: str  # the clean unit holding the answer: a sentence, "row | column: value", "key: value"
    lang: str
    heading: str | None
    start: int  # offsets of the answer in the chunk text (of the unit when not found verbatim)
    end: int
    question: str | None = None  # the template question, without a document anchor
    marked: str = ""  # the context with the answer marked, for a model: "... [answer] ..."
    score: float = 0.0
    unit: int = 0  # index of the unit in the chunk (diversity: one span per unit first)
    items: list[str] = field(default_factory=list)  # list spans: the items
    meta: dict = field(default_factory=dict)  # what a template question is built from (paraphrase.py)


# -------------------------------------------------------------------------------- units
@dataclass
class _Unit:
    kind: str  # prose, table, kv, list
    text: str  # clean text (prose sentence, kv line, list lead-in)
    raw_start: int
    heading: str | None
    rows: list[list[str]] = field(default_factory=list)  # tables: header first
    items: list[str] = field(default_factory=list)


_KV = re.compile(r"^(?!(?:问|答|Q|A)[：:])(?P<key>[^:：|]{1,24}?)\s*[:：]\s*(?P<value>\S.*)$")
_SENT = {"zh": re.compile(r"(?<=[。！？；])"), "en": re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9“\"(])")}
GENERIC_HEAD = {"参数", "内容", "数值", "规格", "value", "values", "details", "值"}
_SKIP_COLS = {"备注", "说明", "注意", "notes", "note", "remarks", "comment", "comments", "description"}


def _cells(line: str) -> list[str] | None:
    s = line.strip()
    if " | " not in s and not (s.startswith("|") and s.endswith("|") and s.count("|") >= 3):
        return None
    cells = [clean(c) for c in s.strip("|").split("|")]
    return cells


def _is_rule(cells: list[str]) -> bool:
    return all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c)


def split_sentences(text: str, lang: str) -> list[str]:
    return [s.strip() for s in _SENT[lang].split(text) if s.strip()]


def units(text: str, lang: str, heading: str | None = None, headers: dict | None = None) -> list[_Unit]:
    """Cut a chunk into prose sentences, tables, key-value lines and lists (with their lead-in).

    `headers` (column count → header row) carries table headers from one chunk of a document to
    the next, so a table split across chunks still has its column names."""
    out: list[_Unit] = []
    lines, pos = [], 0
    for line in text.split("\n"):
        lines.append((pos, line))
        pos += len(line) + 1
    i = 0
    while i < len(lines):
        start, line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        one = re.fullmatch(r"(?:问|Q)[：:]\s*(.+?[？?])\s*(?:答|A)[：:]\s*(.+)", stripped)
        if one:  # "问：…？ 答：…" on one line
            out.append(_Unit("faq", clean(one.group(1)), start, heading, items=[clean(one.group(2))]))
            i += 1
            continue
        faq = _faq_block(lines, i, lang, heading)
        if faq is not None:
            found, heading, i = faq
            out.extend(found)
        elif stripped.startswith("#"):
            heading = clean(stripped.lstrip("#"))
            i += 1
        elif _cells(stripped) is not None:
            table, i = _table_block(lines, i, text, headers, heading)
            out.append(table)
        elif LIST_LINE.match(line):
            found, i = _list_block(lines, i, out, lang, heading)
            out.extend(found)
        else:
            out.extend(_line_units(line, start, lang, heading))
            i += 1
    return out


def _faq_block(lines, i: int, lang: str, heading: str | None):
    """A question the document itself asks (FAQ) at line i, whose answer is the next paragraph:
    (units, heading, next line), or None when line i is no such question."""
    start, line = lines[i]
    stripped = line.strip()
    faq_q = _faq_question(stripped)
    if not faq_q or i + 1 >= len(lines):
        return None
    j = i + 1
    while j < len(lines) and not lines[j][1].strip() and stripped.startswith("#"):
        j += 1
    ans = lines[j][1].strip() if j < len(lines) else ""
    if not ans or ans.startswith(("#", "|")) or _cells(ans) is not None or _faq_question(ans):
        return None
    found = [_Unit("faq", faq_q, start, heading, items=[clean(re.sub(r"^(答|A)[：:]\s*", "", ans))])]
    if stripped.startswith("#"):
        heading = faq_q
    found.extend(_line_units(ans, lines[j][0], lang, heading))
    return found, heading, j + 1


def _table_block(lines, i: int, text: str, headers: dict | None, heading: str | None) -> tuple[_Unit, int]:
    """The table starting at line i (blank lines inside it skipped), and the line after it."""
    start = lines[i][0]
    rows, j, rule_at = [], i, None
    while j < len(lines):
        s = lines[j][1].strip()
        c = _cells(s) if s else None
        if not s:
            j += 1
            continue
        if c is None:
            break
        if _is_rule(c):
            rule_at = len(rows) if rule_at is None else rule_at
        else:
            rows.append(c)
        j += 1
    # A table the chunk starts inside (the chunker cut it) has no header of its own: take the last
    # header with as many columns seen earlier in the document, or skip the table.
    continued = not text[:start].strip() and rule_at != 1
    if headers is not None:
        if continued and len(rows[0]) in headers:
            rows = [headers[len(rows[0])], *rows]
        elif continued:
            rows = []
        else:
            headers[len(rows[0])] = rows[0]
    elif continued:
        rows = []
    return _Unit("table", "", start, heading, rows=rows), j


def _list_block(lines, i: int, before: list[_Unit], lang: str, heading: str | None) -> tuple[list[_Unit], int]:
    """The list starting at line i (with the prose line before it that ends in ':' as its lead-in),
    each item also as a fact of its own; and the line after the list."""
    items, j = [], i
    while j < len(lines) and LIST_LINE.match(lines[j][1]):
        items.append(clean(lines[j][1]))
        j += 1
    prev = before[-1] if before else None
    lead = prev.text if prev and prev.kind == "prose" and prev.text.endswith((":", "：")) else None
    found = [_Unit("list", (lead or "").rstrip(":："), lines[i][0], heading, items=items)]
    for k in range(i, j):
        found.extend(_line_units(lines[k][1], lines[k][0], lang, heading))
    return found, j


def _line_units(line: str, start: int, lang: str, heading: str | None) -> list[_Unit]:
    c = clean(line)
    m = _KV.match(c)
    if m and _fact_like(m.group("key"), m.group("value"), lang):
        return [_Unit("kv", c, start, heading)]
    return [_Unit("prose", s, start, heading) for s in split_sentences(c, lang)]


def _faq_question(line: str) -> str | None:
    """The question of an FAQ entry line ("**Can it mow in rain?**", "问：…？", "### 3. …？")."""
    m = re.fullmatch(r"(?:\*\*(.+?[?？])\*\*|(?:问|Q)[：:]\s*(.+?[?？])|#{2,6}\s+(.+?[?？]))", line)
    if not m:
        return None
    q = re.sub(r"^(?:问|Q)[：:]\s*", "", clean(next(g for g in m.groups() if g)))
    q = re.sub(r"^(?:\d{1,2}[a-z]?[.、]\s*|[一二三四五六七八九十]+、)", "", q)
    short = len(q) < 6 if has_cjk(q) else len(q.split()) < 4
    return None if short else q  # "Still not solved?" is a heading, not a question


def _fact_like(key: str, value: str, lang: str) -> bool:
    """A "key: value" line that states one short fact (a spec, a date, a phone number), rather
    than a label in front of an instruction ("Return to dock: tap ... and the robot ...")."""
    has_digit = bool(re.search(r"\d", value))
    if lang == "zh":
        return len(key) <= 12 and len(value) <= 40 and (has_digit or len(value) <= 12)
    if key.split()[-1].lower() in {"only", "also", "then", "first", "next", "now", "here", "there", "too"}:
        return False
    # A short value, or one that is mostly a number with its unit ("Battery: covered for 36 months
    # in total ..." reads better as a sentence question than as "What is the battery?").
    specific = value_kind(strip_paren(value), lang) not in ("value",)
    return len(key.split()) <= 3 and len(value) <= 60 and ". " not in value and (
        len(value.split()) <= 4 or (has_digit and specific))


# -------------------------------------------------------------------------------- helpers
def strip_paren(text: str) -> str:
    return re.sub(r"\s*[（(][^）)]*[）)]", "", text).strip()


def value_kind(value: str, lang: str) -> str:
    if re.fullmatch(r"[\d,.\s–~-]+", value):
        return "quantity"
    for kind, rx in COMPILED[lang]:
        m = rx.search(value)
        if m and m.end() - m.start() >= 0.6 * len(value):
            return kind
    return "value"


def kv_askable(key: str, lang: str) -> bool:
    """"Released: …" or "Applies to: …" make no "What is the X?" question; "Hotline: …" does."""
    last = key.split()[-1].lower() if key.split() else ""
    return lang == "zh" or not (last.endswith("ed") or last in {"to", "by", "for", "from", "on", "at", "in", "with"})


# -------------------------------------------------------------------------------- picking
_MARK = {"en": ("[", "]"), "zh": ("【", "】")}  # how the answer is marked for a model
# Length caps, in characters. SFT answers should be short facts like the bench's: the longest of
# the 582 sample bench answers is 26 characters in English and 28 in Chinese (data/bench/sample.jsonl,
# measured). An answer may be 4x that in English and 2x in Chinese (a value with its unit and
# qualifier), a "key: value" or table value 2/3 of it; an FAQ answer keeps its first sentences up to
# 300/150; a list span has 2 to 10 items of at most 160 characters.
MAX_ANSWER = {"en": 120, "zh": 60}
MAX_VALUE = {"en": 80, "zh": 40}
MAX_CELL = 80
MAX_FAQ_ANSWER = {"en": 300, "zh": 150}
LIST_ITEMS, MAX_LIST_ITEM = (2, 10), 160


def _unit_spans(u: _Unit, idx: int, lang: str) -> list[Span]:
    spans: list[Span] = []

    def add(answer, kind, context, meta, marked, score):
        answer = answer.strip(" .。，,;；：:")
        if 1 <= len(answer) <= MAX_ANSWER[lang]:
            spans.append(Span(answer, kind, context, lang, u.heading, u.raw_start, u.raw_start, None, marked,
                              score, idx, meta=meta))

    if u.kind == "table" and len(u.rows) >= 2:
        header = u.rows[0]
        for row in u.rows[1:]:
            if len(row) != len(header) or not row[0]:
                continue
            for c in range(1, len(row)):
                value = row[c]
                if not value or value in {"-", "—", "–", "✓", "✗", "yes", "no", "是", "否"} or len(value) > MAX_CELL \
                        or header[c].lower() in _SKIP_COLS:
                    continue
                q = {"row": row[0], "col": header[c], "first": header[0]}
                ctx = f"{row[0]} | {header[c]}: {value}"
                add(value, "cell", ctx, q, f"{row[0]} | {header[c]}: {_MARK[lang][0]}{value}{_MARK[lang][1]}",
                    _SCORE["cell"])
        return spans
    if u.kind == "faq":
        answer = u.items[0]
        if len(answer) > MAX_FAQ_ANSWER[lang]:  # keep the first sentences of a long answer
            sents, answer = split_sentences(answer, lang), ""
            for sent in sents:
                if answer and len(answer) + len(sent) > MAX_FAQ_ANSWER[lang]:
                    break
                answer += ("" if lang == "zh" else " ") + sent
        spans.append(Span(answer.strip(), "faq", f"{u.text} {answer}", lang, u.heading, u.raw_start,
                          u.raw_start, u.text, f"{u.text} {_MARK[lang][0]}{answer.strip()}{_MARK[lang][1]}", 3.5, idx))
        return spans
    if u.kind == "list":
        if LIST_ITEMS[0] <= len(u.items) <= LIST_ITEMS[1] and all(len(i) <= MAX_LIST_ITEM for i in u.items):
            lead = u.text or u.heading or ""
            if lead:
                spans.append(Span("\n".join(f"- {i}" for i in u.items), "list", lead, lang, u.heading, u.raw_start,
                                  u.raw_start, None, "", 2.0, idx, list(u.items)))
        return spans
    if u.kind == "kv":
        m = _KV.match(u.text)
        key, value = m.group("key").strip(), m.group("value").strip()
        vk = value_kind(strip_paren(value), lang)
        if len(value) <= MAX_VALUE[lang] and kv_askable(key, lang):
            q = {"key": key, "value_kind": vk}
            add(value, "value", u.text, q, f"{key}: {_MARK[lang][0]}{value}{_MARK[lang][1]}", _SCORE["value"])
            return spans
        u = _Unit("prose", u.text, u.raw_start, u.heading)  # a long value: look inside it
    taken: list[tuple[int, int]] = []
    for kind, rx in COMPILED[lang]:
        for m in rx.finditer(u.text):
            s, e = m.span()
            if any(s < te and ts < e for ts, te in taken):
                continue
            if u.text[s - 1 : s] in "(（" and s > 0 and u.text[e : e + 1] in ")）" and e < len(u.text):
                continue  # "24 个月（2 年）": a restatement of the fact next to it
            if re.match(r"\s?/\s?\d", u.text[e : e + 4]) or re.search(r"\w\s?/\s?$", u.text[max(0, s - 4) : s]):
                continue  # "18 V / 5.2 Ah": one half of a joined spec makes a garbled question
            answer = u.text[s:e]
            if kind == "name" and (answer.split()[0] in _NOT_NAMES or len(answer) < 4):
                continue
            taken.append((s, e))
            o, c = _MARK[lang]
            add(answer, kind, u.text, {"s": s, "e": e}, f"{u.text[:s]}{o}{answer}{c}{u.text[e:]}", _SCORE[kind])
    return spans


def candidate_spans(text: str, lang: str, heading: str | None = None, skip_before: int = 0,
                    headers: dict | None = None) -> list[Span]:
    """Every candidate span of a chunk, in text order; units starting before `skip_before` (the
    part this chunk shares with the previous chunk of the same document) are left out."""
    out: list[Span] = []
    for idx, u in enumerate(units(text, lang, heading, headers)):
        if u.raw_start < skip_before:
            continue
        for sp in _unit_spans(u, idx, lang):
            i = text.find(sp.answer, u.raw_start)
            if i >= 0 and sp.kind != "list":
                sp.start, sp.end = i, i + len(sp.answer)
            elif sp.kind == "list":
                sp.end = u.raw_start + len("\n".join(sp.items))
            out.append(sp)
    return out


def pick_spans(text: str, lang: str, per_chunk: int, heading: str | None = None, skip_before: int = 0,
               with_lists: bool = True, headers: dict | None = None) -> list[Span]:
    """The best `per_chunk` spans of a chunk (at most one per unit until every unit has had its
    turn), in text order, plus at most one list span when `with_lists`."""
    cands = candidate_spans(text, lang, heading, skip_before, headers)
    lists = [s for s in cands if s.kind == "list"]
    facts = sorted((s for s in cands if s.kind != "list"), key=lambda s: (-s.score, s.start))
    chosen: list[Span] = []
    seen_units: set[int] = set()
    seen_answers: set[str] = set()
    for rnd in (0, 1, 2):
        for s in facts:
            if len(chosen) >= per_chunk:
                break
            if s in chosen or s.answer in seen_answers or (rnd == 0 and s.unit in seen_units):
                continue
            if rnd < 2 and s.score < 2.0:
                continue  # names and the like only when nothing better is left
            chosen.append(s)
            seen_units.add(s.unit)
            seen_answers.add(s.answer)
    chosen.sort(key=lambda s: s.start)
    if with_lists and lists:
        chosen.append(lists[0])
    return chosen
