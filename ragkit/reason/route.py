"""Which questions get the reasoning step, and one retrieval query per thing a question names.

Why: the reasoning step (facts, one calculation, ragkit computes the value) helps questions that
need a sum, a difference, a date or facts about two things, and only costs time on the rest
(issue 26: `--reason auto` must not slow down or hurt questions that do not need it). So the
rule is cheap (regular expressions, no model) and leans to precision: a question is routed when
it asks for an operation on quantities, gives a date and asks for a date or a duration, gives
two or more quantities, or gives a quantity as a condition before asking.

The cues are general (comparatives, totals, differences, ratios, date arithmetic, quantities
with units), not taken from bench items; evals/reason_route.py measures them against the sample
bench's "logic" label and on CMRC 2018 reading questions (evals/results/reason/route.json).

`sub_queries` splits a question that names several things ("the V7 and the Dock Pro", "M5 than
M3", "V7 和一台自清洁基站") into one query per thing, so each gets its own retrieval candidates;
a question that names one thing comes back as [question].
"""

from __future__ import annotations

import re

from ragkit.lang import EN_STOPWORDS, detect_language

_EN_COMPARATIVES = (r"more|less|fewer|larger|bigger|smaller|longer|shorter|higher|lower|heavier|"
                    r"lighter|cheaper|dearer|faster|slower|older|newer|younger|earlier|later|"
                    r"steeper|wider|narrower|quieter|louder|stronger|weaker|greater")
_EN_OPERATION = re.compile("|".join([
    rf"\bhow (?:many|much) (?:{_EN_COMPARATIVES})\b",
    r"\bby how (?:many|much|long|far)\b",
    r"\bhow many times\b", rf"\b(?:times|twice) (?:as|{_EN_COMPARATIVES})\b",
    rf"\b(?:{_EN_COMPARATIVES})\b(?:\s+[\w'+-]+){{0,6}}\s+than\b",
    r"\bcompared (?:with|to)\b", r"\bversus\b|\bvs\.?\s",
    r"\bin total\b|\btotal (?:cost|price|amount|number|of)\b|\baltogether\b|\bcombined\b",
    r"\btogether with\b|\balong with\b|\bplus\b",
    r"\bsum of\b|\bdifference\b|\bpercentage points?\b",
    r"\b(?:a|one|per|each) (?:year|month|week|day)(?:'s)? (?:of|worth)\b",
    r"\bhow (?:long|many (?:days|weeks|months|years)) (?:after|before|since|until)\b",
]), re.IGNORECASE)
_ZH_OPERATION = re.compile("|".join([
    r"一共|总共|共计|合计|总计|加起来|之和|之差|相差|差多少|差距|差几",
    r"多多少|少多少|便宜了?多少",
    r"(?:缩短|延长|提高|提升|增加|减少|降低|上涨|下降|节省|节约|省|涨|降)了?(?:多少|几)",
    r"几倍|多少倍|百分之几|百分点",
    r"比.{1,24}?(?:多|少|大|小|长|短|高|低|贵|便宜|快|慢|早|晚|重|轻|强|弱)了?(?:多少|几|百分之|一些|很多|得多|\d)",
    r"比.{1,24}?更",
    r"相比|相较|(?:几|多少)(?:天|周|个月|年)(?:后|之后|以后|前|之前|以前)",
]))

_MONTHS = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
_DATE = re.compile(
    rf"\b\d{{1,2}}\s+(?:{_MONTHS})\.?,?\s+\d{{4}}\b|\b(?:{_MONTHS})\.?\s+\d{{1,2}},?\s+\d{{4}}\b"
    rf"|\b\d{{4}}-\d{{1,2}}-\d{{1,2}}\b|\d{{4}}\s*年\s*\d{{1,2}}\s*月", re.IGNORECASE)
_ASKS_SPAN = re.compile(
    r"\bhow long\b|\bhow many (?:minutes|hours|days|weeks|months|years)\b|\blasts?\s*(?:\?|$|for\b)"
    r"|多久|多长时间|几个月|几天|多少天|几分钟|多少分钟|几小时|多少小时|几年", re.IGNORECASE)
_ASKS_DATE = re.compile(
    r"\bwhat date\b|\bwhich date\b|\bwhen\b|\buntil\b|\bby when\b|\bdeadline\b|\bexpire|\bends?\b"
    r"|\blast day\b|哪天|哪一天|几号|几月几日|什么时候|何时|哪一年|哪个月|到期|截止|最晚|最迟", re.IGNORECASE)
