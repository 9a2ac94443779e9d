"""The text patterns answer spans are found with (ragkit.sftdata.spans), and the line cleaning they
assume: markdown emphasis, links, quote and list markers out; typed value patterns per language
(e-mail, phone, money, dates, percentages, temperatures, durations and quantities with units,
years, counts, names). paraphrase.py builds its rewrites from the same unit and duration names.
"""

from __future__ import annotations

import re

# -------------------------------------------------------------------------------- cleaning
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_EMPH = re.compile(r"(\*\*|__|`)")
_MD_ITAL = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)、]|[（(]\d{1,2}[)）]|[一二三四五六七八九十]+、)\s+|^\s*[一二三四五六七八九十]+、")
LIST_LINE = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)、])\s+\S")


def clean(text: str) -> str:
    """Markdown and layout noise out of one line: emphasis, links, quote and list markers."""
    t = _MD_LINK.sub(r"\1", text)
    t = _MD_EMPH.sub("", t)
    t = _MD_ITAL.sub(r"\1", t)
    t = re.sub(r"^\s*>\s?", "", t)
    t = _BULLET.sub("", t)
    t = re.sub(r"\s+([,.;:!?])(?=\s|$)", r"\1", t)  # "Lindenport , where" (loader spacing)
    return " ".join(t.split())


# -------------------------------------------------------------------------------- span patterns
MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_NUM = r"\d[\d,]*(?:\.\d+)?"
_RANGE = rf"{_NUM}(?:\s?(?:–|-|~|to|至|到)\s?{_NUM})?"
DURATION_EN = r"(?:working days?|hours?|minutes?|min|seconds?|days?|weeks?|months?|years?|h|s)"
UNIT_EN = r"(?:mm|cm²|cm|m²|m2|km/h|km|m|kg|g|mAh|Ah|Wh|W|V|Pa|dB|mL|ml|litres?|liters?|L|°C|°|GHz|MHz|MB|GB)"
DURATION_ZH = r"(?:个工作日|工作日|分钟|小时|秒钟|秒|天|周|个月|年)"
UNIT_ZH = (r"(?:mm|cm²|cm|m²|km/h|km|m|kg|mAh|Ah|Wh|W|V|Pa|dB|mL|L|°C|GHz|毫米|厘米|平方米|米|公里|千克|公斤|克|"
            r"毫升|升|毫安时|安时|帕|度|分贝|瓦|伏)")
MEASURE_ZH = r"(?:个|家|台|片|次|档|块|项|条|张|款|把|位|名|种|级|套|支|步|层)"
_CN_DIGITS = "一二两三四五六七八九十"

_PATTERNS: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("email", r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
        ("phone", r"(?<![\w-])\d{1,4}(?:-\d{2,4}){2,3}(?![\w-])"),
        ("money", rf"(?:USD|CNY|EUR|RMB|GBP|US\$|\$|€|£|¥)\s?{_NUM}(?:\s?/\s?(?:USD|CNY|EUR|RMB)\s?{_NUM})?"),
        ("money", rf"{_NUM}\s?(?:dollars|euros|yuan)\b"),
        ("date", rf"\d{{1,2}} (?:{MONTHS}) \d{{4}}|(?:{MONTHS}) \d{{1,2}}, \d{{4}}|(?:{MONTHS}) \d{{4}}"),
        ("percent", rf"{_RANGE}\s?%"),
        ("temperature", rf"{_RANGE}\s?(?:°C|degrees C\b|degrees Celsius)"),
        ("duration", rf"{_RANGE}\s?{DURATION_EN}(?![\w²])"),
        ("quantity", rf"{_RANGE}\s?{UNIT_EN}(?![\w²])"),
        ("year", r"(?:(?<=\bin )|(?<=\bof )|(?<=\bby )|(?<=\bsince )|(?<=\bfrom )|(?<=\buntil ))(?:19|20)\d{2}\b"),
        ("count", (r"(?<![\d.,])\b(?:\d{1,3}|two|three|four|five|six|seven|eight|nine|ten|twelve) "
                  r"(?!percent|things|ways|times|others|ones|steps)[a-z]+s\b")),
        # Two or more capitalised words mid-sentence, not after "the": people, places, companies.
        ("name", r"(?:(?<=\bby )|(?<=\bof )|(?<=\bin )|(?<=, ))[A-Z][a-z]+(?: (?:[A-Z][a-z]+|and [A-Z][a-z]+))+"),
    ],
    "zh": [
        ("email", r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
        ("phone", r"(?<![\w-])\d{1,4}(?:-\d{2,4}){2,3}(?![\w-])"),
        ("money", rf"(?:CNY|USD|RMB|¥|￥|\$)\s?{_NUM}|{_NUM}\s?元(?:/[次台年月个])?"),
        ("date", r"\d{4}\s?年\s?\d{1,2}\s?月(?:\s?\d{1,2}\s?日)?|\d{1,2}\s?月\s?\d{1,2}\s?日|(?:19|20)\d{2}\s?年(?!\s?\d)"),
        ("percent", rf"(?<![A-Za-z]){_RANGE}\s?%"),
        ("temperature", rf"(?<![A-Za-z]){_RANGE}\s?°C"),
        ("duration", rf"(?<![A-Za-z])(?:{_RANGE}|[{_CN_DIGITS}]+)\s?{DURATION_ZH}"),
        ("quantity", rf"(?<![A-Za-z]){_RANGE}\s?{UNIT_ZH}(?![A-Za-z])"),
        ("count", rf"(?<![A-Za-z\d.])(?:\d{{1,3}}|[{_CN_DIGITS[2:]}]+)\s?{MEASURE_ZH}"),  # not 一/二: 一次, 二次销售
    ],
}
COMPILED = {lang: [(k, re.compile(p)) for k, p in pats] for lang, pats in _PATTERNS.items()}
