"""Tokens per epoch of the qa and raft data of pipelines/sample-raft.yaml as the trainer encodes them for
Qwen2.5-Coder-0.5B (no training): what the full run costs in tokens, and how many oracles max_len trims away.
Needs the data evals/perf/raft_cost.py builds in runs/raft-cost.

    .venv/bin/python evals/perf/raft_tokens.py      # writes evals/results/raft/tokens.json
"""
import json, sys
from ragkit.experiment.config import load_experiment
from ragkit.experiment.steps import split_by_language
from ragkit.sft import data as D
from pathlib import Path
cfg = load_experiment("pipelines/sample-raft.yaml")
base = D.resolve_base("qwen2.5-coder-0.5b")
tok = D.load_tokenizer(base)
style = D.prompt_style_for(base, tok, None)
fmt = D.prompt_format(style, tok)
work = Path("runs/raft-cost")
out = {}
for recipe, f, max_len in (("qa", work/"sft"/"qa.jsonl", cfg.train.options.max_len), ("raft", work/"raft"/"raft.jsonl", cfg.raft_train_options().max_len)):
    per = split_by_language(f, Path("/tmp/rt-"+recipe), ["en", "zh"]) if Path("/tmp/rt-"+recipe).mkdir(exist_ok=True) is None else None
    for lang, p in per.items():
        ex = D.load_examples(p)
        enc, dropped = D.encode_all(tok, fmt, ex, max_len)
        toks = sum(len(e.input_ids) for e in enc)
        tgt = sum(e.n_target for e in enc)
        trimmed = None
        if recipe == "raft":
            from ragkit.sft.raft import training_pair
            full = 0; oracle_kept = 0; oracle_in = 0
            for e in ex:
                pr, t = training_pair(e.raft, style, fmt.render_chat, lambda s: len(D.encode_prompt(tok, s)), 1 << 20)
                full += len(D.encode_prompt(tok, pr))
                pr2, t2 = training_pair(e.raft, style, fmt.render_chat, lambda s: len(D.encode_prompt(tok, s)), max_len)
                if e.raft["oracle"]:
                    oracle_in += 1
                    oracle_kept += (t2 != e.raft["answer"])
            trimmed = {"untrimmed_prompt_tokens_mean": round(full/len(ex),1), "oracle_examples": oracle_in, "oracle_still_quoted_after_trim": oracle_kept}
        out[f"{recipe}-{lang}"] = {"examples": len(ex), "dropped": dropped, "max_len": max_len, "tokens_per_epoch": toks, "tokens_per_example": round(toks/len(enc),1), "target_tokens_per_epoch": tgt, **({"trim": trimmed} if trimmed else {})}
        print(recipe, lang, out[f"{recipe}-{lang}"], flush=True)
Path("evals/results/raft").mkdir(parents=True, exist_ok=True)
Path("evals/results/raft/tokens.json").write_text(json.dumps(out, indent=2) + "\n")
