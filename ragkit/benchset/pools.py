"""Candidate bench items per category, from the corpus's facts (facts.py), before any question is
written. Each kind follows the definition in the bench format's docs (docs/bench.md):

    knowledge/easy     a fact stated in one document, with no condition in its sentence
    knowledge/medium   a fact that needs a condition or detail: a table cell (row and column), or a
                       sentence with "if/when/after/only/每/时/后..." around the answer
    knowledge/hard     documents disagree and the newer one wins (near-identical statements about the
                       same thing, different values, documents ordered by date or version); or a table
                       cell whose column header sits in an earlier chunk of the document (two chunks)
    logic/simple       one computation over facts of one chunk: the difference of two values of one
                       table column (or two quantities with one unit in one chunk); recorded in notes
    logic/complex      facts from two documents combined: how much a value changed between an older
                       and a newer document; how much two things' values of one attribute differ
                       (the M3 mows 90 minutes, the M5 120); or what two things cost together (a
                       price in one document, another thing's price in another)
    common             a fact stated alike in two or more documents (FAQ-like), unless a document
                       changes that value ("reduced from 75 to 65 minutes": 75 is outdated)

A fact that takes part in a conflict is never an easy, medium or common item: its gold would
depend on which document the reader trusts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .facts import (
    MASK,
    QUALIFIER,
    Fact,
    StatementIndex,
    answer_key,
    doc_order,
    newer,
    parse_quantity,
    same_subject,
    subject_codes,
    word_jaccard,
)

CELLS = ("knowledge/easy", "knowledge/medium", "knowledge/hard", "logic/simple", "logic/complex", "common")
# knowledge/hard: conflicts between documents first; a cell whose header is in another chunk is a
# weaker kind of hard (it needs two chunks, nothing disagrees), so it is the fallback.
CONFLICT_SIM = 0.5  # masked statements this alike (character n-gram Jaccard) say the same thing,
CONFLICT_WORDS = 0.6  # ... when their content words are this alike too (short statements share n-grams)
PARALLEL_WORDS = 0.5  # two statements in one chunk this alike in content words are parallel
RECUR_SIM = 0.35  # ... and these are alike enough to be the same fact restated in another document
# A bench answer is a short fact: a reply is scored by whether it contains one of the answers, which
# a long procedure never matches. The sample bench's longest answers are 26 (en) and 28 (zh)
# characters (data/bench/sample.jsonl); these caps are about twice that.
BENCH_ANSWER_MAX = {"en": 60, "zh": 30}
_NUM = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\d])")


@dataclass
class Candidate:
    """One would-be item: its facts (the first is what the question is written from), gold
    answers, and the computation or conflict behind it."""

    cell: str
    lang: str
    facts: list[Fact]
    answer: str
    notes: str = ""
    compute: dict | None = None  # {"op", "operands", "result"} for logic items
    extra_chunks: list[str] = field(default_factory=list)  # chunks used beyond the facts' own
    fallback: bool = False  # tried after the cell's other candidates (a weaker instance of the kind)

    @property
    def key(self) -> str:
        return f"{self.cell}|" + "|".join(f.key for f in self.facts)

    @property
    def category(self) -> str:
        return self.cell.split("/")[0]

    @property
    def difficulty(self) -> str:
        if self.cell == "common":
            return "medium" if self.facts[0].conditional or self.facts[0].kind == "cell" else "easy"
        return self.cell.split("/")[1]

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(f.source for f in self.facts))

    @property
    def chunk_ids(self) -> list[str]:
        return list(dict.fromkeys([*self.extra_chunks, *(f.chunk_id for f in self.facts)]))

    @property
    def answers(self) -> list[str]:
        return answer_forms(self.answer)


# a currency before or after an amount: "USD 70", "$24.99", "1,299 元"
_CURRENCY = re.compile(r"^(?:USD|CNY|EUR|GBP|RMB|US\$|\$|¥|€|£)\s*(?=\d)|(?<=\d)\s*(?:元|美元|欧元|USD|CNY|EUR|RMB)$")
_AMOUNT = re.compile(r"\d[\d,]*(?:\.\d+)?")
# a quantity with its unit (or a phone number) at the start of a longer answer
_LEADING = re.compile(r"^(?:about |approximately |around |约\s*|大约\s*)?(\d[\d,.]*\s*(?:[A-Za-z%°]+|[\u4e00-\u9fff]{1,2})"
                      r"|\d{3,}(?:-\d{3,}){1,3})(?=[\s，,;；(（]|$)")
_ALTERNATIVES = re.compile(r"\s+/\s+")
_CLAUSE = re.compile(r"[；;，]|: |：")  # not "," alone ("1,299") nor ":" alone ("9:00")
_ROUGHLY = re.compile(r"^(?:about|approximately|approx\.|around|roughly|约|大约)\s*", re.IGNORECASE)


def answer_forms(answer: str) -> list[str]:
    """The answer and the forms a correct reply may take: without "about"/"约"; the quantity a longer
    answer starts with ("7.5 Ah lithium-ion" → "7.5 Ah"); either side of "A / B"; the first clause of
    a whole cell or spec line ("rain pause: rain sensor wet for 3 minutes" → "rain pause",
    "将机器移回平缓区域；超过坡度上限的区域请设为禁区" → its first half); an amount of money also as the bare
    number ("USD 70" → "70", as the hand-written bench writes prices) and without ".00" cents
    ("1,899.00" → "1,899"); each without thousands separators and without the space between number
    and unit."""
    base = [answer.strip()]
    exact = _ROUGHLY.sub("", base[0])  # "about 90 minutes": a reply of "90 minutes" is right too
    if exact != base[0] and exact:
        base.append(exact)
    lead = _LEADING.match(base[-1])  # "7.5 Ah lithium-ion", "about 150 minutes on Quiet mode"
    if lead and len(lead[1]) < len(base[-1].strip()):
        base.append(lead[1])
    parts = [p.strip() for p in _ALTERNATIVES.split(base[0])]  # "USD 1,299 / CNY 8,999": either
    if len(parts) > 1:
        base += [p for p in parts if p]
    elif len(lead_clause := _CLAUSE.split(base[0], 1)[0].strip()) >= 2 and lead_clause != base[0]:
        base.append(lead_clause)  # a whole table cell or spec line: its first clause is the answer
    amount = _CURRENCY.sub("", base[0]).strip()
    if amount != base[0] and _AMOUNT.fullmatch(amount):
        base.append(amount)
    base += [re.sub(r"(?<=\d)\.00(?!\d)", "", f) for f in base]
    forms = [g for f in base for g in (f, re.sub(r"(?<=\d),(?=\d{3})", "", f), re.sub(r"(?<=\d) (?=[^\W\d])", "", f))]
    return [f for f in dict.fromkeys(forms) if f.strip()]


def format_number(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}" if decimals else f"{round(value):,}"


def computed_answer(template: Fact, value: float, decimals: int) -> str:
    """`template`'s answer with its number replaced by `value` and its qualifier dropped ("USD
    24.99" → "USD 5.00", "about 90 minutes" → "15 minutes")."""
    return _NUM.sub(format_number(value, decimals), QUALIFIER.sub("", template.answer), count=1)


