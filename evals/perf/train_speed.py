"""Speed of `ragkit train` against a plain peft loop, same model, data, batch size and threads.

ragkit side: the real `ragkit.train.train.train()` with `max_steps` (length-grouped batches, loss and
output head on answer tokens only), one optimizer step per micro-batch here so both sides do the
same number of forward/backward passes. Plain side: the loop most tutorials write, on the very same
encoded examples: shuffled batches padded to their longest member, `model(..., labels=...)`
(full-vocabulary logits at every position), backward, AdamW. Rounds alternate between the two so
machine noise hits both alike. Figures are tokens/s of real (non-padding) tokens, the rate at which
an epoch gets done; the plain loop's padded rate is printed beside it, and optionally (--fixed) the
GUIDE's reference setting, a plain loop on random 8 x 128 token blocks.

    .venv/bin/python evals/perf/train_speed.py                          # synthetic 500 QA pairs
    .venv/bin/python evals/perf/train_speed.py --data data/sft/sample.jsonl --steps 8 --rounds 3 --fixed
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

# libgomp's default busy-waiting makes a 2-thread torch crawl when the cores are shared; set it
# before torch is imported (ragkit's CLI does the same).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[2]

FACTS = [
    ("the mowing area limit of the Kestrel M3", "1,500 m²"), ("the mowing area limit of the Kestrel M5", "3,000 m²"),
    ("the cutting height range of the Kestrel M5", "25–75 mm"), ("the battery capacity of the Kestrel M3", "5.2 Ah"),
    ("the battery capacity of the Kestrel M5", "7.5 Ah"), ("the run time of the Kestrel M5", "about 120 minutes"),
    ("the maximum slope of the Kestrel M5", "45%"), ("the suction power of the Kestrel V7", "5,000 Pa"),
    ("the dustbin volume of the Kestrel V7", "400 mL"), ("the water tank of the Kestrel V7", "250 mL"),
    ("the launch price of the Kestrel M3", "USD 1,299"), ("the support hotline", "400-820-1616"),
    ("the meaning of error code E01", "blade blocked"), ("the meaning of error code E07",
                                                          "RTK signal lost for over 10 minutes"),
    ("the founding year of Kestrel Home Robotics", "2016"), ("the home city of Kestrel Home Robotics", "Lindenport"),
]
TEMPLATES = ["What is {}?", "Tell me {}.", "Do you know {}?", "Please state {}.", "Can you tell me {}?",
             "I need {}.", "What's {}?", "Give me {}.", "Quick question: what is {}?", "Remind me of {}.",
             "Could you say what {} is?", "Look up {}.", "What do the documents say about {}?",
             "For my records, what is {}?", "Which value is {}?", "Explain briefly: what is {}?",
             "My friend asked me about {}. What is it?", "Before I buy, what is {}?",
             "What would you say is {}?", "In one line, {}?", "Remind me quickly of {}.",
             "I forgot {}; what is it?", "State {} please.", "Look up {} for me.", "What exactly is {}?",
             "Could you check {}?", "Summarise {} in a few words.", "What is listed as {}?",
             "According to Kestrel, what is {}?", "Help me find {}.", "What's the figure for {}?",
             "Tell me quickly {}."]


def synthetic(path: Path, n: int = 500) -> Path:
    rows = [{"instruction": t.format(f), "input": "", "output": a} for f, a in FACTS for t in TEMPLATES]
    random.Random(0).shuffle(rows)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:n]), encoding="utf-8")
    return path


def hf_copy(base: str, out: Path) -> Path:
    """The base as a transformers directory, so that every round loads it in a second."""
    from ragkit.train.data import load_tokenizer, resolve_base
    from ragkit.train.lora import load_model

    spec = resolve_base(base)
    if not spec.gguf:
        return spec.path
    model, tok = load_model(spec), load_tokenizer(spec)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def ragkit_round(data: Path, base: Path, out: Path, args) -> dict:
    from ragkit.train.train import TrainConfig, train

    s = train(TrainConfig(data=str(data), base=str(base), out=str(out), max_steps=args.steps,
                          batch_size=args.batch_size, grad_accum=1, eval_fraction=0.0, threads=args.threads,
                          seed=len(list(out.parent.glob("*")))))
    return {"tokens": s["tokens"], "seconds": s["train_seconds"]}


class Plain:
    """The plain peft loop, loaded once; `run(k)` trains k micro-batches and times them."""

    def __init__(self, base: Path, data: Path, args):
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ragkit.train import data as D
        from ragkit.train.data import prompt_format

        torch.set_num_threads(args.threads or os.cpu_count())
        tok = AutoTokenizer.from_pretrained(str(base))
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self.pad = tok.pad_token_id
        fmt = prompt_format("chat" if tok.chat_template else "fewshot", tok)
        self.items, _ = D.encode_all(tok, fmt, D.load_examples(data), 512)
        model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
        self.model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                                      target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
        self.model.train()
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=2e-4)
        self.bs = args.batch_size
        self.rng = random.Random(0)
        self.vocab = model.config.vocab_size

    def step(self, batch) -> None:
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        out.loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def run(self, k: int) -> dict:
        from ragkit.train import data as D

        tokens = padded = 0
        secs = 0.0
        for _ in range(k):
            batch = D.collate(self.rng.sample(self.items, self.bs), self.pad)
            t0 = time.perf_counter()
            self.step(batch)
            secs += time.perf_counter() - t0
            tokens += int(batch["attention_mask"].sum())
            padded += int(batch["input_ids"].numel())
        return {"tokens": tokens, "padded": padded, "seconds": secs}

    def fixed(self, k: int, seq: int) -> float:
        import torch

        x = torch.randint(0, self.vocab, (self.bs, seq))
        batch = {"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x}
        t0 = time.perf_counter()
        for _ in range(k):
            self.step(batch)
        return self.bs * seq * k / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="SFT file (default: 500 synthetic QA pairs)")
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6, help="micro-batches per side per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--fixed", action="store_true", help="also time the plain loop on random 8 x 128 blocks")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="ragkit-train-speed-") as tmp:
        tmp = Path(tmp)
        data = args.data or synthetic(tmp / "synthetic.jsonl")
        t0 = time.perf_counter()
        base = hf_copy(args.base, tmp / "base")
        print(f"base ready in {time.perf_counter() - t0:.0f} s; data {data}", flush=True)
        plain = Plain(base, data, args)
        plain.run(1)  # warm-up, not counted
        rows = []
        for r in range(args.rounds):
            rk = ragkit_round(data, base, tmp / "runs" / f"r{r}", args)
            pl = plain.run(args.steps)
            rows.append({"ragkit_tok_s": rk["tokens"] / rk["seconds"], "plain_tok_s": pl["tokens"] / pl["seconds"],
                         "plain_padded_tok_s": pl["padded"] / pl["seconds"]})
            print(f"round {r + 1}: ragkit {rows[-1]['ragkit_tok_s']:.0f} tok/s, plain {rows[-1]['plain_tok_s']:.0f} "
                  f"tok/s ({rows[-1]['plain_padded_tok_s']:.0f} with padding)", flush=True)
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        result = {
            "base": args.base, "batch_size": args.batch_size, "steps_per_round": args.steps, "rounds": args.rounds,
            "threads": args.threads or os.cpu_count(), "examples": len(plain.items),
            "mean_example_tokens": round(statistics.fmean(len(e.input_ids) for e in plain.items), 1),
            **{k: round(v, 1) for k, v in med.items()},
            "ratio": round(med["ragkit_tok_s"] / med["plain_tok_s"], 2),
            "load_average": os.getloadavg()[0],
        }
        if args.fixed:
            result["plain_fixed_8x128_tok_s"] = round(plain.fixed(2, 128), 1)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"\n{'':28}{'tokens/s':>10}")
    print(f"{'ragkit train':28}{result['ragkit_tok_s']:>10.0f}")
    print(f"{'plain peft loop':28}{result['plain_tok_s']:>10.0f}   ({result['plain_padded_tok_s']:.0f} incl. padding)")
    if "plain_fixed_8x128_tok_s" in result:
        print(f"{'plain loop, random 8x128':28}{result['plain_fixed_8x128_tok_s']:>10.0f}")
    print(f"ratio ragkit / plain: {result['ratio']:.2f}  (batch {args.batch_size}, {result['threads']} threads, "
          f"{result['examples']} examples of {result['mean_example_tokens']:.0f} tokens on average, "
          f"load average {result['load_average']:.1f})")


if __name__ == "__main__":
    main()
