"""A conversation's follow-up as a question retrieval can use, and the turns the prompt keeps.

"How much does it weigh?" retrieves nothing useful on its own: its subject is in an earlier turn.
`standalone_question` turns a follow-up into a question that stands alone before retrieval:

- a cheap rule first: a question with no pronoun, demonstrative or ellipsis ("it", "they",
  "what about", "那", "呢", "它", ...) that names a thing or is long is kept as it is (no model call);
- else, unless the follow-up is only a frame ("What about the M5?", "那电池呢？"), the model names
  what it is about ("the Kestrel V7's dustbin", at most `REFERENT_TOKENS` tokens, temperature 0),
  that name is cut to words the conversation says (`referent_phrase`: a small model often answers
  or repeats the question instead), and put in place of the pronoun, the asker's own words kept
  ("What is its capacity?" → "What is the Kestrel V7's dustbin's capacity?"; "最大能爬多陡的坡？" →
  "隼鸟 M5 最大能爬多陡的坡？"). A free rewrite paraphrased: it turned "how steep a slope can it
  climb" into "can it work on slopes" and lost the dustbin;
- a follow-up that names a thing of its own means another by its pronoun ("How much does it cost
  for the Kestrel V7?" after "What is Kestrel Care+?"). The model then tends to name the follow-up's
  own thing, so a name that is the follow-up's is no referent (`referent_phrase`), and the thing the
  last user turn names is put in place of the pronoun instead (`previous_subject`, a rule, no
  model call). The same rule stands in for a free rewrite that failed, before the fallback;
- else the model rewrites it from the last turns, in at most `REWRITE_TOKENS` tokens at
  temperature 0 (one short generation on the same model, on the same worker);
- a rewrite that comes back empty, as a refusal, as an answer rather than one question (no final
  '?'), far longer than the question, or still leaning on the conversation (qwen2.5-coder-0.5b
  often returns the follow-up unchanged) falls back to the previous user question followed by the
  follow-up, which keeps the subject's words for search (for search only: `Rewrite.ask_and_search`).

`recent_turns` keeps the latest user/assistant turns within `HISTORY_TOKENS` prompt tokens (the
oldest go first); Pipeline.answer puts them before the question (prompts.with_conversation),
and a system message goes in as an instruction after the grounding rules, never instead of them.

`follow_up` decides what one turn of a conversation asks, searches and shows, for the server and
the measurement alike. The earlier turns go into the answer's prompt only where the question
still leans on them: a follow-up whose rewrite fell back, and a closed-book conversation. Beside a
standalone rewrite they misled qwen2.5-coder-1.5b: with the rewrite and the gold passage in hand,
it answered the previous turn's subject (a "5,000 mL" water tank, the M5's area for the M3).
The measurement, both ways in one run: evals/conversation_followups.py, results in
evals/results/serve/conversation.json.
"""

from __future__ import annotations

import inspect
import re
import threading
import time
from dataclasses import dataclass

from .generate.base import Decoding, GenerationCancelled, Generator, ms_since
from .generate.citations import is_refusal, strip_citations
from .lang import EN_STOPWORDS, detect_language, word_spans

REWRITE_TOKENS = 40  # a standalone question is one short sentence
REFERENT_TOKENS = 24  # a name: "the Kestrel V7's dustbin"
HISTORY_TOKENS = 384  # earlier turns kept in the prompt
MAX_TURNS = 6
_EN_REFERS = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|he|him|his|she|her|one|ones|there|"
    r"same|other|else|former|latter|above|mentioned)\b|^(and|also|what about|how about|and what|so)\b",
    re.I)
# a thing named by a code or a Latin name (M5, V7, X2, Kestrel in a Chinese question), or quoted
_CODE = re.compile(r"[A-Za-z]+\d|\d+[A-Za-z]")
_NAMED = re.compile(r"[A-Za-z]+\d|\d+[A-Za-z]|[A-Za-z]{2,}|[《“「\"]")
_ZH_REFERS = re.compile(r"它|他|她|这|那|其|此|该|上述|前者|后者|呢[?？]?$|^还|^那么|^另外")