def build_pools(facts: list[Fact], chunks_by_source: dict[str, list], texts: dict[str, str]) -> dict[str, dict[str, list[Candidate]]]:
    """Candidates per cell per language, in corpus order (draft.py shuffles them with its seed)."""
    pools: dict[str, dict[str, list[Candidate]]] = {c: {} for c in CELLS}

    def add(c: Candidate) -> None:
        if len(c.answer) <= BENCH_ANSWER_MAX[c.lang]:
            pools[c.cell].setdefault(c.lang, []).append(c)

    stmts = StatementIndex(facts)
    orders = {s: doc_order(s, texts.get(s, ""), next((f.title for f in facts if f.source == s), None))
              for s in {f.source for f in facts}}
    in_conflict: set[int] = set()
    for group in conflict_groups(facts, stmts, orders):
        in_conflict.update(group)
        winner, *older = [facts[i] for i in group]
        history = "; ".join(f'"{f.title or f.source}" says {f.answer}' for f in older)
        add(Candidate("knowledge/hard", winner.lang, [winner, *older], winner.answer,
                      f'documents disagree: {history}; the newer "{winner.title or winner.source}" says '
                      f"{winner.answer}, which wins"))
        old = older[0]
        diff = abs(winner.number - old.number)
        dec = max(winner.decimals, old.decimals)
        op = f"{format_number(winner.number, dec)} - {format_number(old.number, dec)}" if winner.number > old.number \
            else f"{format_number(old.number, dec)} - {format_number(winner.number, dec)}"
        add(Candidate("logic/complex", winner.lang, [winner, old], computed_answer(winner, diff, dec),
                      f'"{old.title or old.source}" says {old.answer}, the newer "{winner.title or winner.source}" '
                      f"says {winner.answer}; {op} = {format_number(diff, dec)}",
                      {"op": "difference", "operands": [winner.answer, old.answer], "result": diff}))
    answer_docs: dict[tuple[str, str], set[str]] = {}
    for f in facts:
        answer_docs.setdefault((f.lang, answer_key(f.answer)), set()).add(f.source)
    seen_recurring: set[frozenset] = set()
    columns: dict[tuple[str, int], set[str]] = {}
    for f in facts:
        if f.kind == "cell":
            columns.setdefault((f.chunk_id, f.unit_index), set()).add(f.meta.get("col", ""))
    ambiguous = repeated_keys(facts)
    changes = stated_changes(facts, answer_docs)
    changed = superseded_by_changes(facts, changes)  # a value some document changes: outdated
    old_sides = {id(c.facts[1]) for c in changes if c.cell == "logic/simple"}  # "from [75 minutes] to 65"
    for i, f in enumerate(facts):
        if i in in_conflict or i in ambiguous or id(f) in old_sides:
            continue
        once = len(answer_docs[(f.lang, answer_key(f.answer))]) == 1
        if f.kind == "cell" and f.split_header:
            head = next((c for c in chunks_by_source.get(f.source, []) if f.meta.get("col", "\0") in c.text), None)
            if head is not None and once:
                add(Candidate("knowledge/hard", f.lang, [f], f.answer,
                              f"needs two chunks: the value is in one, the column \"{f.meta['col']}\" in an earlier one",
                              extra_chunks=[head.chunk_id], fallback=True))
            continue
        matrix = f.kind == "cell" and len(columns[(f.chunk_id, f.unit_index)]) >= 2  # needs row and column
        if once and (matrix or f.conditional):
            add(Candidate("knowledge/medium", f.lang, [f], f.answer))
        elif once:
            add(Candidate("knowledge/easy", f.lang, [f], f.answer))
        else:
            same = [facts[j] for j, _ in stmts.similar(i, RECUR_SIM)
                    if j not in in_conflict and facts[j].source != f.source and facts[j].lang == f.lang
                    and answer_key(facts[j].answer) == answer_key(f.answer) and same_subject(f, facts[j])]
            group = [f, *{g.source: g for g in same}.values()]
            key = frozenset(g.key for g in group)
            # outdated: the group holds a change's old value, or a document changes this value
            # for the same product (a fact that names no product is not matched by value alone)
            outdated = any(id(g) in old_sides for g in group) or (i in changed and subject_codes(f))
            if len(group) >= 2 and key not in seen_recurring and not outdated:
                seen_recurring.add(key)
                add(Candidate("common", f.lang, group, f.answer,
                              f"stated in {len(group)} documents: " + ", ".join(g.source for g in group)))
    for c in within_chunk_differences(facts, in_conflict):
        add(c)
    for c in changes:
        add(c)
    superseded = set(in_conflict) | changed
    for c in cross_document_comparisons(facts, stmts, superseded):
        add(c)
    for c in cross_document_totals(facts, superseded):
        add(c)
    return pools


