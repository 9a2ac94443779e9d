"""`ragkit train` on CUDA: bf16/fp16 autocast and 4-bit QLoRA. Skipped without a CUDA GPU.

Uses the tiny randomly initialised Llama of the unit tests (built here), so it needs no weights;
QLoRA also needs bitsandbytes.
"""

import importlib.util
import json

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

PAIR = {"instruction": "What is the Kestrel hotline?", "input": "", "output": "400-820-1616"}


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "<|im_start|>": 2, "<|im_end|>": 3}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="<|im_end|>", pad_token="<pad>",
                                  additional_special_tokens=["<|im_start|>"])
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, initializer_range=0.3,
                      bos_token_id=1, eos_token_id=3, pad_token_id=0)
    d = tmp_path_factory.mktemp("tiny-llama-gpu")
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _data(tmp_path):
    p = tmp_path / "one.jsonl"
    p.write_text("".join(json.dumps(PAIR) + "\n" for _ in range(16)))
    return p


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_cuda_training_lowers_the_loss(tiny_base, tmp_path, precision):
    from ragkit.train.train import TrainConfig, train

    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    s = train(TrainConfig(data=str(_data(tmp_path)), base=str(tiny_base), out=str(tmp_path / "out"), epochs=8,
                          batch_size=4, grad_accum=1, lr=1e-2, dropout=0.0, precision=precision, max_len=256,
                          gradient_checkpointing=precision == "bf16"))
    assert s["device"] == "cuda" and s["precision"] == precision
    steps = s["losses"]["step"]
    assert steps[-1] < 0.3 * steps[0]
    assert s["answer_only_head"] is True


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
def test_qlora_4bit_trains_and_exports(tiny_base, tmp_path):
    from ragkit.train.export import export_gguf_adapter
    from ragkit.train.train import TrainConfig, train

    s = train(TrainConfig(data=str(_data(tmp_path)), base=str(tiny_base), out=str(tmp_path / "out"), epochs=8,
                          batch_size=4, grad_accum=1, lr=1e-2, dropout=0.0, load_in_4bit=True, max_len=256,
                          gradient_checkpointing=True))
    steps = s["losses"]["step"]
    assert steps[-1] < 0.6 * steps[0]
    info = export_gguf_adapter(tmp_path / "out", tmp_path / "a.gguf")
    assert info["tensors"] == 8
