"""Kept prompt prefixes (ragkit/generate/llamacpp.py) against llama.cpp's own reuse of the previous
prompt: the same questions through three copies of the model (one keeping prefixes, one with
llama.cpp's own reuse only, one reading every prompt from its first token: the reference), with
prompts that alternate between English and Chinese and between the rag and closed-book prompts (as
a served model or an eval's arms do). Prints the greedy answers' agreement in each pair and the
answers that differ, the prompt tokens read per question and first-token times, and the ratios.
A restored state is the state that was saved, but llama.cpp's logits for a token depend slightly on
how the prompt was cut into batches, and any reuse (llama.cpp's own included) cuts it differently
from a cold read, so greedy answers can part at a near tie; the cold copy shows how often.

    python evals/perf/prefix_cache.py --index .ragkit/demo-index --questions 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from answer_speed import cpu_name, questions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", default=".ragkit/demo-index")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--save", action="store_true")
    args = ap.parse_args()

    from ragkit import Index, Pipeline
    from ragkit.generate import Decoding
    from ragkit.generate.llamacpp import LlamaCppGenerator
    from ragkit.models import resolve_llm

    name, path = resolve_llm(args.model)
    index = Index.open(args.index)
    gens = {"kept": LlamaCppGenerator(path, name), "plain": LlamaCppGenerator(path, name, kept_prefixes=0),
            "cold": LlamaCppGenerator(path, name, kept_prefixes=0)}
    pipes = {k: Pipeline(index, g, decoding=Decoding(max_tokens=32), reason="off") for k, g in gens.items()}
    qs = questions(args.questions)
    rows = {k: [] for k in gens}
    same = {"kept=plain": 0, "kept=cold": 0, "plain=cold": 0}
    differ = []
    for i, q in enumerate(qs):
        closed = i % 4 >= 2  # en rag, zh rag, en closed-book, zh closed-book, ...
        got = {}
        for key in ("kept", "plain", "cold") if i % 2 == 0 else ("cold", "plain", "kept"):
            orig = gens[key].generate
            seen = {}

            def spy(prompt, decoding, on_token=None, _orig=orig, _seen=seen, _key=key, **kw):
                if _key == "cold":  # nothing reused: the whole prompt read from its first token
                    gens["cold"].llm.n_tokens = 0
                c = _orig(prompt, decoding, on_token, **kw)
                _seen["read"] = c.prompt_tokens - c.cached_tokens
                return c

            gens[key].generate = spy
            a = pipes[key].answer(q, closed_book=closed)
            gens[key].generate = orig
            got[key] = a.answer
            rows[key].append({"read": seen.get("read"), "first_token_ms": a.timings.get("first_token_ms")})
        for pair in same:
            a, b = pair.split("=")
            same[pair] += got[a] == got[b]
        if len(set(got.values())) > 1:
            differ.append({"question": q, "closed_book": closed, **got})
        print(f"  {i + 1}/{len(qs)} " + " ".join(f"{k}:{got[k]!r}" for k in gens), file=sys.stderr)

    def med(key, field):
        return statistics.median(r[field] for r in rows[key] if r[field] is not None)

    result = {
        "cpu": cpu_name(), "model": name, "questions": len(qs), "same_answers": same, "answers_that_differ": differ,
        "prompt_tokens_read_p50": {k: med(k, "read") for k in rows},
        "first_token_ms_p50": {k: med(k, "first_token_ms") for k in rows},
    }
    result["ratio_plain_over_kept"] = {
        f: round(result[f]["plain"] / result[f]["kept"], 2) for f in ("prompt_tokens_read_p50", "first_token_ms_p50")}
    result["ratio_cold_over_kept"] = {
        f: round(result[f]["cold"] / result[f]["kept"], 2) for f in ("prompt_tokens_read_p50", "first_token_ms_p50")}
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.save:
        dest = Path(__file__).resolve().parents[2] / "evals/results/answer-settings/prefix_cache.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for p in pipes.values():
        p.close()


if __name__ == "__main__":
    main()
