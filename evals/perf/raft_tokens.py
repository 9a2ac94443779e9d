"""Tokens per epoch of the qa and raft data of pipelines/sample-raft.yaml as the trainer encodes them
for Qwen2.5-Coder-0.5B (no training): what the full run costs in tokens beside the measured rate
(evals/perf/raft_cost.py), and how many oracles the raft max_len trims away.
Needs the data raft_cost.py builds in runs/raft-cost.

    .venv/bin/python evals/perf/raft_tokens.py      # writes evals/results/raft/tokens.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ragkit.experiment.config import load_experiment
from ragkit.experiment.steps import split_by_language
from ragkit.sft import data as D
from ragkit.sft.raft import training_pair

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    cfg = load_experiment(ROOT / "pipelines" / "sample-raft.yaml")
    base = D.resolve_base(cfg.base_model("en"))
    tok = D.load_tokenizer(base)
    style = D.prompt_style_for(base, tok, None)
    fmt = D.prompt_format(style, tok)
    count = lambda s: len(D.encode_prompt(tok, s))  # noqa: E731
    work = ROOT / "runs" / "raft-cost"
    out = {}
    runs = (("qa", work / "sft" / "qa.jsonl", cfg.train.options.max_len),
            ("raft", work / "raft" / "raft.jsonl", cfg.raft_train_options().max_len))
    with tempfile.TemporaryDirectory() as tmp:
        for recipe, data, max_len in runs:
            for lang, path in split_by_language(data, Path(tmp), ["en", "zh"]).items():
                ex = D.load_examples(path)
                enc, dropped = D.encode_all(tok, fmt, ex, max_len)
                row = {"examples": len(ex), "dropped": dropped, "max_len": max_len,
                       "tokens_per_epoch": sum(len(e.input_ids) for e in enc),
                       "tokens_per_example": round(sum(len(e.input_ids) for e in enc) / len(enc), 1),
                       "target_tokens_per_epoch": sum(e.n_target for e in enc)}
                if recipe == "raft":
                    with_oracle = [e for e in ex if e.raft["oracle"]]
                    untrimmed = [count(training_pair(e.raft, style, fmt.render_chat, count, 1 << 20)[0]) for e in ex]
                    kept = sum(training_pair(e.raft, style, fmt.render_chat, count, max_len)[1].strip() != e.raft["answer"]
                               for e in with_oracle)
                    row["trim"] = {"untrimmed_prompt_tokens_mean": round(sum(untrimmed) / len(untrimmed), 1),
                                   "oracle_examples": len(with_oracle), "oracle_still_quoted_after_trim": kept}
                out[f"{recipe}-{lang}"] = row
                print(recipe, lang, row, flush=True)
    dest = ROOT / "evals" / "results" / "raft" / "tokens.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