_REWRITE_SYSTEM = {
    "en": "You rewrite the user's last question so that it can be understood without the conversation: "
          "replace words like 'it' or 'they' with what they refer to. Do not answer it. Reply with one "
          "question only.",
    "zh": "把用户的最后一个问题改写成不看对话也能看懂的完整问题：把“它”“这个”等词换成所指的东西。不要回答问题，只输出改写后的问题。",
}
_LABEL = {"en": ("Conversation", "Last question", "Standalone question"), "zh": ("对话", "最后的问题", "完整问题")}
# One worked example (an invented product, so it leaks no answer): small models otherwise answer
# the question instead of rewriting it.
_EXAMPLE = {
    "en": ([{"role": "user", "content": "Tell me about the Heron H2 kettle."},
            {"role": "assistant", "content": "The Heron H2 is an electric kettle."}],
           "How much water does it hold?", "How much water does the Heron H2 kettle hold?"),
    "zh": ([{"role": "user", "content": "介绍一下苍鹭H2电水壶。"}, {"role": "assistant", "content": "苍鹭H2是一款电水壶。"}],
           "它能装多少水？", "苍鹭H2电水壶能装多少水？"),
}


_REFERENT_SYSTEM = {
    "en": "Say what the user's last question is about. Reply with the name of that thing only, copied from the "
          "conversation, for example a product or a part of it. Do not answer the question.",
    "zh": "说出用户最后一个问题问的是什么东西。只输出这个东西的名称，照抄对话里的说法，例如一个产品或产品的某个部件。不要回答问题。",
}
_REFERENT_EXAMPLE = {
    "en": ([{"role": "user", "content": "Does the Heron H2 kettle have a filter?"},
            {"role": "assistant", "content": "Yes, the Heron H2 has a limescale filter."}],
           "How often should I change it?", "the Heron H2 kettle's limescale filter"),
    "zh": ([{"role": "user", "content": "苍鹭H2电水壶有滤网吗？"}, {"role": "assistant", "content": "有，苍鹭H2带一个水垢滤网。"}],
           "多久换一次？", "苍鹭H2电水壶的水垢滤网"),
}
_REFERENT_LABEL = {"en": "It is about: ", "zh": "问的是："}
# a follow-up that is only a frame has no words of its own to keep: the free rewrite takes it
_FRAME_ONLY = {"en": re.compile(r"^\s*(?:and\s+|so\s+)?(?:what|how)\s+about\b|^\s*(?:and|also)\s+(?:the|for|in)\b", re.I),
               "zh": re.compile(r"呢\s*[?？。]?\s*$")}
_EN_PRONOUN = re.compile(r"\b(its|their|it|they|them)\b", re.I)
_ZH_PRONOUN = re.compile(r"它们的|它的|它们|它")
_FUNCTION_WORDS = frozenset({"the", "a", "an", "of", "s", "的", "之"})
_NUMBER = re.compile(r"[\d.]+")


@dataclass
class Rewrite:
    question: str  # what retrieval searches with: the standalone question (the follow-up itself
    # when no rewrite was needed), or for the fallback the previous question + the follow-up
    method: str  # none | rule | referent | subject | model | fallback
    ms: float = 0.0

    def ask_and_search(self, asked: str) -> tuple[str, str | None]:
        """(the question the model answers, the query retrieval uses instead, or None). A fallback
        is for search only: given as the question, the model answered its first half, the
        previous question (evals/conversation_followups.py); the follow-up as asked is answered,
        with the conversation in the prompt."""
        if self.method == "fallback":
            return asked, self.question
        return self.question, None


@dataclass
class FollowUp:
    """One conversation turn, ready for Pipeline.answer(question, query=query, history=turns)."""

    question: str  # what the model answers
    query: str | None  # what retrieval searches with instead, or None: the question
    turns: list[dict] | None  # the earlier turns the prompt keeps, or None
    rewrite: Rewrite | None  # None: no rewrite was tried (no history, or closed book)


