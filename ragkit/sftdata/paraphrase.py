"""Writing questions: rule-written questions for spans (table cells, key-value lines, a sentence
asked in place: "The blades stop within how many seconds?"), document anchors ('According to
"Kestrel M3 User Manual", …' / '根据《隼鸟 M3 用户手册》，…', so a question stands on its own and
a fact that changed between documents keeps its source), rule rephrasings, and `ModelWriter`:
any ragkit generator writing questions and rephrasings from few-shot examples of an invented,
unrelated domain (a bakery, a ferry, a library), as a completion prompt or as chat turns.
"""

from __future__ import annotations

import re

from ..generate.base import Decoding
from ..lang import CJK, has_cjk, tokenize_for_search
from .filters import looks_like_question, strip_anchor
from .patterns import DURATION_EN, DURATION_ZH, MEASURE_ZH, MONTHS, UNIT_EN, UNIT_ZH
from .spans import GENERIC_HEAD, Span, strip_paren, value_kind

# ------------------------------------------------------------------------------------------ template questions
_WH_EN = {"money": "how much", "percent": "what percentage", "temperature": "what temperature",
          "phone": "what number", "email": "what e-mail address", "name": "what",
          "date": "what date", "year": "which year"}
_PREP_DATE_EN = re.compile(r"\b(on|in|since|from|until|by|before|after)$", re.IGNORECASE)
_COPULA_EN = re.compile(
    r"^(?P<subj>.{6,}?)\s+(?P<cop>is|are|was|were)\s+(?:(?P<adv>about|approximately|around|up to|at least|at most)\s+)?$"
)


def _wh_en(kind: str, answer: str, before: str) -> str:
    if kind in ("duration", "quantity"):
        m = re.search(rf"({DURATION_EN}|{UNIT_EN})$", answer)
        unit = m.group(1) if m else ""
        if re.search(r"\d\s?(?:–|-|~|to)\s?\d", answer):
            return "what range of " + unit if unit else "what range"
        if unit in ("h",):
            unit = "hours"
        if unit in ("min",):
            unit = "minutes"
        return f"how many {unit}".strip()
    if kind == "count":
        return "how many " + answer.split()[-1]
    if kind == "name":
        return "whom" if before.endswith(" by") else "what"
    if kind == "date":
        if re.fullmatch(rf"(?:{MONTHS}) \d{{4}}", answer):
            return "which month"
        return "which date" if _PREP_DATE_EN.search(before) else "what date"
    return _WH_EN.get(kind, "what")


_WH_ZH = {"money": "多少钱", "percent": "多少", "temperature": "多少", "phone": "多少", "email": "什么",
          "quantity": "多少", "name": "谁"}


def _wh_zh(kind: str, answer: str) -> str:
    if kind == "date":
        return "哪一年" if re.fullmatch(r"\d{4}\s?年", answer) else "什么时候"
    if kind == "money" and answer.endswith("元"):
        return "多少元"
    if kind in ("duration", "count", "quantity"):
        m = re.search(rf"({DURATION_ZH}|{MEASURE_ZH}|{UNIT_ZH})$", answer)
        unit = m.group(1) if m else ""
        if re.search(r"\d\s?(?:–|-|~|至|到)\s?\d", answer):
            return "多少" if not unit or unit.isascii() else f"多少{unit}"
        if kind == "count":
            return f"几{unit}" if unit else "几"
        return f"多少{unit}" if unit and not unit.isascii() else "多少"
    return _WH_ZH.get(kind, "什么")


