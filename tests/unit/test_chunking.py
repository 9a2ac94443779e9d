import re

import pytest

from ragkit.ingest.chunking import ChunkingConfig, chunk_documents
from ragkit.types import Document


def count(text: str) -> int:
    return len(re.findall(r"[\u4e00-\u9fff]|[A-Za-z0-9]+", text))


ZH = (
    "隼鸟 M3 是一款割草机器人。它的最大割草面积为一千五百平方米！割草高度可以在二十到六十毫米之间调节。"
    "电池容量为五点二安时；一次充电可以工作约九十分钟。充满电需要七十五分钟？固件二点一版本将最大坡度提高到百分之四十。"
)
EN = (
    "The Kestrel M3 is a robot lawn mower. It covers up to 1,500 square metres! The cutting height ranges "
    "from 20 to 60 mm. The battery holds 5.2 Ah; one charge lasts about 90 minutes. Is recharging slow? "
    "It takes 75 minutes. Firmware 2.1 raises the maximum slope to 40 percent."
)


@pytest.mark.parametrize("text", [ZH, EN])
def test_chunks_respect_size_offsets_and_sentence_ends(text):
    doc = Document(source="m3.txt", text=text)
    chunks = chunk_documents([doc], "h", ChunkingConfig(chunk_size=24, chunk_overlap=0), count)
    assert len(chunks) > 2
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert count(c.text) <= 24
        # every chunk but possibly the last closes a sentence, not a word or clause in the middle
    ends = "。！？；.!?;"
    assert all(c.text[-1] in ends for c in chunks[:-1])


def test_overlap_repeats_text_between_neighbours():
    doc = Document(source="m3.txt", text=EN)
    chunks = chunk_documents([doc], "h", ChunkingConfig(chunk_size=24, chunk_overlap=10), count)
    assert any(a.end > b.start for a, b in zip(chunks, chunks[1:]))


def test_chunk_ids_stable_and_distinct_per_source():
    doc_a = Document(source="a.txt", text=EN)
    doc_b = Document(source="b.txt", text=EN)
    cfg = ChunkingConfig(chunk_size=24, chunk_overlap=0)
    a1 = chunk_documents([doc_a], "h", cfg, count)
    a2 = chunk_documents([doc_a], "h", cfg, count)
    b = chunk_documents([doc_b], "h", cfg, count)
    assert [c.chunk_id for c in a1] == [c.chunk_id for c in a2]
    assert not {c.chunk_id for c in a1} & {c.chunk_id for c in b}


def test_heading_and_page_are_kept():
    text = "# Blades\n\nReplace blades every three months.\n\n# Battery\n\nStore the battery above zero degrees."
    doc = Document(source="g.pdf", text=text, page_starts=[0, text.index("# Battery")])
    chunks = chunk_documents([doc], "h", ChunkingConfig(chunk_size=16, chunk_overlap=0), lambda t: 2 * count(t))
    last = [c for c in chunks if "zero degrees" in c.text][0]
    first = [c for c in chunks if "three months" in c.text][0]
    assert (first.title, first.page) == ("Blades", 1)
    assert (last.title, last.page) == ("Battery", 2)


def test_config_validation():
    with pytest.raises(ValueError):
        ChunkingConfig(chunk_size=100, chunk_overlap=100)
    with pytest.raises(ValueError):
        ChunkingConfig(chunk_size=4)
