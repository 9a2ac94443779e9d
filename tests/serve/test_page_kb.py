"""The page's knowledge-base manager and conversations in headless Debian chromium (Playwright).

Create a knowledge base, upload two files (one Chinese; one chosen, one dropped), watch the ingest
progress, ask a question answered only from the uploaded file and open its [1] passage, ask a
follow-up answered from the conversation, keep and reopen the chat, delete the file (confirmed)
and see the same question refused. A fake chat-style generator answers from whatever passages the
prompt holds, so what is checked is the page and the server, not a model.
"""

from __future__ import annotations

import json

import pytest

from .conftest import FakeGenerator
from .test_page import browser, expect, open_page  # noqa: F401  (the module-scoped browser fixture)

pytestmark = pytest.mark.browser
EN = "# Falcon Z9\n\nThe Falcon Z9 weighs 1,240 grams with its battery. Folded, it is 21 cm long.\n"
ZH = "云雀K5扫地机的尘盒容量是450毫升，续航时间为150分钟。\n"


class ChatFake(FakeGenerator):
    prompt_style = "chat"


def reply(prompt: str) -> str:
    if "Say what the user's last question is about" in prompt:
        return "the Falcon Z9"
    if "rewrite the user's last question" in prompt:
        return "How long is the Falcon Z9 when folded?"
    if "21 cm" in prompt and "folded" in prompt.split("Question:")[-1]:
        return "Folded, the Falcon Z9 is 21 cm long [1]."
    if "1,240 grams" in prompt:
        return "The Falcon Z9 weighs 1,240 grams [1]."
    return "I don't know."


def test_knowledge_base_upload_ask_follow_up_and_delete(browser, kb_serve, gated_embedder, tmp_path):  # noqa: F811
    gen = ChatFake(reply=reply)
    srv = kb_serve(generator=gen)
    page, errors = open_page(browser, srv)
    page.on("dialog", lambda d: d.accept())  # the delete confirmations
    page.fill("#kb-name", "manuals")
    page.click("#kb-create")
    expect(page.locator("#index option")).to_have_text(["manuals (0)"])
    expect(page.locator("#kb-current")).to_have_text("manuals")

    gated_embedder.gate.clear()  # hold the ingest so that its progress shows
    (tmp_path / "falcon-z9.md").write_text(EN, encoding="utf-8")
    page.set_input_files("#file-input", str(tmp_path / "falcon-z9.md"))
    expect(page.locator("#job-status")).to_contain_text("Indexing")
    assert page.is_visible("#progress")
    dropped = page.evaluate_handle(
        "(text) => { const dt = new DataTransfer(); dt.items.add(new File([text], '云雀说明.txt')); return dt; }", ZH)
    page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
    expect(page.locator("#files tbody tr")).to_have_count(2)
    gated_embedder.gate.set()
    expect(page.locator("#job-status")).to_have_text("Indexed", timeout=20_000)
    expect(page.locator("#files tbody .st")).to_have_text(["indexed", "indexed"], timeout=20_000)
    assert sorted(page.locator("#files tbody tr").evaluate_all("rs => rs.map(r => r.dataset.file)")) == \
        sorted(["falcon-z9.md", "云雀说明.txt"])

    page.fill("#question", "How much does the Falcon Z9 weigh?")
    page.click("#ask")
    expect(page.locator("#status")).to_have_text("Done")
    assert page.text_content("#answer") == "The Falcon Z9 weighs 1,240 grams 1."
    page.locator("#answer .chip").click()
    assert "falcon-z9.md" in page.text_content("#passage-meta")
    assert "1,240 grams" in page.text_content("#passage-text mark")

    page.fill("#question", "How long is it when folded?")
    page.click("#ask")
    expect(page.locator("#answer")).to_have_text("Folded, the Falcon Z9 is 21 cm long 1.")
    expect(page.locator("#status")).to_have_text("Done")
    assert "The Falcon Z9 weighs 1,240 grams" in page.text_content("#thread")  # the earlier turn is shown
    # and was sent as history: the model named what the follow-up is about from it, and the answer's
    # prompt holds the follow-up with that name in place of "it"
    assert "The Falcon Z9 weighs 1,240 grams." in gen.prompts[-2] and "Say what the user's" in gen.prompts[-2]
    assert "Question: How long is the Falcon Z9 when folded?" in gen.prompts[-1]
    chats = json.loads(page.evaluate("localStorage.getItem('ragkit-chats')"))
    assert len(chats) == 1 and len(chats[0]["messages"]) == 4

    page.click("#new-chat")
    assert page.text_content("#thread") == "" and page.text_content("#answer") == ""
    page.locator("#chats button").first.click()  # the earlier chat comes back
    expect(page.locator("#thread")).to_contain_text("How much does the Falcon Z9 weigh?")
    assert page.text_content("#answer") == "Folded, the Falcon Z9 is 21 cm long 1."

    page.locator("#files tr[data-file='falcon-z9.md'] button").click()
    expect(page.locator("#files tbody tr")).to_have_count(1, timeout=20_000)
    expect(page.locator("#job-status")).to_have_text("Indexed", timeout=20_000)
    page.click("#new-chat")
    page.fill("#question", "How much does the Falcon Z9 weigh?")
    page.click("#ask")
    expect(page.locator("#status")).to_have_text("Done")
    assert "refused" in page.get_attribute("#answer-card", "class")
    assert page.locator("#chats li").count() == 2

    page.click("#lang")
    assert page.text_content("#kb-create") == "创建" and page.text_content("#files .st") == "已索引"
    assert page.text_content("#new-chat") == "新对话"
    page.click("#kb-delete")
    expect(page.locator("#index option")).to_have_count(0)
    assert not (srv.data / "kb" / "manuals").exists()
    assert errors == []