def insitu_question(sentence: str, s: int, e: int, kind: str, lang: str) -> str | None:
    """The sentence turned into a question about sentence[s:e]: fronted "What is X?" when the
    answer closes an "X is ..." clause, otherwise the answer replaced in place by a question word."""
    answer = sentence[s:e]
    before, after = sentence[:s].rstrip(), sentence[e:]
    # A parenthesis right after the answer often restates it in other units: "40% (about 22°)".
    after = re.sub(r"^\s*[（(][^）)]*[）)]", "", after)
    if lang == "zh":
        parts = re.split(r"[；;。！？!?，]|,(?!\d)", after)  # not the comma of "2,599"
        after = parts[0]
        if len(parts) > 1 and (re.search(r"(?:时|后|前|以上|以下|内)$", after) or re.match(r"(?:当|如果|若|一旦)", before)):
            after += "，" + parts[1]  # "当传感器潮湿 3 分钟时，…": the main clause says what happens
        if kind == "date" and not after.strip() and not re.search(r"[于在从自至到为是起前后期]\s*$", before):
            return None  # "隼鸟用户服务中心 · 2025 年 5 月": a signature, not a statement
        # Keep the clause holding the answer and the one before it: enough to say what is asked.
        before = re.sub(r"（[^）]*）|\([^)]*\)", "", before)
        clauses = re.split(r"(?<=[，：])|(?<=,)(?!\d)|(?<=[^\d]:)", before)
        before = "".join(clauses[-2:]) if len(clauses) > 2 else before
        wh = _wh_zh(kind, answer)
        before = re.sub(r"[：:]\s*$", "是", before)
        if kind in ("phone", "email") and re.search(r"(热线|电话|邮箱|号码)\s*$", before):
            after = ""  # "拨打热线 400-…（…）预约" asks for the number, not the booking
            before = re.sub(r"^.*?(?:拨打|致电|联系|发送至|发邮件至|或)", "", before).strip() + "是"
        q = f"{before}{wh}{after}".strip(" ，,：:")
        if re.match(r"(?:例如|比如|譬如|如)", q):
            return None  # "例如草长到多少？": an example, not a fact to ask about
        q = re.sub(f"(?<=[{CJK}，]) +(?=[{CJK}，])", "", q)
        if q.count("（") > q.count("）"):  # "充满电（约多少分钟？" → "充满电，约多少分钟？"
            q = q[::-1].replace("（", "，", 1)[::-1]
        return q + "？" if q and q != wh else None
    parts = re.split(r"(;|\.(?:\s|$)|—| - |,|\()", after)
    after = parts[0]
    if len(parts) > 2 and parts[1] == "," and re.match(r"(?:When|If|After|Before|Once|Until|While|As soon as)\b", before):
        after += "," + parts[2]  # "When the sensor has been wet for 3 minutes, the mower stops"
    after = after.rstrip(" ,:")
    if len(before.split()) + len(after.split()) < 4:
        return None  # "Manual edition 3, which month?": too little left to say what is asked
    if kind == "date" and not after.strip() and not _PREP_DATE_EN.search(before) and not _COPULA_EN.match(before + " "):
        return None
    wh = _wh_en(kind, answer, before)
    m = _COPULA_EN.match(before + " ")
    if m and not after.strip(" )"):
        subj = m.group("subj")
        subj = subj[0].lower() + subj[1:] if subj[:4] in ("The ", "A ", "An ") else subj
        lead = {"money": "How much", "date": "When", "year": "When", "name": "Who"}.get(kind, "What")
        return f"{lead} {m.group('cop')} {subj}?"
    if not before:
        q = f"{wh[0].upper()}{wh[1:]}{after}"
    else:
        q = f"{before} {wh}{after}"
    if q.count("(") != q.count(")") or q.startswith("(") or re.match(r"(?:e\.g\.|for example|for instance)", q, re.IGNORECASE):
        return None  # the sentence was cut inside a parenthesis
    return q.rstrip(" .:;,") + "?"


# -------------------------------------------------------------------------------- templates for structure
def _lc(text: str) -> str:
    """Lower-case a header used mid-sentence ("Cutting height" → "cutting height"), unless it
    looks like a name or code (Kestrel M3, RTK station)."""
    words = text.split()
    if not words or not words[0][:1].isupper() or words[0][1:] != words[0][1:].lower():
        return text
    if any(w[:1].isupper() or any(ch.isdigit() for ch in w) for w in words[1:]) or len(words) == 1 and len(text) < 3:
        return text
    return text[0].lower() + text[1:]


_FIRST_GENERIC = {"", "item", "items", "specification", "specifications", "spec", "feature", "parameter",
                  "property", "attribute", "项目", "参数", "规格", "指标", "属性"}


def _entity_like(header: str) -> bool:
    """A column header that names a thing (Kestrel M3, 隼鸟 M5, Firmware 2.1), not an attribute."""
    if len(header.split()) > 3 or len(header) > 16:
        return False
    return bool(re.search(r"\d|[A-Za-z]*[A-Z][A-Za-z]*\s*[A-Z0-9]", header)) or bool(
        re.search(r"[A-Za-z0-9]", header) and has_cjk(header))


def join_zh(*parts: str) -> str:
    """Join Chinese text pieces, with a space where Latin letters or digits meet Chinese."""
    out = ""
    for p in parts:
        if out and p and (out[-1].isascii() and out[-1].isalnum()) != (p[0].isascii() and p[0].isalnum()) \
                and re.match(f"[{CJK}A-Za-z0-9]", p[0]) and re.search(f"[{CJK}A-Za-z0-9]$", out):
            out += " "
        out += p
    return out


