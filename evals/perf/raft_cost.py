"""What RAFT data costs to train on CPU against plain QA data: same base, same pairs, same settings.

Builds the index and both data sets of an experiment file (default pipelines/sample-raft.yaml:
`sft_data` for the qa recipe, `raft` for the raft one, from the same QA pairs), then trains one
language's adapter on each for `--steps` optimizer steps with the experiment's own train options
(raft: train.options with raft.train over them), the qa run first and the raft run after it, and
prints per recipe: tokens per example, tokens per epoch, real and padded tokens/s, and the full
run's training time estimated as epochs x tokens per epoch / tokens/s; plus the raft / qa ratios.
With `--kill-after N` the raft run is killed once its checkpoint at step N exists and then resumed
(`save_every` is set to N), which checks that resuming works on RAFT data with the real model.

    .venv/bin/python evals/perf/raft_cost.py --steps 12 --lang en --out evals/results/raft/cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[2]


def prepare(cfg, work: Path) -> dict[str, Path]:
    """Index, qa and raft data (as `ragkit run` makes them), split by language."""
    from ragkit.experiment.steps import merge_bench, step_ingest, step_sft_data
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
        files[recipe] = data
    return files


def train_config(cfg, recipe: str, data: Path, lang: str, out: Path, steps: int, save_every: int | None):
    from ragkit.sft.train import TrainConfig

    opts = (cfg.raft_train_options() if recipe == "raft" else cfg.train.options).model_dump()
    opts.update(max_steps=steps, save_every=save_every, eval_fraction=0.0)
    return TrainConfig(**opts, data=str(data), base=cfg.base_model(lang), out=str(out))


def run_train_child(tc_json: str) -> None:
    """Child process: train one config (so that the parent can kill and resume it)."""
    from ragkit.sft.train import TrainConfig, train

    train(TrainConfig.model_validate_json(tc_json))


def train_killed_then_resumed(tc, kill_after: int) -> float:
    """Train in a child, kill it once checkpoints/step-<kill_after> exists, resume; wall seconds."""
    t0 = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--child", tc.model_dump_json()], cwd=ROOT)
    ckpt = Path(tc.out) / "checkpoints" / f"step-{kill_after}"
    while child.poll() is None and not (ckpt / "state.json").is_file():
        time.sleep(2)
    if child.poll() is None:
        time.sleep(5)  # let the checkpoint finish its rename
        child.kill()
        child.wait()
        print(f"killed the raft run after {ckpt.name}; resuming", flush=True)
    tc.resume = True
    subprocess.run([sys.executable, __file__, "--child", tc.model_dump_json()], cwd=ROOT, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(ROOT / "pipelines" / "sample-raft.yaml"))
    ap.add_argument("--work", default=str(ROOT / "runs" / "raft-cost"), help="index, data and adapters go here")
    ap.add_argument("--lang", default="en")
    ap.add_argument("--steps", type=int, default=12, help="optimizer steps per recipe")
    ap.add_argument("--kill-after", type=int, default=None, help="kill the raft run after this step, then resume")
    ap.add_argument("--recipes", default="qa,raft",
                    help="recipes to train now; another one's figures are read from its earlier run in --work")
    ap.add_argument("--out", default=None, help="write the figures here as JSON")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_train_child(args.child)
        return
    from ragkit.experiment.config import load_experiment
    from ragkit.experiment.steps import split_by_language

    cfg = load_experiment(args.experiment)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    files = prepare(cfg, work)
    result = {"experiment": args.experiment, "lang": args.lang, "steps": args.steps, "machine": os.uname().nodename,
              "cpu_count": os.cpu_count(), "recipes": {}}
    for recipe in ("qa", "raft"):
        data = split_by_language(files[recipe], files[recipe].parent, [args.lang])[args.lang]
        out = work / f"adapter-{recipe}-{args.lang}"
        kill = args.kill_after if recipe == "raft" else None
        tc = train_config(cfg, recipe, data, args.lang, out, args.steps, kill)
        if recipe not in args.recipes.split(","):
            wall = json.loads((out / "train_summary.json").read_text())["seconds"]  # an earlier run's
        elif out.exists():
            import shutil

            shutil.rmtree(out)
        if recipe in args.recipes.split(","):
            t0 = time.perf_counter()
            if kill:
                wall = train_killed_then_resumed(tc, kill)
            else:
                run_train_child(tc.model_dump_json())
                wall = time.perf_counter() - t0
        s = json.loads((out / "train_summary.json").read_text())
        d = s["data"]
        epochs = tc.epochs
        full_s = epochs * d["tokens_per_epoch"] / s["tokens_per_s"]
        result["recipes"][recipe] = {
            "examples": d["train_examples"], "dropped_too_long": d["dropped_too_long"], "max_len": tc.max_len,
            "tokens_per_epoch": d["tokens_per_epoch"], "tokens_per_example": round(d["tokens_per_epoch"] / d["train_examples"], 1),
            "answer_tokens_per_epoch": d["answer_tokens_per_epoch"], "steps": s["steps"],
            "tokens_per_s": s["tokens_per_s"], "padded_tokens_per_s": s["padded_tokens_per_s"],
            "train_seconds": s["train_seconds"], "wall_seconds": round(wall, 1), "resumed": s["resumed"],
            "epochs": epochs, "full_train_hours_estimate": round(full_s / 3600, 2),
            "shared_prefix_tokens": s["shared_prefix_tokens"], "threads": s["threads"],
        }
        print(f"{recipe}: {json.dumps(result['recipes'][recipe])}", flush=True)
    qa, raft = result["recipes"]["qa"], result["recipes"]["raft"]
    result["ratios_raft_over_qa"] = {
        "tokens_per_epoch": round(raft["tokens_per_epoch"] / qa["tokens_per_epoch"], 2),
        "tokens_per_s": round(raft["tokens_per_s"] / qa["tokens_per_s"], 2),
        "full_train_hours": round(raft["full_train_hours_estimate"] / qa["full_train_hours_estimate"], 2),
    }
    print(json.dumps(result["ratios_raft_over_qa"]))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
