from pathlib import Path

import pytest

from ragkit.errors import LoadError
from ragkit.ingest.discover import discover
from ragkit.ingest.loaders import decode_text, load_file

ZH = "隼鸟割草机器人的最大坡度为百分之四十。保修期为两年，电池保修十八个月。"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "big5"])
def test_text_in_each_encoding_decodes(tmp_path, encoding):
    text = ZH if encoding != "big5" else "隼鳥割草機器人的最大坡度為百分之四十。保修期為兩年，電池保修十八個月。"
    p = tmp_path / "doc.txt"
    p.write_bytes(text.encode(encoding))
    [doc] = load_file(p, "doc.txt")
    assert doc.text == text


def test_markdown_title_is_first_heading(tmp_path):
    p = tmp_path / "a.md"
    p.write_text("intro\n\n# Service guide\n\ntext\n", encoding="utf-8")
    [doc] = load_file(p, "a.md")
    assert doc.title == "Service guide"


def test_crlf_is_normalised(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"line one\r\nline two\r\n")
    assert load_file(p, "a.txt")[0].text == "line one\nline two\n"


def test_html_keeps_text_title_and_tables_drops_scripts(tmp_path):
    p = tmp_path / "a.html"
    p.write_text(
        "<html><head><title>价格表</title><style>p{}</style></head><body><h1>配件</h1>"
        "<script>alert('x')</script><p>刀片 99 元</p><table><tr><th>名称</th><th>价格</th></tr>"
        "<tr><td>电池</td><td>599 元</td></tr></table></body></html>",
        encoding="utf-8",
    )
    [doc] = load_file(p, "a.html")
    assert doc.title == "价格表"
    assert "# 配件" in doc.text and "刀片 99 元" in doc.text and "电池 | 599 元" in doc.text
    assert "alert" not in doc.text


def test_html_in_gbk_without_meta_charset(tmp_path):
    p = tmp_path / "a.htm"
    p.write_bytes(f"<html><body><p>{ZH}</p></body></html>".encode("gbk"))
    assert ZH in load_file(p, "a.htm")[0].text


def _make_pdf(path: Path, pages: list[str]) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))


def test_pdf_pages_and_offsets(tmp_path):
    p = tmp_path / "guide.pdf"
    _make_pdf(p, ["Page one talks about blades.", "Page two talks about batteries."])
    [doc] = load_file(p, "guide.pdf")
    assert doc.page_starts == [0, doc.text.index("Page two")]
    assert "batteries" in doc.text


def test_corrupt_pdf_is_a_load_error(tmp_path):
    p = tmp_path / "bad.pdf"
    p.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage \x00\x01\x02")
    with pytest.raises(LoadError, match="PDF"):
        load_file(p, "bad.pdf")


def test_docx_paragraphs_headings_and_tables(tmp_path):
    import docx

    d = docx.Document()
    d.add_heading("上门安装服务", level=1)
    d.add_paragraph("安装费为 199 元。")
    t = d.add_table(rows=1, cols=2)
    t.rows[0].cells[0].text = "区域"
    t.rows[0].cells[1].text = "林港市"
    p = tmp_path / "a.docx"
    d.save(p)
    [doc] = load_file(p, "a.docx")
    assert doc.title == "上门安装服务"
    assert "# 上门安装服务" in doc.text and "安装费为 199 元。" in doc.text and "区域 | 林港市" in doc.text


def test_corrupt_docx_is_a_load_error(tmp_path):
    p = tmp_path / "bad.docx"
    p.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(LoadError, match="DOCX"):
        load_file(p, "bad.docx")


def test_csv_rows_carry_column_names(tmp_path):
    p = tmp_path / "prices.csv"
    p.write_text("part,price\nblade,99\nbattery,599\n", encoding="utf-8")
    [doc] = load_file(p, "prices.csv")
    assert doc.text.splitlines() == ["part: blade; price: 99", "part: battery; price: 599"]


def test_jsonl_records_become_documents_with_metadata(tmp_path):
    p = tmp_path / "kb.jsonl"
    p.write_text('{"text": "first", "title": "A", "lang": "en"}\n\n{"text": "second"}\n', encoding="utf-8")
    docs = load_file(p, "kb.jsonl")
    assert [d.text for d in docs] == ["first", "second"]
    assert docs[0].title == "A" and docs[0].metadata == {"title": "A", "lang": "en", "line": 1}
    assert docs[1].metadata["line"] == 3


def test_jsonl_bad_line_keeps_the_good_lines_and_names_the_bad(tmp_path):
    from ragkit.ingest.loaders import load_file_noted

    p = tmp_path / "kb.jsonl"
    p.write_text('{"text": "ok"}\n{"text": \n[1]\n{"text": "fine too"}\n', encoding="utf-8")
    docs, notes = load_file_noted(p, "kb.jsonl")
    assert [d.text for d in docs] == ["ok", "fine too"]
    assert any("line(s) 2, 3" in n for n in notes)
    p.write_text('{"text": \n', encoding="utf-8")
    with pytest.raises(LoadError, match="lines 1"):
        load_file(p, "kb.jsonl")


@pytest.mark.parametrize(
    "content,reason",
    [(b"", "empty"), (b"   \n\n", "empty"), (b"\x00\x01\x02\x03binary\x00junk", "binary")],
)
def test_unreadable_text_files(tmp_path, content, reason):
    p = tmp_path / "x.txt"
    p.write_bytes(content)
    with pytest.raises(LoadError, match=reason):
        load_file(p, "x.txt")


def test_permission_denied_is_a_load_error(tmp_path, monkeypatch):
    p = tmp_path / "secret.txt"
    p.write_text("hidden", encoding="utf-8")

    import ragkit.ingest.loaders as loaders

    def deny(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(loaders.os, "open", deny)  # root ignores chmod, so simulate it
    with pytest.raises(LoadError, match="permission denied"):
        load_file(p, "secret.txt")


def test_decode_rejects_undecodable_bytes():
    with pytest.raises(LoadError):
        decode_text(bytes(range(128, 256)) * 4 + b"\x00")


def test_discover_walks_recursively_skips_hidden_and_unsupported(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    for name in ["a/b/c.md", "a/d.txt", "e.bin", ".git/f.txt", "g.PDF"]:
        (tmp_path / name).write_text("x")
    found = [source for _, _, source in discover([tmp_path])]
    assert found == ["a/b/c.md", "a/d.txt", "g.PDF"]