def cell_question(row_key: str, col: str, first_header: str, value: str, lang: str) -> str:
    """A question about one table cell, from its row key and column header."""
    row_key, col = strip_paren(row_key), strip_paren(col)
    kind = value_kind(strip_paren(value), lang)
    if value_kind(row_key, lang) in ("date", "year") and (col.lower() in GENERIC_HEAD or col in {"事件", "大事", "Event", "Events", "Milestone"}):
        return f"{row_key}发生了什么？" if lang == "zh" else f"What happened in {row_key}?"
    if col.lower() in ("fits", "fits model", "compatible with", "for model") or col in ("适用机型", "适用型号"):
        return f"{row_key}适用于哪款机型？" if lang == "zh" else f"Which model does the {_lc(row_key)} fit?"
    generic_value = col.lower() in GENERIC_HEAD
    # Rows are attributes when the columns name things ("| Item | Kestrel M3 |"); otherwise the
    # column is the attribute of the row ("| Item | Price |" → the price of the row's item).
    attr_rows = _entity_like(col) or (first_header.lower() in _FIRST_GENERIC and not re.fullmatch(f"[A-Za-z{CJK} ]{{1,12}}", col))
    if lang == "zh":
        ask = "是多少" if kind in ("money", "percent", "quantity", "duration", "count", "temperature", "phone") else \
            "是什么时候" if kind == "date" else "是什么"
        if generic_value:
            return join_zh(row_key, ask) + "？"
        if attr_rows:
            return join_zh(col, "的", row_key, ask) + "？"
        return join_zh(row_key, "的", col, ask) + "？"
    if generic_value:
        return f"What is the {_lc(row_key)}?"
    if attr_rows:
        return f"What is the {_lc(row_key)} of the {col}?" if not col[:1].isupper() else \
            f"What is the {_lc(row_key)} of {col}?"
    if re.match(r"(?i)(how|when|what|which|who|where)\b", col):
        return f"{col} for “{row_key}”?"
    return f"What is the {_lc(col)} of {_lc(row_key)}?"


def kv_question(key: str, vkind: str, lang: str) -> str | None:
    key = strip_paren(key)
    if value_kind(key, lang) in ("date", "year") and re.search(r"\d{4}", key):  # "2024 年 1 月：发布 V7"
        return f"{key}发生了什么？" if lang == "zh" else f"What happened in {key}?"
    if lang == "zh":
        ask = "是多少" if vkind in ("money", "percent", "quantity", "duration", "count", "phone") else \
            "是什么时候" if vkind == "date" else "是什么"
        return join_zh(key, ask) + "？"
    last = key.split()[-1].lower() if key.split() else ""
    if last.endswith("ed") or last in {"to", "by", "for", "from", "on", "at", "in", "with"}:
        return None  # "Released: ...", "Applies to: ..." do not make "What is the X?" questions
    lead = "When is" if vkind == "date" else "How much is" if vkind == "money" else "What is"
    return f"{lead} the {_lc(key)}?"


def template_question(sp: Span) -> str | None:
    """The rule-written question for a span (None when the rules cannot phrase one)."""
    m = sp.meta
    if sp.kind == "faq":
        return sp.question
    if sp.kind == "cell":
        return cell_question(m["row"], m["col"], m["first"], sp.answer, sp.lang)
    if sp.kind == "value":
        return kv_question(m["key"], m["value_kind"], sp.lang)
    if "s" in m:
        return insitu_question(sp.context, m["s"], m["e"], sp.kind, sp.lang)
    return None


# ------------------------------------------------------------------------------------------ anchors
_ANCHORS = {
    "en": ['According to "{t}", {q}', 'As stated in "{t}", {q}', 'Based on "{t}", {q}'],
    "zh": ["根据《{t}》，{q}", "《{t}》中，{q}", "按照《{t}》的说明，{q}"],
}
_GENERIC_TITLE_WORDS = {"manual", "guide", "user", "part", "policy", "notes", "release", "overview", "about", "page", "document", "faq", "frequently", "asked", "questions", "and", "the", "of", "a", "an", "for", "to", "with", "说明", "指南", "手册", "政策", "用户", "第一部分", "第二部分", "第三部分", "部分", "常见问题", "更新", "使用", "公告", "关于"}
_LOWER_STARTS = {"what", "how", "when", "which", "who", "whom", "whose", "where", "why", "is", "are", "was", "were", "do", "does", "did", "can", "could", "should", "would", "will", "the", "a", "an", "in", "on", "at", "if", "for", "to", "after", "before", "during", "only", "each", "every", "all"}


