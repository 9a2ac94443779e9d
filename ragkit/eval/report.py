"""From scored items to `report.json` and `report.md`, and the side-by-side comparison of two runs.

report.json keys (stable; tools and `ragkit report` read them):

    retrieval                 recall@1/5/10, mrr@10, ndcg@10, answer_in_context, n, recall_curve,
                              by_category, by_difficulty
    arms.<arm>                n, accuracy, em, f1, refusal_rate, repetition, answer_length,
                              completion_tokens, errors, ci95{accuracy, em, f1},
                              by_category.<cat>{n, accuracy, ..., ci95}, by_difficulty.<d>{...},
                              latency{mean_ms, p50_ms, p95_ms}, tokens_per_s, total_s, models,
                              judge{accuracy, n_graded, unparseable, unparseable_rate} (with --judge)
    pairwise.<b>_vs_<a>       a, b, metric, diff (b - a), ci95, n, significant (paired bootstrap);
                              oracle_vs_rag when both ran: how much retrieval's misses cost; a tuned
                              arm against an arm that reads the same way (sft_rag_vs_rag,
                              raft_rag_vs_sft_rag, ...) also by_group.{category:<c>, lang:<l>}{diff, ci95, n}
    retention.<arm>           accuracy, em, f1, n, ci95 (of accuracy) on the general bench
                              (only with --general-bench / eval.general_bench; ragkit.eval.retention)
    forgetting.<tuned_arm>    base, diff (tuned - base accuracy on the general bench), ci95, n
    skipped_arms.<arm>        why the arm was not run
    notes                     anything a reader must know (partial coverage, errors)
    config                    the settings of the run; config.tuned_arms.<arm>{recipe, adapters.<lang>}:
                              the recipe of each tuned arm's data and the adapter (or merged model) per language
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import UsageError
from . import judge as judge_mod
from .arms import ARMS
from .bench import DIFFICULTIES
from .metrics import bootstrap_ci, mean, paired_bootstrap, percentile
from .retrieval import aggregate

ANSWER_METRICS = ("accuracy", "em", "f1", "refusal_rate", "repetition", "answer_length")
_SCORE_OF = {"accuracy": "accuracy", "em": "em", "f1": "f1", "refusal_rate": "refused",
             "repetition": "repetition", "answer_length": "length"}


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def answer_summary(rows: Sequence[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of each answer metric over `rows` (each with a `scores` dict) and their 95% CIs."""
    out: dict = {"n": len(rows)}
    for name, key in _SCORE_OF.items():
        out[name] = _r(mean([r["scores"][key] for r in rows]))
    out["ci95"] = {
        m: (list(ci) if (ci := bootstrap_ci([r["scores"][m] for r in rows], n_boot, seed)) else None)
        for m in ("accuracy", "em", "f1")
    }
    return out


