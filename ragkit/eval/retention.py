"""The retention bench: what fine-tuning cost in general ability, measured beside what it gained.

With `general_bench` (`ragkit eval --general-bench FILE`, pipeline key `eval.general_bench`), every
arm that answered the domain bench also answers a second bench of general items, with the same
generator as on the domain bench (model or adapter per language, decoding, k, prompts):

    closed_book, rag   the base model          sft, sft_rag   the tuned model (adapter)
    rag, sft_rag       retrieve from the domain index (the refusal threshold applies, as in use)
    every arm          an item's own `context` when it has one (reading comprehension)
    oracle             context when present, else closed-book: a general item has no gold chunk in
                       the domain index, so the oracle is the base model reading what the item gives

Rows go to OUT/retention_items.jsonl and are resumed by key like items.jsonl. report.json gains

    retention.<arm>       accuracy, em, f1, n, ci95 (of accuracy; bootstrap as the arm summaries),
                          by_category.<cat>: accuracy, n, ci95
    forgetting.<tuned>    base, diff (tuned - base accuracy on the general bench), ci95, n (paired
                          bootstrap over the items both answered): sft against closed_book, sft_rag
                          against rag, where both ran. A negative diff is general ability lost.
                          by_category.<cat>: diff, ci95, n (on the sample run, sft lost 22 points of
                          closed-book recall and gained 22 in reading: 0 overall hid both)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..lang import detect_language
from ..progress import Progress
from .answering import answer_arms, write_items
from .arms import forgetting_pairs, plan_arms
from .bench import load_bench
from .config import EvalConfig
from .report import answer_summary, pair_diff

RETENTION_ITEMS = "retention_items.jsonl"


def run_retention(config: EvalConfig, arms: list[str], index, load_generator: Callable, progress: Progress,
                  out: Path, log: Callable[[str], None], notes: list[str]) -> dict[str, list[dict]]:
    """Answer the general bench with each of `arms`; scored rows by arm. Notes for the report
    (partial coverage, failed items) are appended to `notes`."""

    # `limit` bounds the domain bench only: a retention set is small (data/general: 100 items) and a
    # slice of it would widen the forgetting CI that is the point of running it
    items = load_bench(config.general_bench, general=True)  # general items may have no sources
    langs = {it.id: detect_language(it.question) for it in items}
    plan, skipped, plan_notes = plan_arms(config, arms, langs)
    notes += [f"retention: {n}" for n in plan_notes if n not in notes]  # not the domain run's again
    notes += [f"retention: arm {a} not run ({why})" for a, why in skipped.items()]
    path = out / RETENTION_ITEMS
    rows_by_arm, reused = answer_arms(config, plan, items, langs, index, load_generator, progress, path)
    if reused:
        log(f"Reused {reused} finished general-bench item(s) from {path}")
    for a, rows in rows_by_arm.items():
        if n := sum(1 for r in rows if r.get("error")):
            notes.append(f"retention: {a}: {n} item(s) failed (prompt too long) and count as wrong; "
                         f"see {RETENTION_ITEMS}")
    write_items(path, [r for rs in rows_by_arm.values() for r in rs])
    return rows_by_arm


def retention_summary(rows_by_arm: dict[str, list[dict]], n_boot: int = 2000, seed: int = 0) -> dict:
    """{arm: {accuracy, em, f1, n, ci95}}, ci95 being accuracy's bootstrap interval."""
    out = {}
    for arm, rows in rows_by_arm.items():
        if rows:
            s = answer_summary(rows, n_boot, seed)
            out[arm] = {"accuracy": s["accuracy"], "em": s["em"], "f1": s["f1"], "n": s["n"],
                        "ci95": s["ci95"]["accuracy"], "by_category": {}}
            for cat in sorted({r["category"] for r in rows}):
                c = answer_summary([r for r in rows if r["category"] == cat], n_boot, seed)
                out[arm]["by_category"][cat] = {"accuracy": c["accuracy"], "n": c["n"], "ci95": c["ci95"]["accuracy"]}
    return out


def forgetting(rows_by_arm: dict[str, list[dict]], n_boot: int = 2000, seed: int = 0) -> dict:
    """{tuned arm: {base, diff, ci95, n}}: tuned minus base accuracy on the general bench."""
    out = {}
    for tuned, base in forgetting_pairs():
        if rows_by_arm.get(tuned) and rows_by_arm.get(base):
            res = pair_diff(rows_by_arm[base], rows_by_arm[tuned], "accuracy", n_boot, seed)
            if res is not None:
                out[tuned] = {"base": base, "diff": res["diff"], "ci95": res["ci95"], "n": res["n"], "by_category": {}}
                # one category can lose what another gains: reading with passages against closed-book recall
                for cat in sorted({r["category"] for r in rows_by_arm[tuned]}):
                    part = pair_diff([r for r in rows_by_arm[base] if r["category"] == cat],
                                     [r for r in rows_by_arm[tuned] if r["category"] == cat], "accuracy", n_boot, seed)
                    if part is not None:
                        out[tuned]["by_category"][cat] = {"diff": part["diff"], "ci95": part["ci95"], "n": part["n"]}
    return out


def retention_report(rows_by_arm: dict[str, list[dict]], n_boot: int = 2000, seed: int = 0) -> dict:
    """The two report.json keys the general bench adds."""
    return {"retention": retention_summary(rows_by_arm, n_boot, seed),
            "forgetting": forgetting(rows_by_arm, n_boot, seed)}