def clean_title(title: str) -> str:
    t = " ".join(title.replace("《", "").replace("》", "").split()).strip(" #")
    if t.isupper() and len(t) > 4 and t.isascii():
        t = t.title()
    return t


def title_words(title: str) -> set[str]:
    return {w for w in tokenize_for_search(title) if w not in _GENERIC_TITLE_WORDS and len(w) > 1}


def needs_anchor(question: str, title: str | None) -> bool:
    """Anchor unless the question already names most of what the title names (≥ 60% of its
    distinctive words): "Kestrel M3" alone does not say which manual or firmware version."""
    if not title:
        return False
    tw = title_words(title)
    if not tw:
        return False
    return len(tw & set(tokenize_for_search(question))) / len(tw) < 0.6


def anchor(question: str, title: str | None, lang: str, variant: int = 0) -> str:
    """The question with the document named in front of it (when it needs one)."""
    q = strip_anchor(question)
    if not title or not needs_anchor(q, title):
        return q
    if lang == "en":
        first = q.split(" ", 1)[0]
        # "Wipe the antenna every ..." reads on after the anchor in lower case; names do not.
        if first.lower() in _LOWER_STARTS or (first[1:].islower() and first not in title and first.isalpha()
                                              and len(first) > 1):
            q = q[0].lower() + q[1:]
    return _ANCHORS[lang][variant % len(_ANCHORS[lang])].format(t=clean_title(title), q=q)


# ------------------------------------------------------------------------------------------ rules
# Rewrites of a question's core (anchor stripped) that keep its meaning: (pattern, replacement).
_EN_RULES = [
    (r"^What is the (.+) of (.+)\?$", [r"What \1 does \2 have?", r"For \2, what is the \1?"]),
    (r"^What is the (.+) for (.+)\?$", [r"For \2, what is the \1?", r"Which \1 applies to \2?"]),
    (r"^What (is|are|was|were) (.+)\?$", [r"Can you tell me what \2 \1?", r"Do you know what \2 \1?"]),
    (r"^How much (is|are|was|were) (.+)\?$", [r"What does \2 cost?", r"What is the price of \2?"]),
    (r"^When (is|are|was|were) (.+)\?$", [r"On what date \1 \2?", r"Do you know when \2 \1?"]),
    ((r"^(.+?) (how many \S+|what percentage|what temperature|what number|what range(?: of \S+)?|how much|"
     r"which date|what date|which year|which month|what e-mail address|what)\b(.*)\?$"),
     [r"Fill in the blank: \1 ___\3.", r"Complete the statement: \1 ___\3."]),
]
_ZH_RULES = [
    (r"^(.+)是多少？$", [r"\1为多少？", r"请问\1是多少？"]),
    (r"^(.+)是什么时候？$", [r"\1是哪天？", r"请问\1是在什么时候？"]),
    (r"^(.+)是什么？$", [r"\1指的是什么？", r"请问\1是什么？"]),
    (r"^(.+)多少(分钟|小时|天|个月|年|个工作日|元)(.*)？$", [r"\1几\2\3？", r"请问：\1多少\2\3？"]),
    (r"^(.+)什么时候(.*)？$", [r"\1何时\2？", r"请问\1什么时候\2？"]),
    (r"^(.+)哪一年(.*)？$", [r"\1哪年\2？", r"请问\1是哪一年\2？"]),
    (r"^(.+)几(.+)？$", [r"\1多少\2？", r"请问\1几\2？"]),
    (r"^(.+)多少(.*)？$", [r"请问\1多少\2？", r"\1有多少\2？"]),
]


def rule_variants(question: str, title: str | None, lang: str) -> list[str]:
    """Rephrasings by rewrite rules on the question's core ("What is the A of B?" → "What A does B
    have?", "…是多少？" → "…为多少？"), each re-anchored with another phrasing of the anchor."""
    core = strip_anchor(question)
    out = []
    for pattern, repls in _ZH_RULES if lang == "zh" else _EN_RULES:
        m = re.match(pattern, core)
        if not m:
            continue
        for k, r in enumerate(repls):
            v = m.expand(r)
            if lang == "en" and v[:1].islower():
                v = v[0].upper() + v[1:]
            out.append(anchor(v, title, lang, 1 + k))
    return [v for v in dict.fromkeys(out) if strip_anchor(v) != core]


