"""`ragkit bench check-leakage BENCH SFT_DATA`: the nearest training question to each bench item.

Facts may be shared between a bench and SFT data (teaching them is the point of SFT); questions
may not, or the sft arms are scored on their training set. For every bench item, each of its forms
(the question, and the `fingerprints` a drafted item carries) is compared with every training
question, with and without the training question's document anchor, by the measures the leakage
guard of `build-sft-data --exclude-bench` uses (ragkit.sftdata.filters.BenchGuard, leak_scores). The
guard is loose on purpose (dropping a training pair costs little), so this check asks one thing more
before it calls a pair a leak: the training answer holds one of the bench item's answers. "What is
the weight of the X2?" beside "What is the top speed of the X2?" is alike in wording but another
fact; the same question reworded has the same answer. Training questions are read from any format
`ragkit train` reads (alpaca, sharegpt, messages; every user turn).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..eval.bench import load_bench
from ..eval.metrics import contains_answer
from ..sftdata.filters import BenchGuard, char_ngrams, leak_scores, strip_anchor
from ..train.data import detect_format, read_records, record_pairs


def training_pairs(path: str | Path) -> list[tuple[str, str]]:
    """Every (user turn, reply) of an SFT data file."""

    out = []
    for _, rec in read_records(Path(path)):
        fmt = detect_format(rec)
        out += record_pairs(rec, fmt) if fmt else []
    return out


def check_leakage(bench: str | Path, sft_data: str | Path) -> dict:
    """{bench, sft_data, training_questions, leaks, items: [{id, question, nearest, jaccard,
    containment, leak}]}: per bench item the closest training question and whether it leaks
    (alike by the guard's measures, and answered with one of the item's answers)."""

    items = load_bench(bench)
    pairs = training_pairs(sft_data)
    questions = [q for q, _ in pairs]
    guard = BenchGuard([])
    grams: list[set[str]] = []
    postings: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        g = char_ngrams(q) | char_ngrams(strip_anchor(q))
        grams.append(g)
        for gram in g:
            postings.setdefault(gram, []).append(i)
    rows = []
    for it in items:
        best = {"id": it.id, "question": it.question, "nearest": None, "jaccard": 0.0, "containment": 0.0,
                "leak": False}
        for form in dict.fromkeys([it.question, *(it.fingerprints or [])]):
            bg = char_ngrams(form)
            shared = Counter(j for gram in bg for j in postings.get(gram, ()))
            for j, _ in shared.most_common(50):
                for text in dict.fromkeys([questions[j], strip_anchor(questions[j])]):
                    jac, cont, longer = leak_scores(char_ngrams(text), bg)
                    leak = guard.is_leak(jac, cont, longer) and contains_answer(pairs[j][1], it.answers) > 0
                    if (leak, jac) > (best["leak"], best["jaccard"]):
                        best.update(nearest=questions[j], jaccard=round(jac, 3), containment=round(cont, 3), leak=leak)
        rows.append(best)
    return {"bench": str(bench), "sft_data": str(sft_data), "training_questions": len(questions),
            "leaks": sum(r["leak"] for r in rows), "items": rows}