# "raised from 35% to 40%", "由 75 分钟缩短至约 65 分钟": the old value right after from/从/由, the new
# one right after to/至/到/为, and a verb of change in the sentence ("set from 20 mm to 60 mm" is a
# range, not a change)
_FROM = {"en": re.compile(r"\bfrom\s+(?:about\s+|approximately\s+)?$", re.IGNORECASE),
         "zh": re.compile(r"(?:^|[^路])[从由](?:原来的)?\s*约?\s*$")}
_TO = {"en": re.compile(r"\s*to\s+(?:about\s+|approximately\s+)?", re.IGNORECASE),
       "zh": re.compile(r"\s*[^，。；,;]{0,6}?(?:到|至|为)\s*约?\s*")}
_CHANGE_VERB = {
    "en": re.compile(r"\b(?:rais|increas|reduc|decreas|extend|shorten|lower|drop|fall|fell|rise|rose|chang|"
                     r"improv|grow|grew|upgrad|adjust)\w*|\bcuts?\b", re.IGNORECASE),
    "zh": re.compile(r"提升|提高|增加|延长|缩短|降低|下调|上调|调整|减少|改为|增至|降至|变为"),
}


def stated_changes(facts: list[Fact], answer_docs: dict) -> list[Candidate]:
    """A sentence that changes a value ("raised from 35% to 40%", "从 75 分钟缩短到 65 分钟"):
    logic/simple, the size of the change; and knowledge/hard, the new value, when another document
    still states the old one (the documents disagree, the one announcing the change wins)."""
    out = []
    by_sentence: dict[tuple[str, str], list[Fact]] = {}
    for f in facts:
        if f.number is not None and f.kind not in ("value", "cell"):
            by_sentence.setdefault((f.chunk_id, f.context), []).append(f)
    for (_, sentence), fs in by_sentence.items():
        fs = sorted(fs, key=lambda f: sentence.find(f.answer))
        for old, new in zip(fs, fs[1:]):
            i, j = sentence.find(old.answer), sentence.find(new.answer)
            lang = old.lang
            if old.unit != new.unit or old.number == new.number or i < 0 or j <= i \
                    or not _FROM[lang].search(sentence[max(0, i - 12): i]) \
                    or not _TO[lang].fullmatch(sentence[i + len(old.answer): j]) \
                    or not _CHANGE_VERB[lang].search(sentence):
                continue
            dec = max(old.decimals, new.decimals)
            diff = abs(new.number - old.number)
            op = f"{format_number(max(old.number, new.number), dec)} - {format_number(min(old.number, new.number), dec)}"
            out.append(Candidate("logic/simple", new.lang, [new, old], computed_answer(new, diff, dec),
                                 f"changed from {old.answer} to {new.answer}; {op} = {format_number(diff, dec)}",
                                 {"op": "difference", "operands": [new.answer, old.answer], "result": diff,
                                  "change": True}))
            elsewhere = answer_docs.get((old.lang, answer_key(old.answer)), set()) - {new.source}
            if elsewhere:
                out.append(Candidate("knowledge/hard", new.lang, [new], new.answer,
                                     f"documents disagree: {', '.join(sorted(elsewhere))} state(s) {old.answer}; "
                                     f"{new.source} changes it from {old.answer} to {new.answer}, which wins"))
            break
    return out