def follow_up(gen: Generator, history: list[dict], asked: str, *, closed_book: bool = False,
              cancel: threading.Event | None = None, turns_in_prompt: str = "when_needed") -> FollowUp:
    """What to answer, search and show for `asked` after `history` (see the module docstring).
    `turns_in_prompt`: "when_needed" (the default: after a fallback, and closed book) or
    "always" (the measurement's other arm)."""
    if not history:
        return FollowUp(asked, None, None, None)
    turns = recent_turns(history, gen.count_tokens) or None
    if closed_book:
        return FollowUp(asked, None, turns, None)
    rewrite = standalone_question(gen, history, asked, cancel=cancel)
    question, query = rewrite.ask_and_search(asked)
    keep = turns_in_prompt == "always" or rewrite.method in ("fallback", "none")
    return FollowUp(question, query, turns if keep else None, rewrite)


def needs_context(question: str) -> bool:
    """True when the question seems to lean on earlier turns: a pronoun, a demonstrative, ellipsis,
    or a short question that names nothing ("容量是多少？", "How big is the dust bag?"), whose
    subject can only be in an earlier turn."""
    q = question.strip()
    if detect_language(q) == "zh":
        return bool(_ZH_REFERS.search(q)) or len(q) < 6 or (len(q) < 12 and not _NAMED.search(q))
    words = q.split()
    named = any(_CODE.search(w) or w[:1].isupper() for w in words[1:])
    return bool(_EN_REFERS.search(q)) or len(words) < 4 or (len(words) < 8 and not named)


def recent_turns(history: list[dict], count_tokens, budget: int = HISTORY_TOKENS,
                 max_turns: int = MAX_TURNS) -> list[dict]:
    """The latest user/assistant turns that fit in `budget` tokens, oldest first; citation
    markers are stripped from answers (their numbers belong to another turn's passages)."""
    kept: list[dict] = []
    used = 0
    for m in reversed(history):
        if m.get("role") not in ("user", "assistant") or not str(m.get("content") or "").strip():
            continue
        text = str(m["content"]).strip()
        if m["role"] == "assistant":
            text = strip_citations(text).strip()
        n = count_tokens(text)
        if len(kept) >= max_turns or used + n > budget:
            break
        kept.append({"role": m["role"], "content": text})
        used += n
    kept.reverse()
    while kept and kept[0]["role"] != "user":  # a prompt's turns start with the user
        kept.pop(0)
    return kept


def _rewrite_body(turns: list[dict], question: str, lang: str) -> str:
    convo = "\n".join(f"{'User' if m['role'] == 'user' else 'Assistant'}: {' '.join(m['content'].split())}"
                      for m in turns)
    c, q, _ = _LABEL[lang]
    colon = "：" if lang == "zh" else ": "
    return f"{c}{colon}\n{convo}\n{q}{colon}{question}"


def _one_shot_prompt(gen: Generator, system: str, example: tuple, answer_label: str, turns: list[dict],
                     question: str, lang: str) -> str:
    """`system`, one worked `example` (turns, follow-up, reply) and then `turns` + `question`: as chat
    messages for a chat model, else as text, each reply after `answer_label`."""
    ex_turns, ex_q, ex_a = example
    if gen.prompt_style == "chat":
        return gen.render_chat([{"role": "system", "content": system},
                                {"role": "user", "content": _rewrite_body(ex_turns, ex_q, lang)},
                                {"role": "assistant", "content": ex_a},
                                {"role": "user", "content": _rewrite_body(turns, question, lang)}])
    return (f"{system}\n\n{_rewrite_body(ex_turns, ex_q, lang)}\n{answer_label}{ex_a}\n\n"
            f"{_rewrite_body(turns, question, lang)}\n{answer_label}")


def _rewrite_prompt(gen: Generator, turns: list[dict], question: str, lang: str) -> str:
    label = _LABEL[lang][2] + ("：" if lang == "zh" else ": ")
    return _one_shot_prompt(gen, _REWRITE_SYSTEM[lang], _EXAMPLE[lang], label, turns, question, lang)


