"""Write docs/results.md from the result files under evals/results/ (the page is generated: edit
this script or re-run the measurement, never the page).

    python evals/results_page.py           # rewrite docs/results.md
    python evals/results_page.py --check   # exit 1 when docs/results.md is not what this writes

Every JSON file under evals/results/ gets a section: an eval report (report.json) its arms and
their differences, retrieval, and config; a sweep (sweep.json) its cells; a list of measurement
rows (scale, one-file change) a table; anything else its scalar figures. Each section names the
file it came from and the command that made it, so every number on the page has a run behind it.
tests/unit/test_results_page.py fails when a result file changes and the page was not rewritten.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "evals" / "results"
PAGE = ROOT / "docs" / "results.md"

# How each result directory was made (the command that reproduces it) and what it measured.
SOURCES = {
    "sample-cpu": ("the sample bench's four arms on the CPU recipe", "ragkit run pipelines/sample-cpu.yaml"),
    "sample-cpu-qv-r8": ("the first sample-cpu run, LoRA rank 8 on q_proj and v_proj (its README.md tells the run)",
                         "ragkit run pipelines/sample-cpu.yaml, as it stood before the all-linear LoRA"),
    "sample-qwen": ("the sample bench on Qwen2.5-Coder-0.5B, oracle arm included",
                    "ragkit run pipelines/sample-qwen.yaml"),
    "sample-raft": ("RAFT against plain QA fine-tuning on Qwen2.5-Coder-0.5B: rag, sft_rag, raft_rag and oracle, "
                    "with retention (docs/raft.md; failures.md there reads raft_rag's failures)",
                    "ragkit run pipelines/sample-raft.yaml"),
    "sft-sweep": ("a sweep of LoRA and SFT-data settings: accuracy against forgetting",
                  "ragkit run pipelines/sft-sweep.yaml && ragkit report runs/sft-sweep"),
    "scale": ("ingest, query and one-file-change cost from 10k to 1M chunks, FAISS and Milvus",
              "python evals/perf/scale.py; python evals/perf/one_file_change.py"),
    "serve": ("ragkit serve under load against the Pipeline (with uploads beside the questions), and "
              "follow-up questions in a conversation against the same questions asked standalone",
              "python evals/perf/serve_load.py --mixed ...; python evals/conversation_followups.py ..."),
    "answer-settings": ("the answer path's settings side by side: whole chunks at k=3 against evidence selection "
                        "(200 tokens of k=5) with reasoning on auto, and 200 against 300 tokens (sample300); "
                        "accuracy, prompt tokens, first-token time",
                        "python evals/answer_settings.py ...; python evals/perf/answer_speed.py --save; "
                        "python evals/evidence_coverage.py ..."),
    "bench-draft": ("benches drafted from data/corpus, their hand readings, and the ranking of six systems on "
                    "the drafted bench against the hand-written one (README.md there)",
                    "ragkit bench draft --index IDX --out evals/results/bench-draft/draft-model-5.jsonl -n 150; "
                    "python evals/bench_agreement.py ..."),
    "embedders": ("all-MiniLM-L6-v2 against multilingual-e5-small: recall per bench and language, the two "
                  "e5 routes, ingest speed (docs/embedders.md)",
                  "python evals/embedder_recall.py ...; python evals/perf/e5_routes.py; python evals/perf/ingest_speed.py "
                  "--models all-minilm-l6-v2 multilingual-e5-small"),
    "reason": ("how often the reasoning router flags a question, against the bench's logic labels",
               "python evals/reason_route.py"),
    "raft": ("what RAFT data costs against plain QA data: tokens per epoch of sample-raft's two recipes "
             "(evidence selection included), and the training rate of both on the 1.5B side by side (docs/raft.md)",
             "python evals/perf/raft_train_rate.py --steps 0 --out evals/results/raft/tokens.json; "
             "python evals/perf/raft_train_rate.py --experiment COPY --base qwen2.5-coder-1.5b --steps 1 "
             "--out evals/results/raft/rate-1.5b.json (COPY: pipelines/sample-raft.yaml with raft.train batch_size 2 "
             "and gradient_checkpointing true)"),
}


def fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return f"[{fmt(v[0])}, {fmt(v[1])}]"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v).replace("|", "\\|")


def table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return out + [""]


def eval_report(d: dict) -> list[str]:
    lines = []
    arms = d.get("arms") or {}
    if arms:
        lines += ["Arms (accuracy: the answer contains a gold answer; ci95: bootstrap interval):", ""]
        lines += table(["arm", "n", "accuracy", "ci95", "EM", "F1", "refused"],
                       [[a, s.get("n"), s.get("accuracy"), (s.get("ci95") or {}).get("accuracy"), s.get("em"),
                         s.get("f1"), s.get("refusal_rate")] for a, s in arms.items()])
        cats = sorted({c for s in arms.values() for c in (s.get("by_category") or {})})
        if cats:
            lines += ["Accuracy by category:", ""]
            lines += table(["arm", *cats], [[a, *[(s.get("by_category") or {}).get(c, {}).get("accuracy")
                                                  for c in cats]] for a, s in arms.items()])
    pairs = d.get("pairwise") or {}
    if pairs:
        lines += ["Differences (b minus a, paired over items):", ""]
        lines += table(["a", "b", "metric", "diff", "ci95", "n", "significant"],
                       [[p.get("a"), p.get("b"), p.get("metric"), p.get("diff"), p.get("ci95"), p.get("n"),
                         p.get("significant")] for p in pairs.values()])
    r = d.get("retrieval") or {}
    if r:
        keys = [k for k in ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer_in_context", "n")
                if k in r]
        lines += ["Retrieval:", ""] + table(keys, [[r[k] for k in keys]])
    for key in ("retention", "forgetting"):
        if d.get(key):
            lines += [f"{key.capitalize()} (general bench):", ""]
            lines += table(["arm", "figures"], [[a, {k: v for k, v in s.items() if k != "by_category"}]
                                                 for a, s in d[key].items()])
    cfg = d.get("config") or {}
    keep = {k: cfg[k] for k in ("arms", "models", "adapters", "k", "mode", "max_tokens", "n_items", "bench")
            if k in cfg}
    if keep:
        lines += ["Settings: " + ", ".join(f"{k} = {fmt(v)}" for k, v in keep.items()), ""]
    if d.get("notes"):
        lines += ["Notes: " + "; ".join(map(str, d["notes"])), ""]
    return lines


def settings_compared(d: dict) -> list[str]:
    """evals/answer_settings.py: one row per answer setting, the first the baseline of the differences."""
    head = [f"{k}: {fmt(v)}" for k, v in d.items() if k != "settings"]
    cats = sorted({c for x in d["settings"] for c in x.get("by_category") or {}})
    rows = []
    for x in d["settings"]:
        diff = x.get("vs_first") or {}
        rows.append([", ".join(f"{k}={v}" for k, v in x["setting"].items()), x.get("n"), x.get("accuracy"),
                     x.get("ci95"), x.get("f1"), *[(x.get("by_category") or {}).get(c) for c in cats],
                     x.get("prompt_tokens_p50"),
                     f"{diff['diff']:+.3f} {fmt(diff['ci95'])}" if diff else "–"])
    return ["; ".join(head), ""] + table(["setting", "n", "accuracy", "95% CI", "F1", *cats,
                                          "prompt tokens p50", "accuracy − first [95% CI]"], rows)


def sweep(d: dict) -> list[str]:
    arms = sorted({a for c in d.get("cells", []) for a in (c.get("arms") or {})})
    rows = []
    for c in d.get("cells", []):
        forget = {a: f.get("diff") for a, f in (c.get("forgetting") or {}).items()}
        rows.append([c.get("cell"), c.get("status"), c.get("settings"),
                     *[(c.get("arms") or {}).get(a, {}).get("accuracy") for a in arms], forget or None])
    return ["Cells (accuracy per arm; forgetting: tuned minus base on the general bench):", ""] + \
        table(["cell", "status", "settings", *arms, "forgetting"], rows)


def rows_table(d: list) -> list[str]:
    keys = list(dict.fromkeys(k for r in d for k in r))
    return table(keys, [[r.get(k) for k in keys] for r in d])


def scalars(d: dict, prefix: str = "") -> list[list]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += scalars(v, f"{prefix}{k}.")
        elif not isinstance(v, list) or len(v) <= 2:
            out.append([f"{prefix}{k}", v])
    return out


def section(path: Path) -> list[str]:
    d = json.loads(path.read_text(encoding="utf-8"))
    rel = path.relative_to(ROOT).as_posix()
    lines = [f"### `{rel}`", ""]
    if isinstance(d, dict) and "arms" in d and "retrieval" in d:
        lines += eval_report(d)
    elif isinstance(d, dict) and "cells" in d:
        lines += sweep(d)
    elif isinstance(d, dict) and isinstance(d.get("settings"), list) and all("setting" in x for x in d["settings"]):
        lines += settings_compared(d)
    elif isinstance(d, list) and all(isinstance(r, dict) for r in d):
        lines += rows_table(d)
    elif isinstance(d, dict):
        lines += table(["figure", "value"], scalars(d))
    else:
        lines += [f"(a {type(d).__name__}; see the file)", ""]
    return lines


def render() -> str:
    lines = ["# Results", "",
             "Generated by `python evals/results_page.py` from the JSON files under `evals/results/`; do not",
             "edit by hand (`tests/unit/test_results_page.py` fails when the page and the files disagree).",
             "Each section names the run that produced it. Timings come from shared 2-core machines unless a",
             "section says otherwise: compare figures within one file, not across files.", ""]
    for folder in sorted(p for p in RESULTS.iterdir() if p.is_dir()):
        files = sorted(folder.rglob("*.json"))
        if not files:
            continue
        what, how = SOURCES.get(folder.name, ("", ""))
        lines += [f"## {folder.name}", ""]
        if what:
            lines += [f"{what[0].upper()}{what[1:]}. Reproduce: `{how}`.", ""]
        others = sorted(p.relative_to(ROOT).as_posix() for p in folder.rglob("*") if p.suffix in (".md", ".png"))
        if others:
            lines += ["Also in the folder: " + ", ".join(f"[{Path(o).name}](../{o})" for o in others), ""]
        for f in files:
            lines += section(f)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/results.md is out of date")
    args = ap.parse_args()
    page = render()
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != page:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python evals/results_page.py", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)} ({len(page.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