def superseded_by_changes(facts: list[Fact], changes: list[Candidate]) -> set[int]:
    """Facts that state a value a document changes ("from 75 to 65 minutes"): the old value, in
    the same language, about the same product. A comparison across documents must not use them."""
    old = {(c.lang, answer_key(c.facts[1].answer), subject_codes(c.facts[0])) for c in changes if c.cell == "logic/simple"}
    return {i for i, f in enumerate(facts) if (f.lang, answer_key(f.answer), subject_codes(f)) in old}


def cross_document_comparisons(facts: list[Fact], stmts: StatementIndex, skip: set[int]) -> list[Candidate]:
    """logic/complex: the same statement about two different things in two documents ("the M3
    mows for about 90 minutes" / "the M5 mows for about 120 minutes"), and their difference. Facts
    in `skip` (outvoted by a newer document, or changed by one) are no operands."""
    out, used = [], set()
    for i, a in enumerate(facts):
        if i in skip or a.number is None or i in used or not subject_codes(a):
            continue
        for j, _ in stmts.similar(i, CONFLICT_SIM):
            b = facts[j]
            if j in skip or j in used or b.number is None or b.source == a.source or b.lang != a.lang \
                    or b.unit != a.unit or b.number == a.number or not subject_codes(b) \
                    or subject_codes(a) == subject_codes(b) or word_jaccard(strip_codes(a.statement), strip_codes(b.statement)) < CONFLICT_WORDS:
                continue
            out.append(comparison(a, b))
            used.update((i, j))
            break
    out += attribute_comparisons(facts, skip, used)
    return out


