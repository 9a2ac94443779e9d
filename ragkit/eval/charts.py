"""PNG charts for an eval report (matplotlib, Agg backend: no display needed).

- accuracy.png: accuracy by arm and category, grouped bars with 95% bootstrap error bars, plus an
  "all" group for each arm's overall accuracy.
- recall.png: retrieval recall@k for k = 1..10 (share of questions with a gold source in the top k).

    python -m ragkit.eval.charts runs/x/eval/report.json   # redraws the charts beside the report
"""

from __future__ import annotations

from pathlib import Path


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_charts(report: dict, out_dir: Path) -> list[str]:
    """Draw every chart the report has data for; return the files written."""
    out = []
    for fn, name in ((accuracy_chart, "accuracy.png"), (recall_chart, "recall.png")):
        p = fn(report, Path(out_dir) / name)
        if p is not None:
            out.append(str(p))
    return out


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    f = Path(sys.argv[1])
    print("\n".join(write_charts(json.loads(f.read_text(encoding="utf-8")), f.parent)))
