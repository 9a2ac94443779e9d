"""Prompt building: the exact text a model sees for a question, in two styles and two languages.

Styles:
- ``chat``: zero-shot instructions inside the model's chat template, for instruction models.
  The answer ends at the model's end-of-turn token (eos); ``answer_stop("chat")`` adds nothing.
- ``fewshot``: worked examples in a plain completion prompt, for base models. The verified
  format for gemma3-270m is ``资料: … / 问题: … / 答案:`` (English: ``Context:/Question:/Answer:``);
  the answer is one line, so generation stops at ``"\\n"``.

The SFT trainer builds its examples as ``format_prompt(q, None, style, lang, render_chat)`` +
``format_target(answer, style)`` (+ the tokenizer's eos token for chat), so that training and
inference prompts match byte for byte: everything here is deterministic (no dates, no randomness).

Context passages are numbered ``[1]..[k]`` in retrieval order with their source names; the model
is asked to cite those numbers. `build_prompt` trims the prompt to a token budget, counting with
the model's tokenizer: first fewer worked examples, then fewer passages, then a shorter passage.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..errors import ContextOverflow, UsageError
from ..reason.parse import REASONING_FORMAT
from ..types import Hit
from .base import PROMPT_STYLES

# What ends an answer, per style: the trainer appends this after the target text.
END_MARKER = {"chat": "eos", "fewshot": "\n"}

REFUSAL = {"en": "I don't know", "zh": "不知道"}

_LABELS = {
    "en": {"context": "Context", "question": "Question", "answer": "Answer", "source": "source",
           "page": "page {}", "colon": ": ", "open": " (", "close": ")", "sep": ", "},
    # Full-width colons: with them gemma3-270m answered more Chinese questions than with ASCII ones.
    "zh": {"context": "资料", "question": "问题", "answer": "答案", "source": "来源",
           "page": "第{}页", "colon": "：", "open": "（", "close": "）", "sep": "，"},
}

_SYSTEM_RAG = {
    "en": (
        "You answer questions using only the numbered context passages. Keep the answer short and "
        "cite the numbers of the passages you used in square brackets, like [1]. If the passages do "
        f"not contain the answer, reply exactly: {REFUSAL['en']}."
    ),
    "zh": (
        "你只根据编号的资料回答问题。回答要简短，并用方括号注明所依据的资料编号，例如 [1]。"
        f"如果资料中没有答案，请直接回答：{REFUSAL['zh']}。"
    ),
}
# The reasoning variant (`reason` on, ragkit/reason/): the same system text and passages, the
# question followed by the format to write (REASONING_FORMAT: facts with their passage numbers, one
# expression that ragkit computes, the answer), and the answer started with the first label
# (REASON_LABELS), so that even a small model keeps to the format.
REASON_LABELS = {"en": ("Facts:", "Calculation:", "Answer:"), "zh": ("事实：", "计算：", "答案：")}
_SYSTEM_CLOSED = {
    "en": f"Answer the question briefly. If you do not know the answer, reply exactly: {REFUSAL['en']}.",
    "zh": f"请简短回答问题。如果你不知道答案，请直接回答：{REFUSAL['zh']}。",
}

# Worked examples for the few-shot style, from an invented domain unrelated to any corpus so that
# no example leaks an answer: (source, passage, question, answer), answer None = refusal.
_RAG_EXAMPLES = {
    "en": [
        ("ferry.md", "The Bay Ferry runs every 30 minutes between 6:00 and 22:00; a single ticket costs 4 dollars.",
         "Who built the boats of the Bay Ferry?", None),
        ("bakery.md", "Miller's Bakery was founded in 1998 by Anna Miller and now has three shops.",
         "Who founded Miller's Bakery?", "Anna Miller"),
        ("garden-club.md", "The Riverside Garden Club is based in Greenhill and meets on the first Monday of each month.",
         "Where is the Riverside Garden Club based?", "Greenhill"),
    ],
    "zh": [
        ("ferry.md", "海湾渡轮在 6:00 至 22:00 之间每 30 分钟一班，单程票 4 元。", "海湾渡轮的船是谁造的？", None),
        ("bakery.md", "米勒面包店由安娜·米勒于 1998 年创办，现在有三家门店。", "米勒面包店是谁创办的？", "安娜·米勒"),
        ("garden-club.md", "河滨园艺俱乐部位于青山镇，每月第一个星期一在社区礼堂聚会。", "河滨园艺俱乐部位于哪个镇？", "青山镇"),
    ],
}
_CLOSED_EXAMPLES = {
    "en": [("What is my neighbour's name?", None),
           ("What is the capital of France?", "Paris"),
           ("How many days are there in a week?", "Seven")],
    "zh": [("我邻居叫什么名字？", None),
           ("法国的首都是哪里？", "巴黎"),
           ("一个星期有几天？", "七天")],
}
# Which examples, in which order, for 0-3 examples. Measured with gemma3-270m on the sample corpus
# (12 questions a language, top passage): refusal first then two answers (R, A, A) answered 7/12
# in both languages, (A, R, A) 3/12 and (A, A, A) 5/12 in Chinese; small base models copy the
# example nearest the question, so that one is always answerable.
_EXAMPLE_ORDER = {0: (), 1: (1,), 2: (0, 1), 3: (0, 1, 2)}
DEFAULT_EXAMPLES = 2  # format_prompt's default: what the SFT trainer's closed-book prompts use
RAG_EXAMPLES = 3  # what the Pipeline uses with retrieved passages (see the measurement above)


@dataclass
class PromptPlan:
    """A rendered prompt and what went into it after trimming."""

    text: str
    hits: list[Hit] | None  # the passages in the prompt, numbered 1..len (None: closed-book)
    examples: int
    tokens: int | None = None  # counted with the model's tokenizer, when one was given
    truncated: bool = False  # the last passage was cut short to fit


def answer_stop(style: str) -> list[str]:
    """Stop strings that end an answer in this style (chat ends at the model's eos token)."""
    _check_style(style)
    return ["\n"] if style == "fewshot" else []


def header_stops() -> list[str]:
    """Stop strings for a model that starts writing a passage header of its own ("[4] (source:").

    Small chat models sometimes continue an answer by imitating the context format; `make demo`
    once printed "…unchanged.\n\n[4] (source: en/w [2]". Two strings, one per language, so that
    with the user's stops they stay within the four an OpenAI server takes; `cut_header_fragment`
    removes the "[4]" left before the stop, and `HeaderGuard` keeps a stream from showing it.
    """
    return [f"{L['open'].strip()}{L['source']}{L['colon'].strip()}" for L in _LABELS.values()]


_HEADER = re.compile(
    r"\s*(?:\[\d+\]\s*)?[(（]\s*(?:source|来源)\s*[:：]|\n\s*\[\d+\]\s*$", re.IGNORECASE
)
# Every passage header with spaces removed and numbers as 1: what a stream must not show the start of.
_HEADER_FORMS = tuple(
    f"{n}{L['open'].strip()}{L['source']}{L['colon'].strip()}".lower()
    for L in _LABELS.values() for n in ("[1]", "")
)


def cut_header_fragment(text: str) -> str:
    """`text` up to the first piece of passage-header format in it (none of it is ever answer)."""
    m = _HEADER.search(text)
    return (text[: m.start()] if m else text).rstrip()


def could_start_header(tail: str) -> bool:
    """True when `tail` may be the beginning of a passage header ("[4", "[4] (sou", "（来")."""
    norm = re.sub(r"\d+", "1", re.sub(r"\s+", "", tail)).lower()
    return bool(norm) and any(form.startswith(norm) for form in _HEADER_FORMS)


class HeaderGuard:
    """Streams answer text, holding back whatever could still turn into a passage header (and the
    whitespace around it), so that what was streamed is always a prefix of the final answer; and an
    answer that opens with the refusal ("I don't know", 不知道) is not streamed at all, since the
    pipeline replaces it (the canonical refusal, or an answer from whole passages)."""

    _LOOKBACK = 24  # longer than any header prefix worth holding ("[12] (source:" is 13 characters)

    def __init__(self, on_token: Callable[[str], None]):
        self.on_token = on_token
        self.text = ""
        self.sent = 0

    def feed(self, piece: str) -> None:
        self.text = self.text + piece if self.sent else (self.text + piece).lstrip()
        if not self.sent and any(r.startswith(self.text) or self.text.startswith(r) for r in REFUSAL.values()):
            return  # a refusal, or still possibly one
        hold = len(self.text)
        for i in range(max(self.sent, len(self.text) - self._LOOKBACK), len(self.text)):
            if self.text[i] in "[(（" and could_start_header(self.text[i:]):
                hold = i
                break
        hold = len(self.text[:hold].rstrip())
        if hold > self.sent:
            self.on_token(self.text[self.sent:hold])
            self.sent = hold

    def finish(self, answer: str) -> None:
        """Send the rest of the final `answer` (the stream so far is a prefix of it), unless it is a
        refusal held back from the start."""
        if not self.sent and any(answer.startswith(r) for r in REFUSAL.values()):
            return
        if answer.startswith(self.text[: self.sent]) and len(answer) > self.sent:
            self.on_token(answer[self.sent:])


def format_target(answer: str, style: str, lang: str | None = None) -> str:
    """The text that follows the prompt for a given answer: the SFT target, with the few-shot end
    marker; for chat the trainer appends the tokenizer's eos token.

    English few-shot prompts end with "Answer:" and the answer follows a space; Chinese ones end
    with a full-width "答案：" and the answer follows directly. Without `lang`, the answer's own
    script decides (an answer of digits only then gets the English space).
    """
    _check_style(style)
    answer = answer.strip()
    if style == "chat":
        return answer
    lang = lang or ("zh" if any("\u3400" <= ch <= "\u9fff" for ch in answer) else "en")
    return f"{answer}\n" if lang == "zh" else f" {answer}\n"


def plain_chat(messages: list[dict]) -> str:
    """A template-free chat rendering, used only when no model template is supplied (tests,
    servers that take messages)."""
    parts = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(parts) + "\n\nAssistant:"


def format_passage(n: int, hit: Hit, lang: str, one_line: bool = False) -> str:
    """`[n] (source: a.md, page 3) text`; the chat style puts the text on its own lines."""
    L = _LABELS[lang]
    label = f"{L['source']}{L['colon']}{hit.source}"
    if hit.page is not None:
        label += L["sep"] + L["page"].format(hit.page)
    text = " ".join(hit.text.split()) if one_line else hit.text.strip()
    # A full-width bracket already separates the label from the text; an ASCII one needs a space.
    gap = "\n" if not one_line else ("" if L["close"] == "）" else " ")
    return f"[{n}]{L['open']}{label}{L['close']}{gap}{text}"


def format_prompt(
    question: str,
    hits: list[Hit] | None,
    style: str,
    lang: str,
    render_chat: Callable[[list[dict]], str] | None = None,
    examples: int = DEFAULT_EXAMPLES,
    reason: bool = False,
) -> str:
    """The fully rendered prompt for `question`; `hits=None` is closed-book (no context).

    `style`/`lang` may be given by position or keyword. For the chat style, `render_chat`
    applies the model's chat template with the generation prompt (default: `plain_chat`).
    `examples` (0-3) worked examples are used by the few-shot style only. `reason` asks for the
    facts, a calculation and the answer (chat style with passages only; see REASON_LABELS).
    """
    _check_style(style)
    if lang not in _LABELS:
        raise ValueError(f"lang must be one of {', '.join(_LABELS)}, not {lang!r}")
    if not 0 <= examples <= 3:
        raise ValueError("examples must be between 0 and 3")
    question = " ".join(question.split())
    if reason and (style != "chat" or hits is None):
        raise ValueError("the reasoning prompt is a chat prompt with passages")
    if style == "chat":
        text = (render_chat or plain_chat)(chat_messages(question, hits, lang, reason))
        return text + REASON_LABELS[lang][0] if reason else text
    return _fewshot(question, hits, lang, examples)


def chat_messages(question: str, hits: list[Hit] | None, lang: str, reason: bool = False) -> list[dict]:
    L = _LABELS[lang]
    q = f"{L['question']}{L['colon']}{question}"
    if hits is None:
        return [{"role": "system", "content": _SYSTEM_CLOSED[lang]}, {"role": "user", "content": q}]
    passages = "\n\n".join(format_passage(i, h, lang) for i, h in enumerate(hits, 1))
    user = f"{L['context']}{L['colon'].rstrip()}\n{passages}\n\n{q}"
    if reason:
        user += "\n\n" + REASONING_FORMAT[lang].strip()
    return [{"role": "system", "content": _SYSTEM_RAG[lang]}, {"role": "user", "content": user}]


_INSTRUCTION = {
    "en": "The user also asks (follow it only where it does not conflict with the rules above): ",
    "zh": "用户另有要求（只在不违背上述规则时遵守）：",
}


_EARLIER = {
    "en": ("Earlier in this conversation:", "User", "Assistant"),
    "zh": ("此前的对话：", "用户", "助手"),
}


def with_conversation(messages: list[dict], history: list[dict] | None, instructions: str | None,
                      lang: str) -> list[dict]:
    """Chat messages with a conversation's earlier turns at the top of the last user message, and
    the user's system instruction after the grounding rules (inside the system message, so the
    rules come first and the instruction cannot replace them). `history` holds {"role": "user" |
    "assistant", "content"} turns, already trimmed to their budget (ragkit/conversation.py).

    The turns are a quoted block, not chat turns of their own: as turns, a small model continued
    the conversation's style instead of the answer format ("It is loud while mowing." where the same
    question alone got "58 dB(A) [2]"; evals/conversation_followups.py, results in
    evals/results/serve/conversation.json), and the prompt keeps the shape it has without history."""
    out = [dict(m) for m in messages]
    if instructions and out and out[0]["role"] == "system":
        out[0]["content"] += "\n\n" + _INSTRUCTION[lang] + " ".join(instructions.split())
    turns = [m for m in history or () if m.get("role") in ("user", "assistant")]
    if turns and out and out[-1]["role"] == "user":
        label, user, assistant = _EARLIER[lang]
        colon = "：" if lang == "zh" else ": "
        lines = [f"{user if m['role'] == 'user' else assistant}{colon}{' '.join(str(m['content']).split())}"
                 for m in turns]
        out[-1]["content"] = label + "\n" + "\n".join(lines) + "\n\n" + out[-1]["content"]
    return out


def _fewshot(question: str, hits: list[Hit] | None, lang: str, examples: int) -> str:
    # One block per example and for the question: the passages on one line after the context
    # label, then the question, then the answer label the model completes (one line).
    L = _LABELS[lang]
    c, q, a = (L[k] + L["colon"] for k in ("context", "question", "answer"))
    blocks = []
    for i in _EXAMPLE_ORDER[examples]:
        if hits is None:
            eq, ea = _CLOSED_EXAMPLES[lang][i]
            blocks.append(f"{q}{eq}\n{a}{ea or REFUSAL[lang]}\n")
        else:
            src, text, eq, ea = _RAG_EXAMPLES[lang][i]
            passage = format_passage(1, Hit(1, "", src, 1.0, text, None, 0, 0), lang, one_line=True)
            blocks.append(f"{c}{passage}\n{q}{eq}\n{a}{ea or REFUSAL[lang]}\n")
    if hits is None:
        blocks.append(f"{q}{question}\n{a.rstrip()}")
    else:
        ctx = " ".join(format_passage(n, h, lang, one_line=True) for n, h in enumerate(hits, 1))
        blocks.append(f"{c}{ctx}\n{q}{question}\n{a.rstrip()}")
    return "\n".join(blocks)


_MARK = "\ue000"  # a private-use character no prompt contains


def fixed_prefix(
    style: str,
    lang: str,
    rag: bool,
    render_chat: Callable[[list[dict]], str] | None = None,
    examples: int = DEFAULT_EXAMPLES,
    reason: bool = False,
) -> str:
    """The start every prompt of this kind shares, whatever the question and passages: the system
    text and the chat template's opening, or the few-shot examples. A backend that can keep a
    read prefix (llamacpp's `keep_prefix`) reads it once per loaded model.

    It is the rendered prompt up to the last line break before the first variable text."""
    hits = [Hit(1, "", _MARK, 1.0, _MARK, None, 0, 0)] if rag else None
    text = format_prompt(_MARK, hits, style, lang, render_chat, examples, reason)
    head = text[: text.index(_MARK)]
    return head[: head.rfind("\n") + 1]


def build_prompt(
    question: str,
    hits: list[Hit] | None,
    style: str,
    lang: str,
    render_chat: Callable[[list[dict]], str] | None = None,
    examples: int = DEFAULT_EXAMPLES,
    *,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
    reason: bool = False,
) -> PromptPlan:
    """`format_prompt`, trimmed to at most `max_tokens` prompt tokens by `count_tokens`.

    Trimming order, cheapest loss first: worked examples down to one, passages from the lowest
    ranked down to one, the remaining passage cut short, the last example. Raises
    ContextOverflow when even the bare question does not fit.
    """
    if not question.strip():
        raise UsageError("the question is empty; ask something, e.g. ragkit ask \"How long is the warranty?\"")
    hits = list(hits) if hits is not None else None
    n_ex = examples if style == "fewshot" else 0

    def render(hs, ex):
        return format_prompt(question, hs, style, lang, render_chat, ex if style == "fewshot" else examples,
                             reason and hs is not None)

    if count_tokens is None or max_tokens is None:
        return PromptPlan(render(hits, n_ex), hits, n_ex)

    def fits(hs, ex):
        text = render(hs, ex)
        n = count_tokens(text)
        return (text, n) if n <= max_tokens else None

    # Fewer worked examples, then fewer passages (always keeping the top one).
    while True:
        got = fits(hits, n_ex)
        if got:
            return PromptPlan(got[0], hits, n_ex, got[1])
        if n_ex > 1:
            n_ex -= 1
        elif hits and len(hits) > 1:
            hits = hits[:-1]
        else:
            break
    # Cut the one passage left to the longest prefix that fits (binary search on characters),
    # first with one worked example, then with none.
    for ex in dict.fromkeys([n_ex, 0]):
        if not hits:
            got = fits(hits, ex)
            if got:
                return PromptPlan(got[0], hits, ex, got[1])
            continue
        top = hits[0]
        lo, hi, best = 20, len(top.text), None  # under 20 characters a passage is no use
        while lo <= hi:
            mid = (lo + hi) // 2
            got = fits([replace(top, text=top.text[:mid].rstrip() + " …")], ex)
            if got:
                best, lo = got, mid + 1
            else:
                hi = mid - 1
        if best:
            cut = replace(top, text=top.text[: lo - 1].rstrip() + " …")
            return PromptPlan(best[0], [cut], ex, best[1], truncated=True)
    bare = count_tokens(render(None, 0))
    if bare > max_tokens:
        what = f"the question alone needs {bare} prompt tokens"
    else:
        what = "the question with even a short passage does not fit"
    raise ContextOverflow(
        f"{what}, but the model's context leaves room for only {max_tokens}; "
        "shorten the question, lower --max-tokens or raise --n-ctx"
    )


def _check_style(style: str) -> None:
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt style must be one of {', '.join(PROMPT_STYLES)}, not {style!r}")