def comparison(a: Fact, b: Fact) -> Candidate:
    """logic/complex: how much the larger of two things' values of one attribute exceeds the other."""
    hi, lo = (a, b) if a.number > b.number else (b, a)
    dec = max(a.decimals, b.decimals)
    diff = hi.number - lo.number
    return Candidate("logic/complex", a.lang, [hi, lo], computed_answer(hi, diff, dec),
                     f'"{hi.title or hi.source}" states {hi.answer}, "{lo.title or lo.source}" states '
                     f"{lo.answer}; {format_number(hi.number, dec)} - {format_number(lo.number, dec)} = "
                     f"{format_number(diff, dec)}",
                     {"op": "difference", "operands": [hi.answer, lo.answer], "result": diff, "compare": True})


def attribute(f: Fact) -> str | None:
    """What a table cell or key-value line gives the value of, spaces left out ("续航时间",
    "weight"): a cell's row, or its column where the row names the thing (a code such as M5); a
    line's key. None where the header names the thing only ("Kestrel M5: 45%") or both headers do."""
    def norm(text: str) -> str:
        return "".join(strip_codes(text).replace(MASK, " ").split()).lower()

    if f.kind == "value":
        key = f.meta.get("key", "")
        return None if _CODE.search(key) else norm(key)
    row, col = f.meta.get("row", ""), f.meta.get("col", "")
    if _CODE.search(row):
        return None if _CODE.search(col) else norm(col)
    return norm(f.statement)


def attribute_comparisons(facts: list[Fact], skip: set[int], used: set[int]) -> list[Candidate]:
    """The comparisons `cross_document_comparisons` misses between spec tables that name one
    attribute in a shorter and a longer way ("续航" in one document, "续航时间" in another): two
    cells or key-value lines about different things, in two documents, one attribute (two
    characters or more) the start of the other. Facts in `used` are taken already."""
    specs = [(i, f, attr) for i, f in enumerate(facts) if f.kind in ("cell", "value") and f.number is not None
             and i not in skip and i not in used and subject_codes(f) and len(attr := attribute(f) or "") >= 2]
    out = []
    for n, (i, a, attr_a) in enumerate(specs):
        for j, b, attr_b in specs[n + 1:]:
            if i in used or j in used or b.source == a.source or b.lang != a.lang or b.unit != a.unit \
                    or b.number == a.number or subject_codes(a) == subject_codes(b):
                continue
            x, y = sorted((attr_a, attr_b), key=len)
            if x == y or not y.startswith(x):
                continue  # equal attributes are cross_document_comparisons' (if it passed them over, so do we)
            out.append(comparison(a, b))
            used.update((i, j))
    return out


# a price, not a fee, refund, discount or per-visit charge: a word for price shortly before the
# amount, no word for a fee or a cut right before it (or in a table cell's row), and no rate in the
# unit ("199 元/次")
_PRICE = {"en": re.compile(r"\bpric|\bcosts?\b|\bretail\b|\bMSRP\b|\bsold\b", re.IGNORECASE),
          "zh": re.compile(r"价")}
_NOT_PRICE = {"en": re.compile(r"\bfees?\b|\brefund|\bdiscount|\bsurcharge|\bdeposit|\brebate|\boff\b|\bcut\b",
                               re.IGNORECASE),
              "zh": re.compile(r"费|退款|优惠|补偿|补贴|差价|下调|降价|减免|折扣")}
PRICE_WINDOW = 40  # characters before the amount that must hold the word for price
NOT_PRICE_WINDOW = 12  # ... and that must not name a fee or a cut ("每台下调 400 元" beside "零售价")
TOTAL_USES = 2  # one thing's price in at most this many totals: the items differ in more than one price


def is_price(f: Fact) -> bool:
    """An amount of money stated as what something costs (see _PRICE)."""
    if f.number is None or not _CURRENCY.search(f.answer) or "/" in f.unit:
        return False
    before = f.statement.split(MASK, 1)[0]
    named = f"{f.meta.get('row', '')} {before[-NOT_PRICE_WINDOW:]}"  # "Diagnostic fee | Price", "每台下调 400 元"
    return bool(_PRICE[f.lang].search(before[-PRICE_WINDOW:])) and not _NOT_PRICE[f.lang].search(named)


# a table header that says only "price" ("Price", "Launch price (USD)", "首发价格（人民币）", "建议零售价")
_PRICE_HEADER = re.compile(r"^(?:(?:launch|recommended|retail|list|unit)\s+)?price\s*(?:\(.*\))?$|"
                           r"^(?:首发|建议零售|零售|建议|官方)?(?:价格|售价|价)\s*(?:（.*）|\(.*\))?$", re.IGNORECASE)