# ------------------------------------------------------------------------------------------ model prompts
_QUESTION_EXAMPLES = {
    "en": [
        ("Miller's Bakery", "Miller's Bakery was founded in [1998] by Anna Miller and now has three shops.",
         "In which year was Miller's Bakery founded?"),
        ("Bay Ferry timetable", "A single ticket for the ferry costs [4 dollars].",
         "How much does a single ticket for the Bay Ferry cost?"),
        ("Hillcrest Library guide", "The reading room was designed by [Maria Santos] in 1975.",
         "Who designed the reading room of the Hillcrest Library?"),
        ("Hillcrest Library guide", "The library closes after the alarm has sounded for [5 minutes].",
         "How long must the alarm sound before the Hillcrest Library closes?"),
    ],
    "zh": [
        ("米勒面包店简介", "米勒面包店由安娜·米勒于【1998 年】创办，现在有三家门店。", "米勒面包店是哪一年创办的？"),
        ("海湾渡轮时刻表", "渡轮单程票【4 元】。", "海湾渡轮的单程票多少钱？"),
        ("山顶图书馆指南", "阅览室由【玛丽亚·桑托斯】于 1975 年设计。", "山顶图书馆的阅览室是谁设计的？"),
        ("山顶图书馆指南", "警报响起【5 分钟】后，图书馆会关闭。", "山顶图书馆在警报响起多长时间后关闭？"),
    ],
}
_PARAPHRASE_EXAMPLES = {
    "en": [("In which year was Miller's Bakery founded?", "When was Miller's Bakery founded?"),
           ("How much does a single ticket for the Bay Ferry cost?", "What is the price of a single Bay Ferry ticket?"),
           ("Who designed the reading room of the Hillcrest Library?",
            "Which architect designed the Hillcrest Library reading room?")],
    "zh": [("米勒面包店是哪一年创办的？", "米勒面包店创办于哪一年？"),
           ("海湾渡轮的单程票多少钱？", "乘坐海湾渡轮单程需要多少钱？"),
           ("山顶图书馆的阅览室是谁设计的？", "谁设计了山顶图书馆的阅览室？")],
}
_L = {
    "en": {"task_q": "Write the question whose answer is the part in [brackets]. Name what the question is about.",
           "task_p": "Rewrite each question in other words. Keep every name and number.",
           "doc": "Document", "text": "Sentence", "q": "Question", "p": "Rewritten"},
    "zh": {"task_q": "写出一个问题，它的答案是【】中的部分。问题要写明所问的对象。",
           "task_p": "用不同的说法改写每个问题，保留所有名称和数字。",
           "doc": "文档", "text": "句子", "q": "问题", "p": "改写"},
}


class ModelWriter:
    """Questions for spans and rephrasings of questions, written by a generator."""

    def __init__(self, generator, max_tokens: int = 48):
        self.gen = generator
        self.chat = getattr(generator, "prompt_style", "fewshot") == "chat"
        self.decoding = Decoding(max_tokens=max_tokens, stop=[] if self.chat else ["\n"])
        self.calls = 0

    def _complete(self, task: str, shots: list[tuple[str, str]], query: str, label: str) -> str:
        if self.chat:
            msgs = [{"role": "system", "content": task}]
            for user, answer in shots:
                msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
            msgs.append({"role": "user", "content": query})
            prompt = self.gen.render_chat(msgs)
        else:
            body = "".join(f"{user}\n{label}: {answer}\n\n" for user, answer in shots)
            prompt = f"{task}\n\n{body}{query}\n{label}:"
        self.calls += 1
        text = self.gen.generate(prompt, self.decoding).text
        return text.strip().split("\n")[0].strip()

    def question(self, marked: str, title: str | None, lang: str) -> str | None:
        """A question whose answer is the marked part of `marked`, or None when the model's text
        is not a question."""
        L = _L[lang]
        shots = [(f"{L['doc']}: {d}\n{L['text']}: {s}", q) for d, s, q in _QUESTION_EXAMPLES[lang]]
        query = f"{L['doc']}: {clean_title(title) if title else '-'}\n{L['text']}: {marked}"
        return _first_question(self._complete(L["task_q"], shots, query, L["q"]), lang)

    def paraphrase(self, question: str, lang: str) -> str | None:
        L = _L[lang]
        shots = [(f"{L['q']}: {a}", b) for a, b in _PARAPHRASE_EXAMPLES[lang]]
        return _first_question(self._complete(L["task_p"], shots, f"{L['q']}: {question}", L["p"]), lang)


def _first_question(text: str, lang: str) -> str | None:
    """The first question in a model's output (small models run on past the question mark)."""
    text = re.sub(r"^(?:Question|Rewritten|问题|改写)\s*[:：]\s*", "", text.strip())
    m = re.search(r"[?？]", text)
    if not m:
        return None
    q = text[: m.end()].strip().strip('"“”')
    return q if looks_like_question(q, lang) else None
