"""The openai backend sends chat prompts as messages because render_chat says they are (a
ChatPrompt), not because the text happens to start with "[{"; in-process, over httpx's MockTransport."""

from __future__ import annotations

import json

import httpx

from ragkit.generate.base import ChatPrompt, Decoding
from ragkit.generate.openai import OpenAIGenerator


def server(seen: list):
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "m", "max_model_len": 2048}]})
        if request.url.path.endswith("tokenize"):
            return httpx.Response(404)
        body = json.loads(request.content)
        seen.append((request.url.path, body))
        chat = request.url.path.endswith("/chat/completions")
        delta = {"delta": {"content": "24 months"}} if chat else {"text": "24 months"}
        events = [{"choices": [{**delta, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}]
        text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handle)


def test_chat_prompt_goes_as_messages_and_text_as_a_completion():
    seen: list = []
    gen = OpenAIGenerator("http://127.0.0.1:9/v1", prompt_style="chat", transport=server(seen))
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Warranty?"}]
    prompt = gen.render_chat(messages)
    assert isinstance(prompt, ChatPrompt) and prompt.messages == messages and json.loads(prompt) == messages
    assert gen.generate(prompt, Decoding(max_tokens=8)).text == "24 months"
    assert seen[-1][0] == "/v1/chat/completions" and seen[-1][1]["messages"] == messages
    # A plain prompt that merely looks like JSON is text for /v1/completions, not guessed to be chat.
    looks_like = json.dumps(messages)
    gen.generate(looks_like, Decoding(max_tokens=8))
    assert seen[-1][0] == "/v1/completions" and seen[-1][1]["prompt"] == looks_like


def test_counting_a_chat_prompt_counts_its_messages():
    gen = OpenAIGenerator("http://127.0.0.1:9/v1", prompt_style="chat", transport=server([]))
    prompt = gen.render_chat([{"role": "user", "content": "abcd"}])
    # No tokenizer endpoint: 4 bytes // 2 + 1 for the content, plus 8 for the template's markup.
    assert gen.count_tokens(prompt) == 3 + 8