def thing_name(f: Fact) -> str | None:
    """What a price is the price of, by rule: for a table cell whose column says only "price", its
    row; whose row says only "price" (a table with a column per product), its column; None
    otherwise ("Kestrel M3 | Price of Kestrel Care+" is Care+'s price, not the M3's)."""
    if f.kind != "cell":
        return None
    row, col = (f.meta.get("row") or "").strip(), (f.meta.get("col") or "").strip()
    if row and _PRICE_HEADER.match(col):
        return row
    if col and _PRICE_HEADER.match(row):
        return col
    return None


def cross_document_totals(facts: list[Fact], skip: set[int]) -> list[Candidate]:
    """logic/complex: what two things cost together, their prices stated in two documents ("the V7
    is USD 499" / "Care+ for the V7: USD 79"; "M3 建议零售价 8,999 元" / "基站价格为 1,299 元"). Two
    prices are of one thing when their codes and their amount agree, or their codes agree and their
    statements say the same (a price two documents disagree on, which `skip` already holds when
    the documents are dated): such a pair is no total. Facts in `skip` are no operands."""
    prices = [f for i, f in enumerate(facts) if i not in skip and is_price(f)]

    def thing(f: Fact) -> tuple:
        return subject_codes(f), answer_key(f.answer)

    pairs = []
    for n, a in enumerate(prices):
        for b in prices[n + 1:]:
            if b.source == a.source or b.lang != a.lang or b.unit != a.unit or thing(a) == thing(b):
                continue
            if subject_codes(a) == subject_codes(b) and \
                    word_jaccard(strip_codes(a.statement), strip_codes(b.statement)) >= CONFLICT_WORDS:
                continue  # one thing's price, stated twice with different amounts
            pairs.append((a, b))
    # two things a question can name by rule first (thing_name), then a thing with what is sold for
    # it (the V7 and Care+ for the V7: they share a code)
    pairs.sort(key=lambda p: (not (thing_name(p[0]) and thing_name(p[1])), not (subject_codes(p[0]) & subject_codes(p[1]))))
    out, seen, uses = [], set(), {}
    for a, b in pairs:
        ta, tb = thing(a), thing(b)
        if frozenset((ta, tb)) in seen or uses.get(ta, 0) >= TOTAL_USES or uses.get(tb, 0) >= TOTAL_USES:
            continue
        dec = max(a.decimals, b.decimals)
        total = a.number + b.number
        out.append(Candidate("logic/complex", a.lang, [a, b], computed_answer(a, total, dec),
                             f'"{a.title or a.source}" states {a.answer}, "{b.title or b.source}" states '
                             f"{b.answer}; {format_number(a.number, dec)} + {format_number(b.number, dec)} = "
                             f"{format_number(total, dec)}",
                             {"op": "sum", "operands": [a.answer, b.answer], "result": total, "total": True}))
        seen.add(frozenset((ta, tb)))
        uses[ta], uses[tb] = uses.get(ta, 0) + 1, uses.get(tb, 0) + 1
    return out


def strip_codes(text: str) -> str:
    return _CODE.sub(" ", text)


def repeated_keys(facts: list[Fact]) -> set[int]:
    """Key-value facts whose key, and table cells whose row and column, recur in the same document
    with other values ("Address: ..." under each of six service centres; a "Kestrel Care+ | Price"
    row per product): "What is the address?" has no single answer."""
    def key(f: Fact):
        if f.kind == "value":
            return f.source, f.meta.get("key", "")
        if f.kind == "cell":
            return f.source, f.meta.get("row", ""), f.meta.get("col", "")
        return None

    values: dict[tuple, set[str]] = {}
    for f in facts:
        if (k := key(f)) is not None:
            values.setdefault(k, set()).add(answer_key(f.answer))
    return {i for i, f in enumerate(facts) if (k := key(f)) is not None and len(values[k]) > 1}