def _grouped(rows: Iterable[dict], field: str) -> dict[str, list[dict]]:
    """Rows by category (alphabetical) or difficulty (easy, medium, hard, simple, complex)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r[field]].append(r)
    order = {d: i for i, d in enumerate(DIFFICULTIES)} if field == "difficulty" else {}
    return dict(sorted(groups.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def arm_summary(rows: Sequence[dict], n_boot: int = 2000, seed: int = 0, judged: bool = False) -> dict:
    """Everything report.json says about one arm."""
    out = answer_summary(rows, n_boot, seed)
    out["completion_tokens"] = _r(mean([r.get("completion_tokens", 0) for r in rows]), 2)
    out["errors"] = sum(1 for r in rows if r.get("error"))
    for field, key in (("category", "by_category"), ("difficulty", "by_difficulty")):
        out[key] = {g: answer_summary(rs, n_boot, seed) for g, rs in _grouped(rows, field).items()}
    lat = [r["latency_ms"] for r in rows if r.get("latency_ms") is not None]
    out["latency"] = {"mean_ms": _r(mean(lat), 1), "p50_ms": _r(percentile(lat, 50), 1),
                      "p95_ms": _r(percentile(lat, 95), 1)}
    gen_s = sum((r.get("gen_ms") or r.get("latency_ms") or 0) for r in rows) / 1000
    toks = sum(r.get("completion_tokens", 0) for r in rows)
    out["tokens_per_s"] = _r(toks / gen_s, 1) if gen_s > 0 else None
    out["total_s"] = _r(sum(lat) / 1000, 2)
    out["models"] = sorted({r.get("model", "?") for r in rows})
    if judged:
        out["judge"] = judge_mod.summarize([r.get("judge") for r in rows])
    return out


def pairwise(rows_by_arm: dict[str, list[dict]], metric: str = "accuracy", n_boot: int = 2000,
             seed: int = 0) -> dict[str, dict]:
    """b - a for every pair of arms, over the items both answered; a comes first in the order
    closed_book, rag, sft, sft_rag, oracle, so "rag_vs_closed_book" is always the gain from retrieval
    and "oracle_vs_rag" what retrieval missed."""
    order = list(ARMS)
    arms = sorted(rows_by_arm, key=lambda a: (order.index(a) if a in order else len(order), a))
    out = {}
    for i, a in enumerate(arms):
        for b in arms[i + 1:]:
            res = pair_diff(rows_by_arm[a], rows_by_arm[b], metric, n_boot, seed)
            if res is not None:
                out[f"{b}_vs_{a}"] = {"a": a, "b": b, "metric": metric, **res}
                if tuned_comparison(a, b):
                    out[f"{b}_vs_{a}"]["by_group"] = group_diffs(rows_by_arm[a], rows_by_arm[b], metric, n_boot, seed)
    return out


def tuned_comparison(a: str, b: str) -> bool:
    """b is a tuned arm and a reads the same way (both retrieve, or neither): sft − closed_book,
    sft_rag − rag, raft_rag − rag, raft_rag − sft_rag. These get a per-category and per-language
    breakdown (`by_group`), the question a tuning recipe is judged by."""
    arm_a, arm_b = ARMS.get(a), ARMS.get(b)
    return bool(arm_a and arm_b and arm_b.tuned and arm_a.retrieves == arm_b.retrieves and arm_a.passages is None)


def group_diffs(rows_a: Sequence[dict], rows_b: Sequence[dict], metric: str, n_boot: int, seed: int) -> dict:
    """{"category:<c>" | "lang:<l>": pair_diff} of b - a within each category and each language."""
    out = {}
    for field in ("category", "lang"):
        groups_b = _grouped((r for r in rows_b if r.get(field)), field)
        for g, rs in groups_b.items():
            ids = {r["id"] for r in rs}
            res = pair_diff([r for r in rows_a if r["id"] in ids], rs, metric, n_boot, seed)
            if res is not None:
                out[f"{field}:{g}"] = res
    return out


def pair_diff(rows_a: Sequence[dict], rows_b: Sequence[dict], metric: str = "accuracy", n_boot: int = 2000,
              seed: int = 0) -> dict | None:
    """b - a in `metric` over the items both answered (paired bootstrap); None when none are shared."""
    sa = {r["id"]: r["scores"][metric] for r in rows_a}
    sb = {r["id"]: r["scores"][metric] for r in rows_b}
    common = [k for k in sa if k in sb]
    return paired_bootstrap([sa[k] for k in common], [sb[k] for k in common], n_boot, seed)


def retrieval_breakdown(rows: Sequence[dict]) -> dict:
    """Retrieval aggregates by category and difficulty, and recall@1..10 for the curve chart."""
    out = {
        "by_category": {g: aggregate(rs) for g, rs in _grouped(rows, "category").items()},
        "by_difficulty": {g: aggregate(rs) for g, rs in _grouped(rows, "difficulty").items()},
    }
    out["recall_curve"] = [
        _r(mean([float(r.get("first_relevant") is not None and r["first_relevant"] <= k) for r in rows]))
        for k in range(1, 11)
    ] if rows else []
    return out


def build_report(
    retrieval: dict | None,
    rows_by_arm: dict[str, list[dict]],
    config: dict,
    skipped: dict[str, str] | None = None,
    notes: list[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    judged = bool(config.get("judge"))
    report = {
        "retrieval": retrieval or {},
        "arms": {arm: arm_summary(rows, n_boot, seed, judged) for arm, rows in rows_by_arm.items() if rows},
        "pairwise": pairwise({a: r for a, r in rows_by_arm.items() if r}, "accuracy", n_boot, seed),
        "skipped_arms": dict(skipped or {}),
        "notes": list(notes or []),
        "config": config,
    }
    return report


# -- markdown ------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _ci(ci: Sequence[float] | None) -> str:
    return "" if not ci else f" [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}]"


def _num(x: float | None, fmt: str = "{:.0f}") -> str:
    return "–" if x is None else fmt.format(x)


def arms_table(report: dict) -> list[str]:
    """Arms × metrics: the one table a reader looks at first."""
    judged = any("judge" in a for a in report["arms"].values())
    head = ["arm", "n", "accuracy % [95% CI]", "EM %", "F1 %", "refusal %", "repetition %", "len",
            "p50 ms", "tok/s"] + (["judge %", "judge unparsed"] if judged else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, a in report["arms"].items():
        cells = [arm, str(a["n"]), _pct(a["accuracy"]) + _ci(a["ci95"].get("accuracy")), _pct(a["em"]),
                 _pct(a["f1"]), _pct(a["refusal_rate"]), _pct(a["repetition"]), _num(a["answer_length"], "{:.1f}"),
                 _num(a["latency"]["p50_ms"]), _num(a["tokens_per_s"], "{:.1f}")]
        if judged:
            j = a.get("judge") or {}
            cells += [_pct(j.get("accuracy")), str(j.get("unparseable", "–"))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def breakdown_table(report: dict, key: str = "by_category") -> list[str]:
    """Arms × categories (or difficulties): accuracy %, with n per group in the header."""
    groups: dict[str, int] = {}
    for a in report["arms"].values():
        for g, s in a[key].items():
            groups[g] = max(groups.get(g, 0), s["n"])
    if not groups:
        return []
    lines = ["| arm | " + " | ".join(f"{g} (n={n})" for g, n in groups.items()) + " |",
             "|---|" + "---|" * len(groups)]
    for arm, a in report["arms"].items():
        lines.append(f"| {arm} | " + " | ".join(_pct(a[key].get(g, {}).get("accuracy")) for g in groups) + " |")
    return lines


def render_markdown(report: dict, charts: Sequence[str] = ()) -> str:
    cfg = report.get("config", {})
    out = [f"# ragkit eval: {Path(str(cfg.get('bench', 'bench'))).name}", ""]
    settings = ", ".join(f"{k}={cfg[k]}" for k in ("k", "mode", "context_tokens", "reason", "max_tokens", "backend", "limit")
                         if cfg.get(k) is not None)
    if settings:
        out += [f"Settings: {settings}. Accuracy = an acceptable answer appears in the output (normalised).", ""]
    models = "; ".join(f"{arm}: {', '.join(a.get('models', []))}" for arm, a in report["arms"].items())
    if models:
        out += [f"Models: {models}.", ""]
    ret = report.get("retrieval") or {}
    if ret.get("n"):
        keys = [k for k in ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer_in_context") if k in ret]
        out += ["## Retrieval", "", "| n | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys),
                f"| {ret['n']} | " + " | ".join(f"{ret[k]:.3f}" for k in keys) + " |", ""]
    if cfg.get("tuned_arms"):
        out += ["## Tuned arms", "", "| arm | recipe | adapter |", "|---|---|---|"]
        for arm, t in cfg["tuned_arms"].items():
            adapters = "; ".join(f"{lang}: {a}" for lang, a in t["adapters"].items())
            out.append(f"| {arm} | {t['recipe'] or '?'} | {adapters} |")
        out.append("")
    if report["arms"]:
        out += ["## Answers by arm", ""] + arms_table(report) + [""]
        out += ["## Accuracy % by category", ""] + breakdown_table(report, "by_category") + [""]
        out += ["## Accuracy % by difficulty", ""] + breakdown_table(report, "by_difficulty") + [""]
    if report.get("pairwise"):
        out += ["## Differences between arms (accuracy, paired bootstrap)", "",
                "| comparison | diff (pts) | 95% CI | n | clear? |", "|---|---|---|---|---|"]
        for p in report["pairwise"].values():
            lo, hi = p["ci95"]
            out.append(f"| {p['b']} − {p['a']} | {100 * p['diff']:+.1f} | [{100 * lo:+.1f}, {100 * hi:+.1f}] "
                       f"| {p['n']} | {'yes' if p['significant'] else 'no'} |")
        out.append("")
        grouped = [p for p in report["pairwise"].values() if p.get("by_group")]
        if grouped:
            out += ["## Tuned arms against their comparisons, by category and language", "",
                    "| comparison | group | diff (pts) | 95% CI | n |", "|---|---|---|---|---|"]
            for p in grouped:
                for g, d in p["by_group"].items():
                    lo, hi = d["ci95"]
                    out.append(f"| {p['b']} − {p['a']} | {g} | {100 * d['diff']:+.1f} | "
                               f"[{100 * lo:+.1f}, {100 * hi:+.1f}] | {d['n']} |")
            out.append("")
    out += retention_tables(report)
    notes = [f"Arm `{a}` skipped: {why}" for a, why in report.get("skipped_arms", {}).items()]
    notes += report.get("notes", [])
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    for c in charts:  # paths relative to the markdown file
        out += [f"![{Path(c).stem}]({c})", ""]
    return "\n".join(out)


def retention_tables(report: dict) -> list[str]:
    """The "Retention (general bench)" section: each arm's general-bench accuracy beside its domain
    accuracy, then the forgetting differences; [] without a general bench."""
    ret = report.get("retention")
    if not ret:
        return []
    bench = Path(str((report.get("config") or {}).get("general_bench") or "the general bench")).name
    out = ["## Retention (general bench)", "",
           f"Each arm's generator on {bench}: the general ability tuning may cost, beside the domain accuracy.", "",
           "| arm | n | retention accuracy % [95% CI] | EM % | F1 % | domain accuracy % |", "|---|---|---|---|---|---|"]
    for arm, r in ret.items():
        dom = (report.get("arms") or {}).get(arm, {}).get("accuracy")
        out.append(f"| {arm} | {r['n']} | {_pct(r['accuracy'])}{_ci(r['ci95'])} | {_pct(r['em'])} | "
                   f"{_pct(r['f1'])} | {_pct(dom)} |")
    out.append("")
    if report.get("forgetting"):
        out += ["Forgetting: tuned minus base accuracy on the general bench (paired bootstrap; below 0 = lost).", "",
                "| comparison | diff (pts) | 95% CI | n |", "|---|---|---|---|"]
        for tuned, f in report["forgetting"].items():
            lo, hi = f["ci95"]
            out.append(f"| {tuned} − {f['base']} | {100 * f['diff']:+.1f} | [{100 * lo:+.1f}, {100 * hi:+.1f}] "
                       f"| {f['n']} |")
            for cat, c in (f.get("by_category") or {}).items():
                lo, hi = c["ci95"]
                out.append(f"| {tuned} − {f['base']}, {cat} | {100 * c['diff']:+.1f} | "
                           f"[{100 * lo:+.1f}, {100 * hi:+.1f}] | {c['n']} |")
        out.append("")
    return out


def write_report(out_dir: Path, report: dict, charts: Sequence[str] = ()) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(report, [Path(c).name for c in charts]), encoding="utf-8")


# -- comparing two runs --------------------------------------------------------------------------
def load_report(path: str | Path) -> dict:
    p = Path(path)
    f = p / "report.json" if p.is_dir() else p
    if not f.is_file():
        raise UsageError(f"no report.json in {path}; run 'ragkit eval ... --out {path}' first")
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UsageError(f"{f} is not valid JSON ({e.msg}); re-run the eval that wrote it") from None


def _pair(x, y) -> dict:
    diff = round(y - x, 4) if isinstance(x, (int, float)) and isinstance(y, (int, float)) else None
    return {"a": x, "b": y, "diff": diff}


def compare(a: dict, b: dict) -> dict:
    """Run A beside run B: retrieval metrics, per-arm metrics, per-category accuracy and, when either
    ran a general bench, retention accuracy per arm (diff = B - A)."""
    ra, rb = a.get("retrieval") or {}, b.get("retrieval") or {}
    ret_keys = [k for k in ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer_in_context")
                if k in ra or k in rb]
    arms = list(dict.fromkeys([*a.get("arms", {}), *b.get("arms", {})]))
    out = {"retrieval": {k: _pair(ra.get(k), rb.get(k)) for k in ret_keys}, "arms": {}, "by_category": {}}
    for arm in arms:
        xa, xb = a["arms"].get(arm, {}), b["arms"].get(arm, {})
        out["arms"][arm] = {m: _pair(xa.get(m), xb.get(m)) for m in ("n",) + ANSWER_METRICS}
        cats = list(dict.fromkeys([*xa.get("by_category", {}), *xb.get("by_category", {})]))
        out["by_category"][arm] = {
            c: _pair(xa.get("by_category", {}).get(c, {}).get("accuracy"),
                     xb.get("by_category", {}).get(c, {}).get("accuracy"))
            for c in cats
        }
    ta, tb = a.get("retention") or {}, b.get("retention") or {}
    if ta or tb:  # the general bench: what each run's arms kept
        out["retention"] = {arm: _pair((ta.get(arm) or {}).get("accuracy"), (tb.get(arm) or {}).get("accuracy"))
                            for arm in dict.fromkeys([*ta, *tb])}
    return out


def render_comparison(cmp: dict, name_a: str, name_b: str) -> str:
    def cell(p: dict, pct: bool = True) -> list[str]:
        f = _pct if pct else (lambda v: "–" if v is None else f"{v}")
        d = p["diff"]
        dd = "–" if d is None else (f"{100 * d:+.1f}" if pct else f"{d:+g}")
        return [f(p["a"]), f(p["b"]), dd]

    out = [f"A = {name_a}", f"B = {name_b}", ""]
    if cmp["retrieval"]:
        out += ["| retrieval | A | B | B − A |", "|---|---|---|---|"]
        out += [f"| {k} | " + " | ".join(cell(p)) + " |" for k, p in cmp["retrieval"].items()] + [""]
    if cmp["arms"]:
        out += ["| arm | metric | A | B | B − A |", "|---|---|---|---|---|"]
        for arm, ms in cmp["arms"].items():
            for m in ("n", "accuracy", "em", "f1", "refusal_rate", "repetition"):
                out.append(f"| {arm} | {m} | " + " | ".join(cell(ms[m], pct=m != "n")) + " |")
        out.append("")
        out += ["| arm | category | A acc % | B acc % | B − A |", "|---|---|---|---|---|"]
        for arm, cats in cmp["by_category"].items():
            out += [f"| {arm} | {c} | " + " | ".join(cell(p)) + " |" for c, p in cats.items()]
    if cmp.get("retention"):
        out += ["", "| arm | retention A % | retention B % | B − A |", "|---|---|---|---|"]
        out += [f"| {arm} | " + " | ".join(cell(p)) + " |" for arm, p in cmp["retention"].items()]
    return "\n".join(out)
