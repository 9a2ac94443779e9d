"""`ragkit report runs/<sweep>/`: a sweep's cells side by side, and the chart that answers what
fine-tuning costs: domain accuracy of the sft arm (x) against its retention of general ability (y).

Per cell, from cells/<cell>/: the settings that differ between cells (the keys any cell's `set`
names, with each cell's value from its config.yaml), domain accuracy per arm with its 95% CI
(eval/report.json "arms"), retention per arm and forgetting per tuned arm with CIs (report.json
"retention" and "forgetting", written when the eval had a general bench; absent keys show as –),
and the train step's wall time and examples (state.json, adapters/<lang>/train_summary.json; the
raft_train step's too, adapters-raft/, in an experiment with `raft:`).

Writes sweep.md, sweep.json (this table) and sweep.png into the sweep directory.

    from ragkit.experiment.sweep_report import sweep_report, write_sweep_report
    write_sweep_report(Path("runs/sft-sweep"), sweep_report(Path("runs/sft-sweep")))
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError
from ..eval.arms import ARMS
from ..eval.charts import tradeoff_chart
from .sweep import DESIGN

# The tuned arm that reads nothing (what the adapter itself learned and lost) against its untuned twin.
CHART_ARM = next(a.name for a in ARMS.values() if a.tuned and not a.reads_index)
BASE_ARM = ARMS[CHART_ARM].untuned


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def lookup(d: dict, key: str):
    """d["a"]["b"] for key "a.b"; None where a part is missing."""
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _acc(stats: dict | None) -> dict | None:
    if not stats:
        return None
    ci = stats.get("ci95")
    ci = ci.get("accuracy") if isinstance(ci, dict) else ci  # arms keep ci95 per metric; retention one list
    return {"accuracy": stats.get("accuracy"), "ci95": ci, "n": stats.get("n")}


def train_info(cell_dir: Path, state: dict, step: str = "train", folder: str = "adapters") -> dict:
    """A training step's wall time, whether it came from the shared cache, and its examples
    (`step`/`folder`: raft_train / adapters-raft for the raft_rag arm's adapters)."""
    t = (state.get("steps") or {}).get(step) or {}
    examples = None
    for lang in (t.get("adapters") or {}):
        s = _read_json(cell_dir / folder / lang / "train_summary.json")
        n = lookup(s or {}, "data.train_examples")
        if n is not None:
            examples = (examples or 0) + n
    return {"seconds": t.get("seconds"), "cached": bool(t.get("cached")), "examples": examples,
            "sft_rows": ((state.get("steps") or {}).get("sft_data") or {}).get("rows")}


def cell_row(root: Path, cell: dict, keys: list[str]) -> dict:
    import yaml

    d = root / cell.get("dir", f"cells/{cell['name']}")
    cfg_file = d / "config.yaml"
    # the config the cell ran with, else the one the design resolved (a cell not run yet)
    cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else cell.get("config")
    own = cell.get("set") or {}
    settings = {k: (lookup(cfg, k) if cfg is not None else own.get(k)) for k in keys}
    state = _read_json(d / "state.json") or {}
    report = _read_json(d / "eval" / "report.json")
    status = "done" if report is not None and "eval" in (state.get("steps") or {}) else (
        "not run" if not state else "incomplete")
    report = report or {}
    return {
        "cell": cell["name"], "dir": str(d), "status": status, "settings": settings,
        "arms": {a: _acc(s) for a, s in (report.get("arms") or {}).items()},
        "retention": {a: _acc(s) for a, s in (report.get("retention") or {}).items()},
        "forgetting": {a: {k: f.get(k) for k in ("base", "diff", "ci95", "n", "by_category")}
                       for a, f in (report.get("forgetting") or {}).items()},
        "train": train_info(d, state),
        **({"raft_train": train_info(d, state, "raft_train", "adapters-raft")}
           if "raft_train" in (state.get("steps") or {}) else {}),
    }


def sweep_report(root: str | Path) -> dict:
    """Every cell of the sweep in `root` (its design.json), run or not."""
    root = Path(root)
    design = _read_json(root / DESIGN)
    if not design or not isinstance(design.get("cells"), list):
        raise UsageError(f"{root} is not a sweep directory (no readable {DESIGN}); `ragkit run SWEEP.yaml` makes one")
    keys = list(dict.fromkeys(str(k) for c in design["cells"] for k in (c.get("set") or {})))
    rows = [cell_row(root, c, keys) for c in design["cells"]]
    return {"name": design.get("name"), "sweep_dir": str(root), "varied": keys, "cells": rows}


# -- markdown --------------------------------------------------------------------------------------
def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _with_ci(s: dict | None) -> str:
    if not s or s.get("accuracy") is None:
        return "–"
    ci = s.get("ci95")
    return _pct(s["accuracy"]) + (f" [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}]" if ci else "")


def _diff(f: dict | None) -> str:
    if not f or f.get("diff") is None:
        return "–"
    ci = f.get("ci95")
    return f"{100 * f['diff']:+.1f}" + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")


def _columns(report: dict, field: str) -> list[str]:
    return list(dict.fromkeys(a for r in report["cells"] for a in r[field]))


def sweep_table(report: dict) -> list[str]:
    arms, ret, forg = (_columns(report, f) for f in ("arms", "retention", "forgetting"))
    head = (["cell", *[k.split(".")[-1] for k in report["varied"]], *[f"{a} % [95% CI]" for a in arms],
             *[f"retention {a} %" for a in ret], *[f"forgetting {a} − {report_base(report, a)} (pts)" for a in forg],
             "train s", "examples"])
    raft = any("raft_train" in r for r in report["cells"])
    head += ["raft train s", "raft examples", "status"] if raft else ["status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["cells"]:
        trains = [r["train"], *([r.get("raft_train") or {"seconds": None, "cached": False, "examples": None}]
                                if raft else [])]
        cells = [r["cell"], *[_value(r["settings"].get(k)) for k in report["varied"]],
                 *[_with_ci(r["arms"].get(a)) for a in arms], *[_with_ci(r["retention"].get(a)) for a in ret],
                 *[_diff(r["forgetting"].get(a)) for a in forg],
                 *[c for t in trains for c in _train_cells(t)], r["status"]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _train_cells(t: dict) -> list[str]:
    secs = "–" if t["seconds"] is None else f"{t['seconds']:.0f}" + (" (shared)" if t["cached"] else "")
    return [secs, "–" if t["examples"] is None else str(t["examples"])]


def forgetting_by_category_table(report: dict) -> list[str]:
    """Forgetting per general-bench category and cell: one category can lose what another gains
    (closed-book recall against reading with passages), which the overall figure hides."""
    rows = [(r["cell"], a, cat, c) for r in report["cells"] for a, f in r["forgetting"].items()
            for cat, c in (f.get("by_category") or {}).items()]
    cats = list(dict.fromkeys(cat for _, _, cat, _ in rows))
    if not cats:
        return []
    out = ["Forgetting by category of the general bench (points, paired bootstrap 95% CI):", "",
           "| cell | arm | " + " | ".join(cats) + " |", "|---|---|" + "---|" * len(cats)]
    for cell, arm in dict.fromkeys((c, a) for c, a, _, _ in rows):
        by = {cat: c for c2, a2, cat, c in rows if (c2, a2) == (cell, arm)}
        out.append(f"| {cell} | {arm} | " + " | ".join(_diff(by.get(cat)) for cat in cats) + " |")
    return out


def report_base(report: dict, arm: str) -> str:
    bases = {r["forgetting"][arm].get("base") for r in report["cells"] if arm in r["forgetting"]}
    return "/".join(sorted(str(b) for b in bases if b)) or "base"


def _value(v) -> str:
    return "–" if v is None else (",".join(map(str, v)) if isinstance(v, list) else str(v))


def render_sweep_markdown(report: dict, chart: str | None) -> str:
    out = [f"# Sweep {report['name']}", "",
           "Accuracy = an acceptable answer appears in the output (normalised), 95% bootstrap CIs. "
           "Retention: the same arms on the general bench; forgetting: tuned arm minus base arm on it, "
           "paired bootstrap (negative = ability lost).", ""]
    out += sweep_table(report) + [""]
    if extra := forgetting_by_category_table(report):
        out += extra + [""]
    if not any(r["retention"] for r in report["cells"]):
        out += ["No cell has retention figures yet (the eval had no eval.general_bench).", ""]
    if chart:
        out += [f"![{Path(chart).stem}]({chart})", ""]
    return "\n".join(out)


# -- the chart -------------------------------------------------------------------------------------
def _point(label: str, x: dict | None, y: dict | None):
    """A charts.tradeoff_chart point from two accuracies with their CIs; None when either is missing."""
    if not x or not y or x.get("accuracy") is None or y.get("accuracy") is None:
        return None
    return (label, x["accuracy"], x.get("ci95"), y["accuracy"], y.get("ci95"))


def sweep_chart(report: dict, path: Path) -> Path | None:
    """Domain accuracy of the sft arm (x) against its retention (y), one labelled point per cell with
    CI bars both ways, and the base model (closed_book on both benches) as the reference."""
    pts = [p for r in report["cells"] if (p := _point(r["cell"], r["arms"].get(CHART_ARM), r["retention"].get(CHART_ARM)))]
    if not pts:
        return None
    base = next((p for r in report["cells"]
                 if (p := _point(f"base ({BASE_ARM})", r["arms"].get(BASE_ARM), r["retention"].get(BASE_ARM)))), None)
    return tradeoff_chart(pts + ([base] if base else []), path,
                          f"Sweep {report['name']}: knowledge gained against ability kept",
                          xlabel=f"domain accuracy, {CHART_ARM} arm % (95% CI)",
                          ylabel=f"retention accuracy, {CHART_ARM} arm % (95% CI)")


def write_sweep_report(root: Path, report: dict) -> list[str]:
    """sweep.json, sweep.png (when a cell has both figures) and sweep.md in `root`; the files written."""
    root = Path(root)
    chart = sweep_chart(report, root / "sweep.png")
    if chart is None and (root / "sweep.png").exists():
        (root / "sweep.png").unlink()  # a chart from an earlier report would not match this table
    files = [root / "sweep.json", root / "sweep.md"] + ([chart] if chart else [])
    (root / "sweep.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str),
                                            encoding="utf-8")
    (root / "sweep.md").write_text(render_sweep_markdown(report, chart.name if chart else None), encoding="utf-8")
    return [str(f) for f in files]
