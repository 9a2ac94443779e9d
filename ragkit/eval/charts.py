"""PNG charts for an eval report (matplotlib, Agg backend: no display needed).

- accuracy.png: accuracy by arm and category, grouped bars with 95% bootstrap error bars, plus an
  "all" group for each arm's overall accuracy.
- recall.png: retrieval recall@k for k = 1..10 (share of questions with a gold source in the top k).
- retention.png (with a general bench only): domain accuracy (x) against retention accuracy on the
  general bench (y), one point per arm, 95% CI bars both ways: up and right is better; a tuned arm
  to the right of and below its base arm learned the domain and forgot general ability.
  `tradeoff_chart` draws the same picture for any labelled points (a sweep's cells).

    python -m ragkit.eval.charts runs/x/eval/report.json   # redraws the charts beside the report
"""

from __future__ import annotations

from pathlib import Path


def save_figure(plt, fig, path: Path) -> Path:
    """Lay out, write as PNG and close: every chart ends this way."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # before pyplot is imported: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def accuracy_chart(report: dict, path: Path) -> Path | None:
    arms = report.get("arms") or {}
    if not arms:
        return None
    plt = _plt()
    cats = list(dict.fromkeys(c for a in arms.values() for c in a["by_category"]))
    groups = ["all", *cats]
    width = 0.8 / len(arms)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) * max(1, len(arms)) / 2 + 2), 4))
    for i, (arm, a) in enumerate(arms.items()):
        stats = [a] + [a["by_category"].get(c) for c in cats]
        ys, lo, hi = [], [], []
        for s in stats:
            acc = s.get("accuracy") if s else None
            ci = (s or {}).get("ci95", {}).get("accuracy")
            ys.append(100 * (acc or 0.0))
            lo.append(100 * (acc - ci[0]) if ci and acc is not None else 0.0)
            hi.append(100 * (ci[1] - acc) if ci and acc is not None else 0.0)
        xs = [g + (i - (len(arms) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=arm)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=20, ha="right")
    ax.set_ylabel("accuracy % (95% CI)")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy by arm and category")
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def recall_chart(report: dict, path: Path) -> Path | None:
    curve = (report.get("retrieval") or {}).get("recall_curve") or []
    if not curve:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ks = list(range(1, len(curve) + 1))
    ax.plot(ks, [100 * v for v in curve], marker="o")
    ax.set_xticks(ks)
    ax.set_xlabel("k (chunks retrieved)")
    ax.set_ylabel("recall@k %")
    ax.set_ylim(0, 100)
    ax.set_title(f"Retrieval recall@k ({report['config'].get('mode', '')})")
    ax.grid(alpha=0.3)
    return save_figure(plt, fig, path)


Point = tuple[str, float, "list[float] | None", float, "list[float] | None"]  # label, x, x ci95, y, y ci95


def tradeoff_chart(points: list[Point], path: Path, title: str, xlabel: str = "domain accuracy % (95% CI)",
                   ylabel: str = "retention accuracy % (95% CI)") -> Path | None:
    """One labelled point per (label, x, x_ci, y, y_ci) (fractions, CIs as [lo, hi] or None), with
    error bars in both directions."""
    if not points:
        return None
    plt = _plt()

    def bar(v, ci):
        return [[100 * (v - ci[0])], [100 * (ci[1] - v)]] if ci else None

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for label, x, xci, y, yci in points:
        ax.errorbar([100 * x], [100 * y], xerr=bar(x, xci), yerr=bar(y, yci), fmt="o", capsize=3, label=label)
        ax.annotate(label, (100 * x, 100 * y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlim(-3, 103)  # a point at 0 or 100% stays whole
    ax.set_ylim(-3, 103)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def retention_chart(report: dict, path: Path) -> Path | None:
    arms, ret = report.get("arms") or {}, report.get("retention") or {}
    points = [(arm, arms[arm]["accuracy"], arms[arm]["ci95"].get("accuracy"), r["accuracy"], r["ci95"])
              for arm, r in ret.items()
              if arm in arms and arms[arm].get("accuracy") is not None and r.get("accuracy") is not None]
    return tradeoff_chart(points, path, "Domain accuracy against retention, by arm")


def write_charts(report: dict, out_dir: Path) -> list[str]:
    """Draw every chart the report has data for; return the files written."""
    out = []
    for fn, name in ((accuracy_chart, "accuracy.png"), (recall_chart, "recall.png"),
                     (retention_chart, "retention.png")):
        p = fn(report, Path(out_dir) / name)
        if p is not None:
            out.append(str(p))
    return out


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    f = Path(sys.argv[1])
    print("\n".join(write_charts(json.loads(f.read_text(encoding="utf-8")), f.parent)))
