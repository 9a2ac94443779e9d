"""How often a bench answer survives evidence selection: the share of questions whose acceptable
answer string appears in the passages shown, at several `context_tokens` budgets against whole
chunks. No model runs (tokens are counted with the model's tokenizer only), so it takes seconds and
is the cheap companion of evals/answer_settings.py when choosing the budget; it cannot see a
computed answer (logic questions whose answer is not written in the corpus count as lost at every
budget alike).

    python evals/evidence_coverage.py --index .ragkit/demo-index --bench data/bench/sample.jsonl --name sample
    python evals/evidence_coverage.py --index .ragkit/cmrc-index --bench .ragkit/cmrc/bench.jsonl --limit 200 --name cmrc
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--budgets", default="120,160,200,250,300,400")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b", help="whose tokenizer counts the budget")
    args = ap.parse_args()

    from llama_cpp import Llama

    from ragkit import Index
    from ragkit.eval.metrics import contains_answer
    from ragkit.evidence import select_evidence
    from ragkit.models import resolve_llm

    vocab = Llama(str(resolve_llm(args.model)[1]), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False))

    index = Index.open(args.index)
    items = [json.loads(x) for x in Path(args.bench).read_text(encoding="utf-8").splitlines() if x.strip()]
    items = items[: args.limit] if args.limit else items
    rows = [(it, index.search(it["question"], k=args.k)) for it in items]
    result = {"bench": args.bench, "n": len(items), "k": args.k, "budgets": {}}
    for label, budget, k in [("whole k=3", None, 3), (f"whole k={args.k}", None, args.k),
                             *[(b, int(b), args.k) for b in args.budgets.split(",")]]:
        found, tokens, by_cat = 0, [], {}
        for it, hits in rows:
            shown = select_evidence(it["question"], hits[:k], budget, count)
            ok = any(contains_answer(h.text, it["answers"]) for h in shown)
            found += ok
            tokens.append(sum(count(h.text) for h in shown))
            by_cat.setdefault(it.get("category", "-"), []).append(ok)
        result["budgets"][str(label)] = {
            "answer_shown": round(found / len(rows), 3), "evidence_tokens_p50": statistics.median(tokens),
            "by_category": {c: round(sum(v) / len(v), 3) for c, v in sorted(by_cat.items())},
        }
        print(label, result["budgets"][str(label)])
    dest = Path("evals/results/answer-settings") / f"coverage-{args.name}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