def _referent_prompt(gen: Generator, turns: list[dict], question: str, lang: str) -> str:
    return _one_shot_prompt(gen, _REFERENT_SYSTEM[lang], _REFERENT_EXAMPLE[lang], _REFERENT_LABEL[lang], turns,
                            question, lang)


def _says(word: str, text: str, words: set[str]) -> bool:
    """`text` says `word`: a Chinese word anywhere in it (segmentation differs between contexts),
    a Latin word as one of its words ("V7's" as "v7")."""
    w = word.removesuffix("'s").removesuffix("’s")
    return (w in text) if not w.isascii() else (w in words)


def referent_phrase(text: str, turns: list[dict], question: str) -> str | None:
    """The model's name for what `question` is about, cut to what the conversation says: it ends
    before the first word that neither the conversation nor the question has (an answer: "隼鸟 V7
    的水箱容量是 10 升"), without the trailing words the question says itself ("the M5's cutting
    width" for "its cutting width") or a trailing "'s"/"的"; None when nothing of the conversation
    is left (the question repeated, a refusal). A number ends it too: a value is an answer, a code
    such as "V7" is part of a name."""
    text = " ".join(strip_citations(text).strip().strip('"“”').split()).rstrip("。.!！")
    if not text or is_refusal(text) or "?" in text or "？" in text:
        return None
    convo = " ".join(str(m["content"]) for m in turns)
    known = {w.removesuffix("'s") for w, _, _ in word_spans(convo)}
    asked = {w.removesuffix("'s") for w, _, _ in word_spans(question)}
    spans = []
    for w, a, b in word_spans(text):
        if _NUMBER.fullmatch(w):
            break  # a value is an answer, not a name ("10 升"); a code ("V7") is a name
        if w in _FUNCTION_WORDS or _says(w, convo, known) or _says(w, question, asked):
            spans.append((w, a, b))
            continue
        break
    while spans and (spans[-1][0] in _FUNCTION_WORDS or _says(spans[-1][0], question, asked)):
        w, a, b = spans.pop()
        if is_name(text[a:b]):
            return None  # the follow-up's own thing ("the V7's dustbin" for "it … the V7's dustbin"): not "it"
    if not any(_says(w, convo, known) for w, _, _ in spans):
        return None
    phrase = text[: spans[-1][2]].strip()
    for tail in ("'s", "’s", "的"):
        phrase = phrase.removesuffix(tail)
    return phrase.strip() or None


def is_name(word: str) -> bool:
    """A product name or a code as written: capitalised (Kestrel, Care+) or letters with digits (V7, 5.2Ah)."""
    return bool(_CODE.search(word)) or word[:1].isupper()


# a run of names and codes as written ("Kestrel Dock Pro", "Kestrel Care+", "M3"), spaces between
_NAME = r"(?:[A-Z][\w\-]*\+?|[A-Za-z]*\d(?:[\w\-]|\.\d)*\+?)"
_NAME_RUN = re.compile(rf"(?<![\w+.]){_NAME}(?: {_NAME})*")


def previous_subject(turns: list[dict], question: str) -> str | None:
    """What the last user turn names that `question` does not: its longest run of names and codes
    ("the Kestrel Dock Pro" in "What is the Kestrel Dock Pro?"), with its article; None when it
    names nothing else. A follow-up that names one thing and says "it" means another (a pronoun
    is not the name its own clause gives): "How much does it cost for the Kestrel V7?" after "What
    is Kestrel Care+?" asks about Care+."""
    last = next((str(m["content"]) for m in reversed(turns) if m["role"] == "user"), "")
    asked = {w.removesuffix("'s") for w, _, _ in word_spans(question)}
    runs = []
    for m in _NAME_RUN.finditer(last):
        words = m[0].split()
        if m.start() == 0 and not _CODE.search(words[0]):
            words.pop(0)  # a sentence's first word ("What", "Tell") is capitalised, not a name
        while words and words[0].lower() in EN_STOPWORDS:
            words.pop(0)  # "My", "The"
        if words and not all(_says(w.lower(), question, asked) for w in words):
            run = " ".join(words)
            the = last[: m.start() + m[0].index(words[0])].rstrip().lower().endswith(" the")
            runs.append(("the " if the else "") + run)
    return max(runs, key=len, default=None)


