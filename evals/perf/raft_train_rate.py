"""What RAFT data costs to train against plain QA data: the same QA pairs, base, batch and LoRA settings.

Builds the index and both data sets of an experiment file (default pipelines/sample-raft.yaml: the
`qa` recipe from `sft_data`, the `raft` recipe from the same pairs with `raft.options`, prompts
rendered with the eval section's answer settings, evidence selection included), then:

- tokens (no training, cheap): per recipe and language, the examples as `ragkit train` encodes them
  for the base model (each recipe's own max_len): tokens per epoch and per example, target tokens,
  how many were dropped as too long; for raft also how many targets still quote the oracle after
  evidence selection, and the prompt the same examples would have with whole chunks
  (context_tokens 0, last session's layout) for comparison;
- rate (`--steps N`, default 6; 0 skips it): trains one language's adapter for N optimizer steps on
  each recipe, qa first, then raft, both with the same options: the RAFT adapter's (train.options
  with raft.train over them: batch, accumulation, LoRA and max_len alike, the qa examples being far
  under that max_len), and prints tokens/s (real and padded) and one epoch's wall time estimated as
  tokens per epoch / tokens/s, with the raft / qa ratios. Not resumable: a run is a few minutes of
  training per recipe on the 0.5B.

    .venv/bin/python evals/perf/raft_train_rate.py --steps 0          # tokens only
    .venv/bin/python evals/perf/raft_train_rate.py --lang en --out evals/results/raft/rate.json
    .venv/bin/python evals/perf/raft_train_rate.py --base smollm2-135m --lang en --steps 1   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see ragkit.train.train)

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ("qa", "raft")


def prepare(cfg, work: Path, langs: list[str]) -> dict[str, dict[str, Path]]:
    """Index, qa and raft data as `ragkit run` makes them, split by language: {recipe: {lang: file}}."""
    from ragkit.experiment.steps import merge_bench, split_by_language, step_ingest, step_sft_data
    from ragkit.progress import NullProgress

    if not (work / "index").is_dir():
        step_ingest(cfg, work, NullProgress())
    bench = merge_bench(cfg.bench, work / "bench.jsonl")
    files = {}
    for recipe, data in (("qa", work / "sft" / "qa.jsonl"), ("raft", work / "raft" / "raft.jsonl")):
        if not data.is_file():
            data.parent.mkdir(parents=True, exist_ok=True)
            info = step_sft_data(cfg, work, bench, NullProgress(), raft=recipe == "raft")
            print(f"{recipe} data: {json.dumps(info, ensure_ascii=False)}", flush=True)
        files[recipe] = split_by_language(data, data.parent, langs)
    return files


def options(cfg, recipe: str):
    return cfg.raft_train_options() if recipe == "raft" else cfg.train.options


def count_tokens(cfg, files, base_spec: str) -> dict:
    """Per recipe and language: the examples as the trainer encodes them for `base_spec`."""
    from ragkit.raft import training_pair
    from ragkit.train import data as D

    base = D.resolve_base(base_spec)
    tok = D.load_tokenizer(base)
    style = D.prompt_style_for(base, tok, None)
    hint = getattr(base.info, "max_passages", None)
    out = {}
    for recipe in RECIPES:
        max_len = options(cfg, recipe).max_len
        fmt = D.prompt_format(style, tok, options(cfg, recipe).fewshot_examples, hint)
        for lang, path in files[recipe].items():
            ex = D.load_examples(path)
            enc, dropped = D.encode_all(tok, fmt, ex, max_len)
            n_tokens = sum(len(e.input_ids) for e in enc)
            row = {"examples": len(ex), "dropped_too_long": dropped, "max_len": max_len,
                   "tokens_per_epoch": n_tokens, "tokens_per_example": round(n_tokens / max(1, len(enc)), 1),
                   "target_tokens_per_epoch": sum(e.n_target for e in enc)}
            if recipe == "raft":
                def count(s):
                    return len(D.encode_prompt(tok, s))

                raft = [e for e in ex if e.raft is not None]
                pairs = [training_pair(e.raft, style, fmt.render_chat, count, max_len, hint) for e in raft]
                whole = [training_pair({**e.raft, "prompt": {**e.raft.get("prompt", {}), "context_tokens": 0}},
                                       style, fmt.render_chat, count, 1 << 20, hint) for e in raft]
                with_oracle = [(e, p) for e, p in zip(raft, pairs) if e.raft["oracle"] and p is not None]
                row["raft"] = {
                    "prompt": raft[0].raft.get("prompt") if raft else None,
                    "prompt_tokens_mean": round(sum(count(p[0]) for p in pairs if p) / max(1, len(raft)), 1),
                    "whole_chunk_prompt_tokens_mean": round(sum(count(w[0]) for w in whole) / max(1, len(raft)), 1),
                    "oracle_examples": len(with_oracle),
                    "oracle_quoted_after_selection": sum(p[1].strip() != e.raft["answer"] for e, p in with_oracle),
                }
            out[f"{recipe}-{lang}"] = row
            print(f"{recipe} {lang}: {json.dumps(row, ensure_ascii=False)}", flush=True)
    return out


def train_rate(cfg, files, lang: str, base: str, steps: int, work: Path) -> dict:
    """N optimizer steps of each recipe, one after the other; the trainer's own figures."""
    from ragkit.cli.progress import TerminalProgress
    from ragkit.train.train import TrainConfig, train

    out = {}
    for recipe in RECIPES:
        opts = cfg.raft_train_options().model_dump()  # the same batch, LoRA and max_len for both
        opts.update(max_steps=steps, save_every=None, eval_fraction=0.0, resume=False)
        dest = work / f"adapter-{recipe}-{lang}"
        if dest.exists():
            shutil.rmtree(dest)
        tc = TrainConfig(**opts, data=str(files[recipe][lang]), base=base, out=str(dest))
        t0 = time.perf_counter()
        s = train(tc, progress=TerminalProgress())
        wall = time.perf_counter() - t0
        d = s["data"]
        out[recipe] = {
            "steps": s["steps"], "batch_size": tc.batch_size, "grad_accum": tc.grad_accum, "rank": tc.rank,
            "target_modules": tc.target_modules, "max_len": tc.max_len, "train_examples": d["train_examples"],
            "tokens_per_epoch": d["tokens_per_epoch"], "tokens_trained": s["tokens"],
            "tokens_per_s": s["tokens_per_s"], "padded_tokens_per_s": s["padded_tokens_per_s"],
            "train_seconds": s["train_seconds"], "wall_seconds": round(wall, 1), "threads": s["threads"],
            "device": s["device"], "peak_rss_mb": s.get("peak_rss_mb"),
            "epoch_hours_estimate": round(d["tokens_per_epoch"] / s["tokens_per_s"] / 3600, 3)
            if s["tokens_per_s"] else None,
        }
        print(f"{recipe} {lang}: {json.dumps(out[recipe])}", flush=True)
    qa, raft = out["qa"], out["raft"]
    if qa["tokens_per_s"] and raft["tokens_per_s"]:
        out["raft_over_qa"] = {
            "tokens_per_epoch": round(raft["tokens_per_epoch"] / qa["tokens_per_epoch"], 2),
            "tokens_per_s": round(raft["tokens_per_s"] / qa["tokens_per_s"], 2),
            "epoch_hours": round(raft["epoch_hours_estimate"] / qa["epoch_hours_estimate"], 2),
        }
        print(f"raft / qa: {json.dumps(out['raft_over_qa'])}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(ROOT / "pipelines" / "sample-raft.yaml"))
    ap.add_argument("--work", default=str(ROOT / "runs" / "raft-rate"), help="index, data and adapters go here")
    ap.add_argument("--lang", default="en", help="the language whose adapters are trained for the rate")
    ap.add_argument("--base", default=None, help="base model (default: the experiment's for --lang)")
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per recipe; 0: tokens only")
    ap.add_argument("--out", default=None, help="write the figures here as JSON")
    args = ap.parse_args()
    from ragkit.experiment.config import load_experiment

    cfg = load_experiment(args.experiment)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    files = prepare(cfg, work, cfg.train.languages)
    base = args.base or cfg.base_model(args.lang)
    exp = Path(args.experiment).resolve()
    result = {"experiment": str(exp.relative_to(ROOT)) if exp.is_relative_to(ROOT) else str(exp), "base": base, "lang": args.lang, "steps": args.steps,
              "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
              "tokens": count_tokens(cfg, files, base)}
    qa_tokens = sum(r["tokens_per_epoch"] for k, r in result["tokens"].items() if k.startswith("qa-"))
    raft_tokens = sum(r["tokens_per_epoch"] for k, r in result["tokens"].items() if k.startswith("raft-"))
    result["tokens_raft_over_qa"] = round(raft_tokens / qa_tokens, 2) if qa_tokens else None
    print(f"tokens per epoch, all languages: qa {qa_tokens}, raft {raft_tokens}, raft / qa "
          f"{result['tokens_raft_over_qa']}", flush=True)
    if args.steps:
        result["rate"] = train_rate(cfg, files, args.lang, base, args.steps, work)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