_EN_UNITS = (r"%|percent|per cent|m²|m2|square (?:metres|meters|feet)|minutes?|mins?|hours?|hrs?|"
             r"days?|weeks?|months?|years?|yuan|dollars?|usd|cny|eur|euros?|rmb|kg|g|mah|ah|ml|"
             r"millilitres?|milliliters?|litres?|liters?|l|km|m|cm|mm|pa|w|v|times|"
             r"claims?|pieces?|units?|-?packs?")
_EN_NUMBER_WORDS = r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty"
_QUANTITY = re.compile(
    rf"(?:[$¥€£]\s*\d[\d,]*(?:\.\d+)?)"
    rf"|(?<![\w.])(?:\d[\d,]*(?:\.\d+)?|(?:{_EN_NUMBER_WORDS})\b)\s*-?\s*(?:{_EN_UNITS})(?![A-Za-z])"
    r"|(?<![A-Za-z\d.])\d[\d,]*(?:\.\d+)?\s*(?:%|元|美元|欧元|平方米|平米|分钟|小时|天|周|个月|公斤|千克|"
    r"克|公里|千米|厘米|毫米|米|毫升|升|安时|毫安时|瓦|伏|只装|片|块|台|次|倍|度)", re.IGNORECASE)
_CLAUSE_END = re.compile(r"[,，.。;；:：]\s*|\?\s*|？")


def needs_reasoning(question: str, lang: str | None = None) -> bool:
    """Whether `question` needs the reasoning step (a computation or facts about several things)."""
    lang = lang or detect_language(question)
    operation = _ZH_OPERATION if lang == "zh" else _EN_OPERATION
    if operation.search(question):
        return True
    asks_span = bool(_ASKS_SPAN.search(question))
    if _DATE.search(question) and (asks_span or _ASKS_DATE.search(question)):
        return True
    quantities = _QUANTITY.findall(question)
    if len(set(quantities)) >= 2:
        return True
    return bool(quantities) and (asks_span or _quantity_is_a_condition(question))


def _quantity_is_a_condition(question: str) -> bool:
    """A quantity stated in a clause before the clause that asks ("a 38% slope. Which code …?")."""
    clauses = [c for c in _CLAUSE_END.split(question.strip()) if c.strip()]
    return len(clauses) >= 2 and any(_QUANTITY.search(c) for c in clauses[:-1])


# ---- sub-queries -------------------------------------------------------------------------------

_EN_TOKEN = re.compile(r"[$¥€£]?[A-Za-z0-9][\w+\-.'²]*[\w+²]|[A-Za-z0-9]|[,;:?!().&]")
_EN_NOT_A_THING = re.compile(rf"(?:{_MONTHS})\.?|\d{{4}}|\d{{1,2}}(?:st|nd|rd|th)?", re.IGNORECASE)
_EN_CONJ = {"and", "or", "&", "plus", "versus", "vs", "vs."}
_EN_COMPARE = {"than", "compared", "versus", "vs", "vs."}
_EN_ITEM_OPENERS = {"a", "an", "the", "one", "two", "three", "four", "five"}
_ZH_CODE = r"[A-Za-z][A-Za-z0-9+\-]*\d[A-Za-z0-9+\-]*"
_ZH_COUNTED = r"[一两二三四五六七八九十\d]+\s*[台个块盒只件套张把部条瓶包份]"
# a counted thing runs up to a space, a conjunction, punctuation or the predicate (一共, 的, 要, 是 …)
_ZH_PREDICATE = r"一共|总共|合计|共计|加起来|的|要|需|是|多少|几|相差|比"
_ZH_ITEM = (rf"(?:{_ZH_COUNTED}(?:(?!{_ZH_PREDICATE})[^，。？！；、和与及跟同或\s])*(?:\s+{_ZH_CODE})?"
            rf"|{_ZH_CODE})")
_ZH_COORDINATION = re.compile(rf"({_ZH_ITEM})\s*(?:和|与|及|以及|跟|同|、|加上?|还是|或者?)\s*({_ZH_ITEM})")
_ZH_COMPARISON = re.compile(rf"(?:比|和|与|跟|同)\s*({_ZH_CODE})\s*(?:相比|比较|比)?")
MAX_SUB_QUERIES = 4


def sub_queries(question: str, lang: str | None = None) -> list[str]:
    """One retrieval query per thing the question names; [question] when it names one thing."""
    lang = lang or detect_language(question)
    queries = _zh_sub_queries(question) if lang == "zh" else _en_sub_queries(question)
    queries = list(dict.fromkeys(q for q in queries if q.strip() and q != question))
    return queries[:MAX_SUB_QUERIES] if len(queries) >= 2 else [question]