def spliced(question: str, ref: str, lang: str) -> str:
    """`question` with its pronoun replaced by `ref` ("its" by "ref's", "它的" by "ref的"), or with
    `ref` added where it has none ("隼鸟 M5 最大能爬多陡的坡？", "How big is the dust bag (the Dock Pro)?")."""
    if lang == "zh":
        m = _ZH_PRONOUN.search(question)
        if m:
            rest = ("的" if m.group().endswith("的") else "") + question[m.end():]
            return question[: m.start()] + ref + (" " if ref[-1:].isascii() and rest[:1] != "的" else "") + rest
        return f"{ref} {question}" if ref[-1:].isascii() else ref + question
    m = _EN_PRONOUN.search(question)
    if not m:
        return f"{question.rstrip(' ?')} ({ref})?"
    rep = ref + ("'" if ref.endswith("s") else "'s") if m.group(1).lower() in ("its", "their") else ref
    if m.start() == 0:
        rep = rep[:1].upper() + rep[1:]
    return question[: m.start()] + rep + question[m.end():]


def looks_like_question(text: str, question: str) -> bool:
    """A rewrite worth searching with: one question (ends with '?' or '？'), not an answer."""
    text = text.strip()
    return text.endswith(("?", "？")) and text.count("?") + text.count("？") == 1 and len(text) <= 4 * len(question) + 80


def standalone_question(gen: Generator, history: list[dict], question: str, *,
                        cancel: threading.Event | None = None) -> Rewrite:
    """The follow-up `question` as a question that stands alone (see the module docstring).
    A set `cancel` stops the rewrite at its next token (GenerationCancelled)."""
    turns = recent_turns(history, gen.count_tokens, budget=HISTORY_TOKENS // 2, max_turns=4)
    if not turns:
        return Rewrite(question, "none")
    if not needs_context(question):
        return Rewrite(question, "rule")
    t0 = time.perf_counter()
    lang = detect_language(question)
    def on_token(_piece: str) -> None:
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled()

    takes_cancel = cancel is not None and "cancel" in inspect.signature(gen.generate).parameters

    def ask(prompt: str, max_tokens: int) -> str:
        out = gen.generate(prompt, Decoding(max_tokens=max_tokens, temperature=0.0, stop=["\n"]), on_token,
                           **({"cancel": cancel} if takes_cancel else {}))
        return out.text

    subject = None  # a frame ("What about the M5?") has no pronoun to put it in place of
    if not _FRAME_ONLY[lang].search(question):
        ref = referent_phrase(ask(_referent_prompt(gen, turns, question, lang), REFERENT_TOKENS), turns, question)
        if ref:
            return Rewrite(spliced(question, ref, lang), "referent", ms_since(t0))
        subject = previous_subject(turns, question)
        if subject and any(is_name(w) for w in question.split()[1:]):
            # the follow-up names a thing of its own, so "it" is another: the one the last question named
            return Rewrite(spliced(question, subject, lang), "subject", ms_since(t0))
    text = " ".join(ask(_rewrite_prompt(gen, turns, question, lang), REWRITE_TOKENS).strip().strip('"“”').split())
    for label in _LABEL[lang][2:]:
        text = text.removeprefix(label).lstrip(":： ")
    if not text or is_refusal(text) or not looks_like_question(text, question) or needs_context(text):
        if subject:
            return Rewrite(spliced(question, subject, lang), "subject", ms_since(t0))
        last_user = next((m["content"] for m in reversed(turns) if m["role"] == "user"), "")
        return Rewrite(f"{' '.join(last_user.split())} {question}".strip(), "fallback", ms_since(t0))
    return Rewrite(text, "model", ms_since(t0))

