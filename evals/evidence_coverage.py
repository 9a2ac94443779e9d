"""How often a bench answer survives evidence selection: the share of questions whose acceptable
answer string appears in the passages shown, at several `context_tokens` budgets against whole
chunks. No model runs (tokens are counted with the model's tokenizer only), so it takes seconds and
is the cheap companion of evals/answer_settings.py when choosing the budget. A computed answer is
not written in the corpus, so for logic items it also gives `logic_operands_shown`: the mean share
of the operands their notes name ("USD 1,299 + 149") that the evidence shows. Retrieval and selection are the Pipeline's own (`retrieve_parts` for questions routed
to reasoning, `evidence`), so what is measured is what the model would be shown.

    python evals/evidence_coverage.py --index .ragkit/demo-index --bench data/bench/sample.jsonl --name sample
    python evals/evidence_coverage.py --index .ragkit/cmrc-index --bench .ragkit/cmrc/bench.jsonl --limit 200 --name cmrc
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def numbers(text: str) -> set[str]:
    return {m.replace(",", "") for m in _NUMBER.findall(text)}


def operand_numbers(item: dict) -> set[str]:
    """A logic item's operands: the numbers its notes give before the result ("USD 1,299 + 149",
    "75 - 65 = 10" gives 75 and 65), the facts a computed answer needs to be shown."""
    if item.get("category") != "logic" or not item.get("notes"):
        return set()
    return numbers(re.split(r"=|->|→", item["notes"])[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--budgets", default="120,160,200,250,300,400")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b", help="whose tokenizer counts the budget")
    ap.add_argument("--reason", default="auto", choices=["auto", "off"],
                    help="auto: questions routed to reasoning retrieve each part, as the answer path does")
    args = ap.parse_args()

    from llama_cpp import Llama

    from ragkit import Index
    from ragkit.eval.metrics import contains_answer
    from ragkit.lang import detect_language
    from ragkit.models import resolve_llm
    from ragkit.pipeline import Pipeline

    class TokenCounter:
        """What the Pipeline asks of a generator to choose evidence: its tokenizer, nothing else."""

        prompt_style, backend, context_length, max_passages = "chat", "llama_cpp", 4096, None

        def __init__(self, path: str):
            self.vocab = Llama(path, vocab_only=True, verbose=False)

        def count_tokens(self, text: str) -> int:
            return len(self.vocab.tokenize(text.encode("utf-8"), add_bos=False))

    counter = TokenCounter(str(resolve_llm(args.model)[1]))
    count = counter.count_tokens
    index = Index.open(args.index)
    items = [json.loads(x) for x in Path(args.bench).read_text(encoding="utf-8").splitlines() if x.strip()]
    items = items[: args.limit] if args.limit else items
    result = {"bench": args.bench, "n": len(items), "k": args.k, "reason": args.reason, "budgets": {}}
    for label, budget, k in [("whole k=3", None, 3), (f"whole k={args.k}", None, args.k),
                             *[(b, int(b), args.k) for b in args.budgets.split(",")]]:
        # the answer path's own retrieval (each part of a question routed to reasoning) and evidence
        pipe = Pipeline(index, counter, k=k, context_tokens=budget or 0, reason=args.reason)
        found, tokens, by_cat, operands = 0, [], {}, []
        for it in items:
            q, lang = it["question"], detect_language(it["question"])
            reason = pipe.wants_reasoning(q, lang)
            hits = pipe.retrieve_parts(q, lang) if reason else pipe.retrieve(q)
            shown = pipe.evidence(q, hits, lang, reason)
            ok = any(contains_answer(h.text, it["answers"]) for h in shown)
            wanted = operand_numbers(it)
            if wanted:
                seen = numbers(" ".join(h.text for h in shown))
                operands.append(sum(n in seen for n in wanted) / len(wanted))
            found += ok
            tokens.append(sum(count(h.text) for h in shown))
            by_cat.setdefault(it.get("category", "-"), []).append(ok)
        result["budgets"][str(label)] = {
            "answer_shown": round(found / len(items), 3), "evidence_tokens_p50": statistics.median(tokens),
            "by_category": {c: round(sum(v) / len(v), 3) for c, v in sorted(by_cat.items())},
            "logic_operands_shown": round(statistics.mean(operands), 3) if operands else None,
        }
        print(label, result["budgets"][str(label)])
    dest = Path("evals/results/answer-settings") / f"coverage-{args.name}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
