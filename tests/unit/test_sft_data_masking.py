"""SFT data: the three input formats, bad files, prompt/answer masking, length-grouped batches.

A byte-level tokenizer with a ChatML template is built in-process (no download, instant), so the
masking can be checked token by token.
"""

import json

import pytest
from sft_helpers import tiny_tokenizer, write_jsonl

from ragkit.errors import DataFormatError
from ragkit.generate.prompts import format_prompt, format_target
from ragkit.train import data as D

PAIRS = [("How long is the M3 warranty?", "24 months"), ("隼鸟 M3 的电池容量是多少？", "5.2 Ah")]


@pytest.mark.parametrize("fmt", ["alpaca", "sharegpt", "messages", "json-array"])
def test_three_formats_give_the_same_examples(tmp_path, fmt):
    if fmt in ("alpaca", "json-array"):
        rows = [{"instruction": q, "input": "", "output": a} for q, a in PAIRS]
    elif fmt == "sharegpt":
        rows = [{"conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": q},
                                   {"from": "gpt", "value": a}]} for q, a in PAIRS]
    else:
        rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in PAIRS]
    path = tmp_path / "sft.json"
    if fmt == "json-array":
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    else:
        write_jsonl(path, rows)
    ex = D.load_examples(path)
    assert [(e.question, e.answer) for e in ex] == PAIRS
    assert [e.lang for e in ex] == ["en", "zh"]


def test_alpaca_input_joins_the_instruction_and_multi_turn_gives_one_example_per_turn(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"instruction": "Answer briefly.", "input": "What is E01?", "output": "Blade blocked"},
        {"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "Q1"},
                      {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},
                      {"role": "assistant", "content": "A2"}]},
    ])
    ex = D.load_examples(path)
    assert [(e.question, e.answer) for e in ex] == [("Answer briefly.\nWhat is E01?", "Blade blocked"),
                                                    ("Q1", "A1"), ("Q2", "A2")]


@pytest.mark.parametrize("content, match", [
    ("", "is empty"),
    ("   \n\n", "is empty"),
    ('{"instruction": "q", "output": "a"}\n{"instruction": "q2", "output": \n', r"d\.jsonl:2 is not valid JSON"),
    ('{"question": "q", "answer": "a"}\n', r"d\.jsonl:1 is not an alpaca .* \(it has: answer, question\)"),
    ('{"instruction": "q", "output": ""}\n', r"d\.jsonl:1 has an empty answer"),
    ('{"messages": [{"role": "user", "content": "q"}]}\n', "no user turn followed by an assistant turn"),
    ('[1, 2]', r"d\.jsonl:1 is not an alpaca"),
])
def test_bad_data_files_give_one_clear_sentence(tmp_path, content, match):
    path = tmp_path / "d.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=match):
        D.load_examples(path)


def test_missing_data_file(tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        D.load_examples(tmp_path / "nope.jsonl")


def test_chat_prompt_tokens_are_masked_and_answer_ends_with_eos():
    tok = tiny_tokenizer()
    fmt = D.PromptFormat("chat", D.chat_renderer(tok))
    ex = D.SFTExample("How long is the M3 warranty?", "24 months", "en", "t:1")
    enc = D.encode_example(tok, fmt, ex, max_len=512)
    prompt = format_prompt(ex.question, None, style="chat", lang="en", render_chat=D.chat_renderer(tok))
    assert prompt == fmt.prompt(ex.question, "en")  # the exact text `ragkit ask` builds
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    n = len(p_ids)
    assert enc.input_ids[:n] == p_ids
    assert enc.labels[:n] == [D.IGNORE] * n  # every prompt token is out of the loss
    assert all(t != D.IGNORE for t in enc.labels[n:])  # every answer token is in it
    assert enc.labels[n:] == enc.input_ids[n:]
    assert enc.input_ids[-1] == tok.eos_token_id  # the answer ends at the end-of-turn token
    assert tok.decode(enc.input_ids[n:]) == "24 months<|im_end|>"
    assert enc.n_target == len("24 months") + 1


def test_fewshot_target_is_one_line_after_the_prompt_and_has_no_eos():
    tok = tiny_tokenizer(chat=False)
    fmt = D.PromptFormat("fewshot", None, examples=2)
    ex = D.SFTExample("隼鸟 M3 的电池容量是多少？", "5.2 Ah", "zh", "t:1")
    enc = D.encode_example(tok, fmt, ex, max_len=2048)
    prompt = format_prompt(ex.question, None, "fewshot", "zh", None, 2)
    assert prompt.endswith("问题：隼鸟 M3 的电池容量是多少？\n答案：")
    n = len(tok(prompt)["input_ids"])
    assert enc.labels[:n] == [D.IGNORE] * n
    assert tok.decode(enc.input_ids[n:]) == format_target("5.2 Ah", "fewshot") == " 5.2 Ah\n"
    assert tok.eos_token_id not in enc.input_ids[n:]


def test_bos_is_not_doubled_when_the_template_writes_it():
    tok = tiny_tokenizer()
    ids = D.encode_prompt(tok, "<s>hello")
    assert ids.count(tok.bos_token_id) == 1


def test_too_long_prompts_are_dropped_and_long_answers_cut():
    tok = tiny_tokenizer()
    fmt = D.PromptFormat("chat", D.chat_renderer(tok))
    short = D.SFTExample("Q?", "x" * 500, "en", "t:1")
    long_q = D.SFTExample("Q" * 600, "a", "en", "t:2")
    items, dropped = D.encode_all(tok, fmt, [short, long_q], max_len=256)
    assert dropped == 1 and len(items) == 1
    assert len(items[0].input_ids) == 256 and items[0].n_target > 0


def test_heldout_split_is_deterministic_and_disjoint():
    ex = [D.SFTExample(f"q{i}", "a", "en", "") for i in range(100)]
    tr, ev = D.split_heldout(ex, 0.1, seed=3)
    assert len(ev) == 10 and len(tr) == 90
    assert not {e.question for e in tr} & {e.question for e in ev}
    assert D.split_heldout(ex, 0.1, seed=3)[1] == ev
    assert D.split_heldout(ex[:10], 0.1, seed=3) == (ex[:10], [])  # too few to hold any out


def test_length_grouped_batches_cover_every_example_once_with_less_padding():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(10, 300) for _ in range(1000)]
    batches = D.length_grouped_batches(lengths, 8, seed=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    assert batches == D.length_grouped_batches(lengths, 8, seed=1)
    assert batches != D.length_grouped_batches(lengths, 8, seed=2)

    def padded(bs):
        return sum(len(b) * max(lengths[i] for i in b) for b in bs)

    order = list(range(1000))
    rng.shuffle(order)
    random_batches = [order[k:k + 8] for k in range(0, 1000, 8)]
    assert padded(batches) < 0.7 * padded(random_batches)


def test_collate_pads_right_and_masks_padding():
    items = [D.Encoded([5, 6, 7], [D.IGNORE, 6, 7]), D.Encoded([5], [D.IGNORE])]
    b = D.collate(items, pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert b["labels"].tolist() == [[D.IGNORE, 6, 7], [D.IGNORE, D.IGNORE, D.IGNORE]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
