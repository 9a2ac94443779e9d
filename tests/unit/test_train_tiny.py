"""`ragkit train`, merge and GGUF export on a tiny randomly initialised Llama built in the test.

The model (2 layers, 64 wide, byte-level vocabulary) trains in about a second per run on one
thread, so these tests exercise the real loop: loss on a memorised pair, resume, merge, the GGUF
adapter layout, guard rails and the CLI.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sft_helpers import tiny_tokenizer, write_jsonl

from ragkit.cli import main
from ragkit.errors import DataFormatError, ModelNotFound, OutOfMemory, UsageError
from ragkit.hashing import file_hash
from ragkit.progress import NullProgress
from ragkit.train import data as sft_data
from ragkit.train import export as E
from ragkit.train import lora as L
from ragkit.train import train as T
from ragkit.train.recipe import LoRARecipe

PAIR = {"instruction": "What is the Kestrel hotline?", "input": "", "output": "400-820-1616"}


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      initializer_range=0.3,  # tied embeddings need room for confident logits
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    d = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def cfg(tmp_path, base, data, **kw):
    kw = {"epochs": 1, "batch_size": 4, "grad_accum": 1, "max_len": 256, "threads": 1, "lr": 1e-2, **kw}
    return T.TrainConfig(data=str(data), base=str(base), out=str(tmp_path / kw.pop("name", "out")), **kw)


def distinct_pairs(tmp_path, n=24):
    return write_jsonl(tmp_path / "d.jsonl", [{"instruction": f"What is code E{i:02d}?", "output": f"fault {i}"}
                                              for i in range(n)])


@pytest.fixture(scope="module")
def memorised(tiny_base, tmp_path_factory):
    """An adapter trained to answer PAIR: (config, summary)."""
    tmp = tmp_path_factory.mktemp("memorised")
    data = write_jsonl(tmp / "one.jsonl", [PAIR] * 16)
    c = cfg(tmp, tiny_base, data, epochs=8, dropout=0.0)
    return c, T.train(c)


def test_loss_falls_on_a_memorised_pair_and_the_adapter_answers_it(memorised, tiny_base):
    c, s = memorised
    steps = s["losses"]["step"]
    assert len(steps) == s["steps"] == 32
    assert steps[-1] < 0.2 * steps[0]
    assert s["answer_only_head"] is True  # the head ran on answer positions only
    assert s["base"]["prompt_style"] == "chat"
    assert s["data"]["sha256"] == file_hash(c.data)
    assert s["tokens_per_s"] > 0 and 0 < s["adapter_size_mb"] < 1
    out = Path(c.out)
    meta = json.loads((out / E.ADAPTER_META).read_text())
    assert meta["samples"][0]["question"] == PAIR["instruction"] and meta["prompt_style"] == "chat"
    assert (out / "checkpoints" / "epoch-8" / "adapter_model.safetensors").is_file()
    # The tuned model, loaded the way `ragkit ask --backend hf --adapter DIR` loads it, answers.
    from ragkit.generate import clear_cache, load_generator
    from ragkit.generate.base import Decoding
    from ragkit.generate.prompts import format_prompt

    gen = load_generator(str(tiny_base), "hf", adapter=c.out)
    try:
        prompt = format_prompt(PAIR["instruction"], None, gen.prompt_style, "en", gen.render_chat)
        assert gen.generate(prompt, Decoding(max_tokens=20)).text == PAIR["output"]
    finally:
        clear_cache()


def test_answer_only_head_gives_the_same_loss_as_the_full_logits(tiny_base, tmp_path):
    from transformers import AutoModelForCausalLM

    model = L.add_lora(AutoModelForCausalLM.from_pretrained(str(tiny_base)), cfg(tmp_path, tiny_base, "x"))
    model.eval()
    tok = tiny_tokenizer()
    fmt = sft_data.prompt_format("chat", tok)
    items = [sft_data.encode_example(tok, fmt, sft_data.SFTExample(q, a, "en", ""), 256)
             for q, a in [("Q one?", "A"), ("A much longer question here?", "a longer answer")]]
    batch = sft_data.collate(items, 0)
    fast, n1 = L.loss_sum(model, batch, L.split_model(model))
    full, n2 = L.loss_sum(model, batch, None)
    assert n1 == n2 == sum(e.n_target for e in items)
    assert torch.allclose(fast, full, rtol=1e-5)


def test_shared_prefix_run_once_gives_the_same_loss_and_gradients(tiny_base, tmp_path):
    from transformers import AutoModelForCausalLM

    model = L.add_lora(AutoModelForCausalLM.from_pretrained(str(tiny_base)), cfg(tmp_path, tiny_base, "x", dropout=0.0))
    with torch.no_grad():  # non-zero B, so that the LoRA path carries gradient to A as well
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    tok = tiny_tokenizer()
    fmt = sft_data.prompt_format("chat", tok)
    items = [sft_data.encode_example(tok, fmt, sft_data.SFTExample(q, a, "en", ""), 256)
             for q, a in [("Q one?", "A"), ("A much longer question here?", "a longer answer"), ("Q3?", "xyz")]]
    prefix = sft_data.shared_prefixes(items, [e.group for e in items])["en"]
    assert tok.decode(items[0].input_ids[:prefix]).endswith("<|im_start|>user\nQuestion: ")  # system prompt too
    batch = sft_data.collate(items, 0)
    split = L.split_model(model)
    results = []
    for p in (0, prefix):
        model.zero_grad()
        loss, n = L.loss_sum(model, batch, split, p)
        loss.backward()
        grads = {k: v.grad.clone() for k, v in model.named_parameters() if v.requires_grad}
        results.append((loss.detach(), n, grads))
    (l0, n0, g0), (l1, n1, g1) = results
    assert n0 == n1 and torch.allclose(l0, l1, rtol=1e-5)
    for k in g0:
        assert torch.allclose(g0[k], g1[k], rtol=1e-3, atol=1e-4), (k, (g0[k] - g1[k]).abs().max())


class Stop(Exception):
    pass


class StopAt:
    """A progress sink that interrupts training at a given stage or step."""

    def __init__(self, stage=None, advances=None):
        self.stage_name, self.advances, self.n = stage, advances, 0

    def stage(self, name, total):
        if name == self.stage_name:
            raise Stop(name)

    def advance(self, n=1, **stats):
        self.n += 1
        if self.n == self.advances:
            raise Stop(self.n)

    def message(self, text):
        pass

    def done(self):
        pass


def adapter_weights(out):
    from safetensors.torch import load_file

    return load_file(str(Path(out) / "adapter_model.safetensors"))


@pytest.mark.parametrize("interrupt", [{"stage": "epoch 2/2"}, {"advances": 5}])
def test_resume_after_an_interruption_ends_where_an_uninterrupted_run_does(tiny_base, tmp_path, interrupt):
    data = distinct_pairs(tmp_path)
    common = {"epochs": 2, "grad_accum": 2, "save_every": 1, "eval_fraction": 0.0}
    straight = T.train(cfg(tmp_path, tiny_base, data, name="a", **common))
    with pytest.raises(Stop):
        T.train(cfg(tmp_path, tiny_base, data, name="b", **common), StopAt(**interrupt))
    with pytest.raises(UsageError, match="already holds a training run; resume it"):
        T.train(cfg(tmp_path, tiny_base, data, name="b", **common))
    with pytest.raises(UsageError, match=r"other settings \(rank: 8, now 4\)"):
        T.train(cfg(tmp_path, tiny_base, data, name="b", resume=True, rank=4, **common))
    resumed = T.train(cfg(tmp_path, tiny_base, data, name="b", resume=True, **common))
    assert resumed["resumed"] is True
    assert resumed["losses"]["step"] == straight["losses"]["step"]
    assert resumed["steps"] == straight["steps"] == 6
    a, b = adapter_weights(tmp_path / "a"), adapter_weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_early_stopping_keeps_the_best_epoch(tiny_base, tmp_path, monkeypatch):
    losses = iter([1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(LoRARecipe, "eval_loss", lambda self: next(losses))
    s = T.train(cfg(tmp_path, tiny_base, distinct_pairs(tmp_path), epochs=4, early_stopping=1))
    assert s["stopped_early"] and s["epochs_completed"] == 2 and s["best_epoch"] == 1
    assert s["losses"]["epoch_eval"] == [1.0, 2.0]
    best = adapter_weights(tmp_path / "out" / "checkpoints" / "epoch-1")
    final = adapter_weights(tmp_path / "out")
    assert all(torch.equal(best[k], final[k]) for k in best)


def test_merge_equals_base_plus_adapter(memorised, tiny_base, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    c, _ = memorised
    info = E.merge(c.out, tmp_path / "merged")
    assert info["prompt_style"] == "chat"
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged")).eval()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_base)).eval()
    x = torch.tensor([tiny_tokenizer()("What is the Kestrel hotline? 400")["input_ids"]])
    with torch.no_grad():
        base_logits = base(x).logits
        peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_base)), c.out).eval()
        adapted = peft(x).logits
        got = merged(x).logits
    assert (adapted - base_logits).abs().max() > 0.1  # the adapter does something
    assert torch.allclose(got, adapted, atol=1e-4)
    with pytest.raises(UsageError, match="not empty"):
        E.merge(c.out, tmp_path / "merged")


def test_gguf_adapter_layout_names_alpha_and_qk_permutation(tiny_base, tmp_path):
    from gguf import GGUFReader
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    c = cfg(tmp_path, tiny_base, distinct_pairs(tmp_path), max_steps=2, target_modules="all-linear", rank=4,
            alpha=8)
    T.train(c)
    info = E.export_gguf_adapter(c.out, tmp_path / "lora.gguf")
    assert info["architecture"] == "llama" and info["permuted_qk"] and info["tensors"] == 2 * 2 * 7
    r = GGUFReader(str(tmp_path / "lora.gguf"))
    f = r.fields
    assert f["general.type"].contents() == "adapter" and f["adapter.type"].contents() == "lora"
    assert f["adapter.lora.alpha"].contents() == 8.0 and f["general.architecture"].contents() == "llama"
    t = {x.name: np.array(x.data) for x in r.tensors}
    assert {"blk.1.attn_q.weight.lora_a", "blk.0.attn_k.weight.lora_b", "blk.1.ffn_down.weight.lora_b",
            "blk.0.attn_output.weight.lora_a", "blk.0.ffn_gate.weight.lora_a"} <= set(t)
    hf = adapter_weights(c.out)
    key = "base_model.model.model.layers.{}.{}.{}.lora_{}.weight"
    # lora_a is PEFT's [rank, in]; lora_b [out, rank]; llama.cpp checks a.ne[1] == b.ne[0].
    assert t["blk.0.attn_q.weight.lora_a"].shape == (4, 64) and t["blk.0.attn_k.weight.lora_b"].shape == (32, 4)
    undo = LlamaTensorProcessor()._reverse_permute_weights  # what transformers does loading a GGUF
    for layer in (0, 1):
        q_b = t[f"blk.{layer}.attn_q.weight.lora_b"]
        k_b = t[f"blk.{layer}.attn_k.weight.lora_b"]
        assert np.allclose(undo(q_b, 4, 4), hf[key.format(layer, "self_attn", "q_proj", "B")].numpy())
        assert np.allclose(undo(k_b, 4, 2), hf[key.format(layer, "self_attn", "k_proj", "B")].numpy())
        assert not np.allclose(q_b, hf[key.format(layer, "self_attn", "q_proj", "B")].numpy())
        assert np.allclose(t[f"blk.{layer}.attn_v.weight.lora_b"], hf[key.format(layer, "self_attn", "v_proj", "B")])
        assert np.allclose(t[f"blk.{layer}.attn_q.weight.lora_a"], hf[key.format(layer, "self_attn", "q_proj", "A")])
    assert E.resolve_adapter(tmp_path / "lora.gguf") == ("gguf", tmp_path / "lora.gguf")
    assert E.resolve_adapter(c.out) == ("peft", Path(c.out))
    assert E.gguf_adapter_info(tmp_path / "lora.gguf")["base"] == str(tiny_base)


def test_resolve_adapter_refuses_what_is_not_an_adapter(tmp_path):
    import gguf

    w = gguf.GGUFWriter(str(tmp_path / "model.gguf"), "llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_tensor("token_embd.weight", np.zeros((4, 4), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UsageError, match="full GGUF model"):
        E.resolve_adapter(tmp_path / "model.gguf")
    with pytest.raises(UsageError, match="does not exist"):
        E.resolve_adapter(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no adapter_config.json"):
        E.resolve_adapter(tmp_path / "empty")


def test_guard_rails_give_one_clear_sentence(tiny_base, tmp_path, monkeypatch):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataFormatError, match="is empty"):
        T.train(cfg(tmp_path, tiny_base, empty))
    data = distinct_pairs(tmp_path)
    with pytest.raises(ModelNotFound, match="never downloads"):
        T.train(cfg(tmp_path, "no-such-model", data))
    with pytest.raises(UsageError, match=r"target module qkv_proj is not in this model; .*q_proj, .*v_proj"):
        T.train(cfg(tmp_path, tiny_base, data, target_modules="q_proj,qkv_proj", name="t"))
    monkeypatch.setattr(L, "_available_bytes", lambda device: 10 * 2**20)
    with pytest.raises(OutOfMemory, match=r"needs about .* but only 0.0 GiB is free on cpu; lower --batch-size"):
        T.train(cfg(tmp_path, tiny_base, data, name="m"))
    monkeypatch.undo()

    def oom(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory")

    real = L.loss_sum
    monkeypatch.setattr("ragkit.train.recipe.loss_sum",
                        lambda m, b, split=None, prefix=0: oom() if m.training else real(m, b, split, prefix))
    with pytest.raises(OutOfMemory, match="ran out of memory on cpu at batch 4"):
        T.train(cfg(tmp_path, tiny_base, data, name="o"))


def test_the_memory_check_after_loading_does_not_count_the_weights_again():
    import torch

    class Model(torch.nn.Module):
        config = type("Config", (), {"hidden_size": 8, "num_hidden_layers": 2, "intermediate_size": 32})()

        def __init__(self):
            super().__init__()
            self.base = torch.nn.Linear(1000, 1000)  # 1,001,000 frozen fp32 parameters
            self.base.requires_grad_(False)

    m = Model()
    weights = sum(p.numel() * p.element_size() for p in m.parameters())
    full = L.training_bytes(m, 4, 128, 4, False)
    assert full - L.training_bytes(m, 4, 128, 4, False, loaded=True) == weights == 4_004_000


def test_languages_keeps_only_those_questions_and_groups_batches_by_prompt(tiny_base, tmp_path):
    rows = [{"instruction": f"What is code E{i:02d}?", "output": f"fault {i}"} for i in range(24)]
    rows += [{"instruction": f"故障码 E{i:02d} 是什么意思？", "output": f"故障 {i}"} for i in range(24)]
    data = write_jsonl(tmp_path / "mixed.jsonl", rows)
    both = T.train(cfg(tmp_path, tiny_base, data, name="both", max_steps=2, eval_fraction=0.0))
    assert both["data"]["languages"] == {"en": 24, "zh": 24}
    assert set(both["shared_prefix_tokens"]) == {"en", "zh"}  # one shared prefix per prompt language
    en = T.train(cfg(tmp_path, tiny_base, data, name="en", max_steps=2, languages="en"))
    assert en["data"]["languages"] == {"en": 23} and en["data"]["eval_examples"] == 1
    with pytest.raises(UsageError, match="holds no zh examples"):
        T.train(cfg(tmp_path, tiny_base, distinct_pairs(tmp_path), name="zh", languages="zh"))


def test_a_bundled_models_own_languages_are_the_default(tmp_path):
    from ragkit.models import BUNDLED

    rows = [{"instruction": f"What is code E{i:02d}?", "output": f"fault {i}"} for i in range(24)]
    rows += [{"instruction": f"故障码 E{i:02d} 是什么意思？", "output": f"故障 {i}"} for i in range(24)]
    data = write_jsonl(tmp_path / "mixed.jsonl", rows)
    messages = []

    class Sink(NullProgress):
        def message(self, text):
            messages.append(text)

    def load(name, **kw):
        spec = sft_data.BaseSpec(name, tmp_path / "m.gguf", True, BUNDLED[name])
        return sft_data.select_examples(T.TrainConfig(data=str(data), base=name, out="o", **kw), Sink(), spec)[2]

    assert {e.lang for e in load("smollm2-135m")} == {"en"}  # an English-only model
    assert messages == ["smollm2-135m knows en only: training on 24 of 48 examples "
                        "(--languages all keeps the other 24)"]
    assert len(load("smollm2-135m", languages="all")) == 48
    assert len(load("gemma3-270m")) == 48 and len(messages) == 1


@pytest.mark.parametrize("kw, match", [
    ({"rank": 0}, "rank"), ({"lr": 0}, "learning rate"), ({"precision": "int8"}, "precision"),
    ({"target_modules": " , "}, "target_modules is empty"), ({"eval_fraction": 0.7}, "eval_fraction"),
])
def test_config_validates_itself(kw, match):
    with pytest.raises(ValueError, match=match):
        T.TrainConfig(data="d", base="b", out="o", **kw)


def test_default_accumulation_reaches_an_effective_batch_of_16():
    assert T.TrainConfig(data="d", base="b", out="o").grad_accum == 2
    assert T.TrainConfig(data="d", base="b", out="o", batch_size=4).grad_accum == 4
    assert T.TrainConfig(data="d", base="b", out="o", target_modules="all-linear").target_modules == "all-linear"


def test_cli_train_merge_export(tiny_base, tmp_path):
    data = distinct_pairs(tmp_path)
    runner = CliRunner()
    out = tmp_path / "run"
    r = runner.invoke(main, ["train", "--data", str(data), "--base", str(tiny_base), "--out", str(out),
                             "--epochs", "2", "--batch-size", "4", "--threads", "1", "--max-len", "256"])
    assert r.exit_code == 0, r.output
    assert "Trained 2 epoch(s)" in r.output and "eval loss" in r.output
    s = json.loads((out / "train_summary.json").read_text())
    assert s["config"]["grad_accum"] == 4 and s["epochs_completed"] == 2 and s["data"]["eval_examples"] == 1
    assert len(s["losses"]["epoch_eval"]) == 2 and s["losses"]["epoch_eval"][0] is not None
    r = runner.invoke(main, ["export-gguf", "--adapter", str(out), "--out", str(tmp_path / "a.gguf"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["tensors"] == 8
    r = runner.invoke(main, ["merge", "--adapter", str(out), "--out", str(tmp_path / "m")])
    assert r.exit_code == 0 and "ragkit ask --backend hf --model" in r.output
    # A bad file: one line, non-zero exit, no traceback.
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    r = runner.invoke(main, ["train", "--data", str(bad), "--base", str(tiny_base), "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert r.output.strip().startswith("Error: ") and "bad.jsonl:1 is not an alpaca" in r.output
    r = runner.invoke(main, ["train", "--data", str(data), "--base", str(tiny_base), "--out", str(tmp_path / "y"),
                             "--rank", "0"])
    assert r.exit_code == 2 and "rank must be >= 1" in r.output


def raft_rows(tmp_path, n=16):
    """RAFT rows (ragkit/sftdata/raft.py) as build-sft-data writes them: the oracle and a distractor."""
    from ragkit.sftdata.raft import raft_record

    rows = []
    for i in range(n):
        meta = {"question": f"What is code E{i:02d}?", "lang": "en", "answer": f"fault {i}", "oracle": f"c{i}",
                "without_oracle": "answer", "quote_chars": 160, "prompt": {"context_tokens": 0},
                "passages": [{"chunk_id": f"d{i}", "source": "other.md", "text": f"Code F{i} means a loose fan."},
                             {"chunk_id": f"c{i}", "source": "codes.md", "text": f"Code E{i:02d} means fault {i}."}]}
        rows.append(raft_record("alpaca", f"r{i}", meta))
    return write_jsonl(tmp_path / "raft.jsonl", rows)


def test_raft_rows_train_on_the_target_only_and_resume(tiny_base, tmp_path):
    import math

    from ragkit.raft import training_pair

    data = raft_rows(tmp_path)
    tok = tiny_tokenizer()
    ex = sft_data.load_examples(data)
    assert all(e.raft is not None for e in ex)
    enc = sft_data.encode_example(tok, sft_data.prompt_format("chat", tok), ex[3], 1024)
    prompt, target = training_pair(ex[3].raft, "chat", sft_data.chat_renderer(tok),
                                   lambda s: len(sft_data.encode_prompt(tok, s)), 1024)
    # the loss covers the target (quote and answer) and the end token, nothing of the passages
    assert tok.decode([t for t in enc.labels if t != sft_data.IGNORE]) == target + tok.eos_token
    assert target == 'Evidence [2]: "Code E03 means fault 3." Answer: fault 3'
    assert tok.decode(enc.input_ids[: enc.n_prompt]) == prompt and "Code F3 means a loose fan." in prompt
    common = {"epochs": 2, "grad_accum": 2, "save_every": 1, "eval_fraction": 0.0, "max_len": 512}
    straight = T.train(cfg(tmp_path, tiny_base, data, name="a", **common))
    assert straight["steps"] == 4 and all(math.isfinite(x) for x in straight["losses"]["step"])
    with pytest.raises(Stop):
        T.train(cfg(tmp_path, tiny_base, data, name="b", **common), StopAt(advances=3))
    resumed = T.train(cfg(tmp_path, tiny_base, data, name="b", resume=True, **common))
    assert resumed["resumed"] is True and resumed["losses"]["step"] == straight["losses"]["step"]
