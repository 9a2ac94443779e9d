"""Does a drafted bench rank the systems as the hand-written bench does?

A bench is only useful if it orders the things it compares the way a trusted bench does. This
reads `ragkit eval` reports of the same systems (a model and an arm, e.g. qwen2.5-coder-0.5b/rag)
on two benches, lines their accuracies up side by side, and gives Kendall's tau-b between the two
orderings (1: the same order; ties count as in scipy's tau-b) and the pairs the benches order
differently. Results go to evals/results/bench-draft/agreement.json.

    python evals/bench_agreement.py \\
        --reference runs/agree/sample-0.5b/report.json runs/agree/sample-1.5b/report.json \\
        --drafted runs/agree/draft-0.5b/report.json runs/agree/draft-1.5b/report.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "evals" / "results" / "bench-draft" / "agreement.json"


def accuracies(reports: list[str]) -> tuple[dict[str, float], dict[str, int]]:
    """{"model/arm": accuracy} over the reports, and the number of items each answered."""
    acc, n = {}, {}
    for path in reports:
        r = json.loads(Path(path).read_text(encoding="utf-8"))
        models = set(r["config"]["models"].values())
        model = "+".join(sorted(models))
        for arm, m in r["arms"].items():
            acc[f"{model}/{arm}"] = m["accuracy"]
            n[f"{model}/{arm}"] = m["n"]
    return acc, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", nargs="+", required=True, help="eval report.json files on the hand-written bench")
    ap.add_argument("--drafted", nargs="+", required=True, help="the same systems' reports on the drafted bench")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    from scipy.stats import kendalltau

    ref, ref_n = accuracies(args.reference)
    dra, dra_n = accuracies(args.drafted)
    systems = sorted(set(ref) & set(dra))
    if len(systems) < 3:
        raise SystemExit(f"only {len(systems)} systems are in both sets of reports; need 3 or more")
    tau, p = kendalltau([ref[s] for s in systems], [dra[s] for s in systems])
    flipped = [(a, b) for a, b in itertools.combinations(systems, 2)
               if (ref[a] - ref[b]) * (dra[a] - dra[b]) < 0]
    print(f"{'system':<36} {'hand-written':>12} {'drafted':>8}")
    for s in sorted(systems, key=lambda s: -ref[s]):
        print(f"{s:<36} {ref[s]:>12.1%} {dra[s]:>8.1%}")
    print(f"Kendall tau-b {tau:.3f} (p {p:.3f}) over {len(systems)} systems; pairs ordered differently: "
          f"{len(flipped)} of {len(systems) * (len(systems) - 1) // 2}")
    for a, b in flipped:
        print(f"  {a} vs {b}: hand-written {ref[a] - ref[b]:+.1%}, drafted {dra[a] - dra[b]:+.1%}")
    out = {"systems": {s: {"reference": ref[s], "drafted": dra[s], "n_reference": ref_n[s], "n_drafted": dra_n[s]}
                       for s in systems},
           "kendall_tau_b": round(tau, 3), "p_value": round(p, 4), "flipped_pairs": flipped,
           "reference_reports": args.reference, "drafted_reports": args.drafted}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