def conflict_groups(facts: list[Fact], stmts: StatementIndex, orders: dict) -> list[list[int]]:
    """Groups of facts (newest first) that state the same thing about the same subject in
    different documents of one language with different values, the newest document strictly newer
    than every document with another value."""
    groups, taken = [], set()
    for i, f in enumerate(facts):
        if i in taken or f.number is None:
            continue
        rivals = [j for j, _ in stmts.similar(i, CONFLICT_SIM)
                  if facts[j].number is not None and facts[j].lang == f.lang and facts[j].source != f.source
                  and facts[j].unit == f.unit and same_subject(f, facts[j])
                  and word_jaccard(f.statement, facts[j].statement) >= CONFLICT_WORDS
                  and f.answer not in facts[j].context and facts[j].answer not in f.context]  # one sentence, two values
        members = [i, *[j for j in rivals if j not in taken]]
        if len({facts[m].number for m in members}) < 2:
            continue
        newest = max(members, key=lambda m: sum(newer(orders[facts[m].source], orders[facts[o].source]) for o in members))
        if not all(newer(orders[facts[newest].source], orders[facts[o].source]) == 1
                   for o in members if facts[o].number != facts[newest].number):
            continue  # the documents' order cannot say which value wins
        older = sorted((o for o in members if facts[o].number != facts[newest].number),
                       key=lambda o: orders[facts[o].source][0] or (0,), reverse=True)
        taken.update(members)
        groups.append([newest, *dict.fromkeys(older)])
    return groups


def within_chunk_differences(facts: list[Fact], skip: set[int]) -> list[Candidate]:
    """logic/simple: two values of one table column, or two quantities with one unit in one
    chunk, and their difference."""
    out, by_chunk = [], {}
    for i, f in enumerate(facts):
        if i not in skip and f.number is not None:
            by_chunk.setdefault(f.chunk_id, []).append(f)
    for chunk_facts in by_chunk.values():
        used: set[str] = set()
        for a in chunk_facts:
            for b in chunk_facts:
                if a is b or a.key in used or b.key in used or a.unit != b.unit or a.number <= b.number:
                    continue
                table = a.kind == b.kind == "cell" and a.meta.get("col") == b.meta.get("col") \
                    and a.meta.get("row") != b.meta.get("row") and rows_are_things(a)
                # two parallel statements ("M3 mows for 90 minutes ... M5 mows for 120 minutes")
                prose = a.kind == b.kind and a.kind in ("duration", "quantity", "money", "percent", "temperature") \
                    and a.context != b.context and word_jaccard(a.statement, b.statement) >= PARALLEL_WORDS
                if not (table or prose):
                    continue
                dec = max(a.decimals, b.decimals)
                diff = a.number - b.number
                what = f"column \"{a.meta['col']}\": {a.meta['row']} {a.answer}, {b.meta['row']} {b.answer}" if table \
                    else f"{a.answer} and {b.answer}"
                out.append(Candidate("logic/simple", a.lang, [a, b], computed_answer(a, diff, dec),
                                     f"{what}; {format_number(a.number, dec)} - {format_number(b.number, dec)} = "
                                     f"{format_number(diff, dec)}",
                                     {"op": "difference", "operands": [a.answer, b.answer], "result": diff,
                                      "table": table}))
                used.update((a.key, b.key))
                break
    return out


_ATTRIBUTE_FIRST = {"", "item", "items", "specification", "specifications", "spec", "feature", "parameter", "property",
                    "attribute", "setting", "项目", "参数", "规格", "指标", "属性", "设置"}


def rows_are_things(f: Fact) -> bool:
    """A table whose rows are things and whose columns are attributes ("| Item | Price |"): two
    rows of one column compare. Not when the rows are attributes of the thing a column names
    ("| Spec | Kestrel M5 |": mowing time minus recharge time means nothing)."""
    return not _CODE.search(f.meta.get("col", "")) and f.meta.get("first", "").strip().lower() not in _ATTRIBUTE_FIRST


_CODE = re.compile(r"[A-Za-z]+\d[\w.-]*|\d+[A-Za-z][\w-]*")



def recompute(c: Candidate) -> bool:
    """The recorded computation holds for the operands as they stand in the cited facts."""
    if not c.compute:
        return True
    nums = [parse_quantity(a) for a in c.compute["operands"]]
    if any(n is None for n in nums) or len({n[1] for n in nums}) != 1:
        return False
    value = sum(n[0] for n in nums) if c.compute.get("op") == "sum" else abs(nums[0][0] - nums[1][0])
    return abs(value - c.compute["result"]) < 1e-9 * max(1.0, abs(value))  # float error only