def _en_named(token: str, index: int) -> bool:
    """A name or a model code: Kestrel, Care+, M3, 2-pack (not the question's first word)."""
    if index == 0 or token.lower() in EN_STOPWORDS or _EN_NOT_A_THING.fullmatch(token):
        return False  # a date (10 January 2025) is not a thing to retrieve on its own
    has_digit = any(c.isdigit() for c in token)
    return token[0].isupper() or (has_digit and any(c.isalpha() for c in token))


def _en_sub_queries(question: str) -> list[str]:
    text = re.sub(r"\b(?:together with|as well as|along with)\b", "&", question, flags=re.I)
    text = re.sub(r"\bcompared (?:with|to)\b", "compared", text, flags=re.I)
    tokens = _EN_TOKEN.findall(text)
    named = [_en_named(t, i) for i, t in enumerate(tokens)]
    for i in range(1, len(tokens)):  # "Tern 9": a number right after a name is part of it
        named[i] = named[i] or (named[i - 1] and tokens[i].isdigit())
    compare = next((i for i, t in enumerate(tokens) if t.lower() in _EN_COMPARE), None)
    if compare is not None:
        queries = _en_comparison(tokens, named, compare)
        if queries:
            return queries
    for c, token in enumerate(tokens):
        if token.lower() not in _EN_CONJ:
            continue
        right = _en_item(tokens, c + 1, +1)
        while right and not named[right[-1]]:  # words after the last name are shared ("… cost")
            right.pop()
        items = [right]
        end = _en_item(tokens, c - 1, -1)
        while end and any(named[i] for i in end):
            items.insert(0, end)
            start = end[0]
            if start >= 2 and tokens[start - 1] == ",":
                end = _en_item(tokens, start - 2, -1)
            else:
                break
        if len(items) >= 2 and all(any(named[i] for i in item) for item in items):
            prefix, suffix = tokens[:items[0][0]], tokens[items[-1][-1] + 1:]
            return [_join(prefix + [tokens[i] for i in item] + suffix) for item in items]
    return []


def _en_item(tokens: list[str], i: int, step: int) -> list[int]:
    """Token positions of the phrase that starts at i and runs in direction `step` up to a
    punctuation mark or a function word (an article or a number word opens a phrase)."""
    out: list[int] = []
    while 0 <= i < len(tokens):
        t = tokens[i].lower()
        if not re.match(r"[\w$¥€£]", t) or t in _EN_CONJ or t in _EN_COMPARE:
            break
        if t in EN_STOPWORDS and t not in _EN_ITEM_OPENERS:
            break
        out.append(i)
        if step < 0 and t in _EN_ITEM_OPENERS:
            break
        i += step
    return sorted(out)


def _en_comparison(tokens: list[str], named: list[bool], compare: int) -> list[str]:
    """"X … than Y": one query about X (without "than Y") and the same query about Y."""
    phrase = _en_item(tokens, compare + 1, +1)  # "the Kestrel M3" after "than"
    second = [i for i in phrase if named[i]][:1]
    first_end = max((i for i in range(compare) if named[i]), default=None)
    if not second or first_end is None:
        return []
    run_end = second[0]
    while run_end + 1 < len(tokens) and named[run_end + 1]:
        run_end += 1
    first_start = first_end
    while first_start - 1 >= 0 and named[first_start - 1]:
        first_start -= 1
    first, other = tokens[first_start:first_end + 1], tokens[second[0]:run_end + 1]
    if first == other:
        return []
    rest = tokens[:compare] + tokens[run_end + 1:]
    swapped = tokens[:first_start] + other + tokens[first_end + 1:compare] + tokens[run_end + 1:]
    return [_join(rest), _join(swapped)]


def _zh_sub_queries(question: str) -> list[str]:
    m = _ZH_COORDINATION.search(question)
    if m:
        items = [m[1].strip(), m[2].strip()]
        rest = question[m.end():]
        more = re.match(rf"\s*(?:和|与|及|以及|跟|同|、|加上?)\s*({_ZH_ITEM})", rest)
        while more and len(items) < MAX_SUB_QUERIES:
            items.append(more[1].strip())
            rest = rest[more.end():]
            more = re.match(rf"\s*(?:和|与|及|以及|跟|同|、|加上?)\s*({_ZH_ITEM})", rest)
        prefix = question[:m.start()]
        return [prefix + item + rest for item in items]
    m = _ZH_COMPARISON.search(question)
    if m:
        other = m[1]
        before = list(re.finditer(_ZH_CODE, question[:m.start()]))
        if before and before[-1][0] != other:
            first = before[-1]
            rest = question[:m.start()] + question[m.end():]
            return [rest, rest[:first.start()] + other + rest[first.end():]]
    return []


def _join(tokens: list[str]) -> str:
    return re.sub(r"\s+([,;:?!.)])", r"\1", " ".join(tokens)).replace("( ", "(")
