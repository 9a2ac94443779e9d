"""Build the binary documents of the Kestrel sample corpus from their Markdown sources.

The sample corpus should exercise ragkit's PDF and DOCX loaders, but binary files are awkward to
review and edit, so their text lives in ``corpus_src/`` as Markdown and this script renders:

    corpus_src/en-safety-guide.md        -> corpus/en/safety-guide.pdf          (fpdf2, Helvetica)
    corpus_src/en-service-agreement.md   -> corpus/en/kestrel-care-plus.docx    (python-docx)
    corpus_src/zh-installation-service.md -> corpus/zh/installation-service.docx (python-docx)

Run it after editing a source (from anywhere):

    .venv/bin/python data/make_docs.py

Only the small Markdown subset the sources use is understood: ``#``/``##``/``###`` headings,
paragraphs, ``-`` bullet lists, ``1.`` numbered lists, pipe tables, ``**bold**`` and ``*italic*``.
Output is deterministic: fixed creation dates in the metadata and fixed timestamps inside the
DOCX zip, so re-running without source changes gives byte-identical files.

The PDF uses the core font Helvetica, which only covers Latin-1: dashes outside it are written
as ASCII hyphens. Keep numbers and their units (``30 mA``, ``2 seconds``) on one source line;
the check at the end of this script reads every output back with ragkit's own loaders.
"""

from __future__ import annotations

import io
import re
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC, OUT = HERE / "corpus_src", HERE / "corpus"
FIXED_DATE = datetime(2025, 5, 1, 9, 0, 0, tzinfo=timezone.utc)
AUTHOR = "Kestrel Home Robotics Co., Ltd."


# ---------------------------------------------------------------- Markdown subset -> blocks
@dataclass
class Block:
    kind: str  # heading | para | bullets | numbered | table
    level: int = 0  # heading level
    lines: list[str] = field(default_factory=list)  # para lines, list items
    rows: list[list[str]] = field(default_factory=list)  # table rows, first is the header


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_BULLET = re.compile(r"^[-*]\s+(.*)$")
_NUMBERED = re.compile(r"^(\d+)\.\s+(.*)$")
_TABLE_SEP = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def parse_markdown(text: str) -> list[Block]:
    blocks: list[Block] = []
    cur: Block | None = None

    def close():
        nonlocal cur
        if cur is not None:
            blocks.append(cur)
        cur = None

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            close()
            continue
        if m := _HEADING.match(line):
            close()
            blocks.append(Block("heading", level=len(m.group(1)), lines=[m.group(2)]))
        elif line.startswith("|"):
            if cur is None or cur.kind != "table":
                close()
                cur = Block("table")
            if not _TABLE_SEP.match(line):
                cur.rows.append([c.strip() for c in line.strip("|").split("|")])
        elif m := _BULLET.match(line):
            if cur is None or cur.kind != "bullets":
                close()
                cur = Block("bullets")
            cur.lines.append(m.group(1))
        elif m := _NUMBERED.match(line):
            if cur is None or cur.kind != "numbered":
                close()
                cur = Block("numbered")
            cur.lines.append(f"{m.group(1)}. {m.group(2)}")
        else:
            if cur is None or cur.kind != "para":
                close()
                cur = Block("para")
            cur.lines.append(line)
    close()
    return blocks


_INLINE = re.compile(r"(\*\*.+?\*\*|\*[^*\s][^*]*?\*)")


def inline_runs(text: str) -> list[tuple[str, bool, bool]]:
    """Split ``**bold**`` / ``*italic*`` markup into (text, bold, italic) runs."""
    runs = []
    for part in _INLINE.split(text):
        if not part:
            continue
        if part.startswith("**") and part.endswith("**") and len(part) > 4:
            runs.append((part[2:-2], True, False))
        elif part.startswith("*") and part.endswith("*") and len(part) > 2:
            runs.append((part[1:-1], False, True))
        else:
            runs.append((part, False, False))
    return runs


# ---------------------------------------------------------------- PDF (fpdf2, Helvetica)
_LATIN1_FIXES = {"\u2014": "-", "\u2013": "-", "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'}


def _latin1(text: str) -> str:
    for k, v in _LATIN1_FIXES.items():
        text = text.replace(k, v)
    text.encode("latin-1")  # fail loudly on anything else: Helvetica cannot show it
    return text


def _fpdf_markdown(text: str) -> str:
    """fpdf2's markdown knows **bold** and __italic__; `--` would toggle underline, so avoid it."""
    out = []
    for t, bold, italic in inline_runs(_latin1(text)):
        t = t.replace("--", "-")
        out.append(f"**{t}**" if bold else f"__{t}__" if italic else t)
    return "".join(out)


def build_pdf(src: Path, dst: Path, title: str) -> None:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(title)
    pdf.set_author(AUTHOR)
    pdf.set_creator("ragkit data/make_docs.py")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.alias_nb_pages()

    def footer():
        pdf.set_y(-14)
        pdf.set_font("helvetica", "", 8)
        pdf.cell(0, 5, f"Page {pdf.page_no()} of {{nb}}", align="C")

    pdf.footer = footer
    pdf.add_page()
    body, lh = 11, 6
    for b in parse_markdown(src.read_text(encoding="utf-8")):
        if b.kind == "heading":
            size = {1: 18, 2: 14}.get(b.level, 12)
            pdf.ln(3 if b.level > 1 else 0)
            pdf.set_font("helvetica", "B", size)
            pdf.multi_cell(0, size * 0.55, _latin1(b.lines[0]), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        elif b.kind == "para":
            pdf.set_font("helvetica", "", body)
            pdf.multi_cell(0, lh, _fpdf_markdown(" ".join(b.lines)), markdown=True, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        elif b.kind in ("bullets", "numbered"):
            pdf.set_font("helvetica", "", body)
            for item in b.lines:
                marker, text = ("-", item) if b.kind == "bullets" else item.split(" ", 1)
                pdf.set_x(pdf.l_margin + 2)
                pdf.cell(7, lh, marker)
                pdf.multi_cell(0, lh, _fpdf_markdown(text), markdown=True, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(1)
            pdf.ln(1)
        elif b.kind == "table":
            pdf.set_font("helvetica", "", body - 1)
            ncols = len(b.rows[0])
            widths = (45, 125) if ncols == 2 else None
            with pdf.table(col_widths=widths, markdown=True, line_height=lh,
                           headings_style=FontFace(emphasis="BOLD", fill_color=(230, 230, 230))) as table:
                for row in b.rows:
                    r = table.row()
                    for cell in row:
                        r.cell(_fpdf_markdown(cell))
            pdf.ln(3)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(pdf.output()))


# ---------------------------------------------------------------- DOCX (python-docx)
def _add_runs(paragraph, text: str) -> None:
    for t, bold, italic in inline_runs(text):
        run = paragraph.add_run(t)
        run.bold = bold or None
        run.italic = italic or None


def _deterministic_zip(data: bytes) -> bytes:
    """Rewrite a DOCX zip with fixed member timestamps (python-docx stamps the current time)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=(2025, 5, 1, 9, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            out.writestr(zi, src.read(info.filename))
    return buf.getvalue()


def build_docx(src: Path, dst: Path, title: str, lang: str) -> None:
    from docx import Document
    from docx.oxml.ns import qn
    from docx.shared import Pt

    doc = Document()
    cp = doc.core_properties
    cp.title, cp.author, cp.last_modified_by = title, AUTHOR, AUTHOR
    cp.created = cp.modified = FIXED_DATE.replace(tzinfo=None)
    cp.revision, cp.language = 1, lang
    if lang.startswith("zh"):
        # East-Asian text needs an East-Asian font name, or Word falls back to something odd.
        for name in ("Normal", "Heading 1", "Heading 2", "Heading 3", "List Bullet", "List Paragraph"):
            rpr = doc.styles[name].element.get_or_add_rPr()
            rpr.get_or_add_rFonts().set(qn("w:eastAsia"), "SimSun")
    doc.styles["Normal"].font.size = Pt(10.5)

    for b in parse_markdown(src.read_text(encoding="utf-8")):
        if b.kind == "heading":
            doc.add_heading(b.lines[0], level=min(b.level, 3))
        elif b.kind == "para":
            p = doc.add_paragraph()
            for i, line in enumerate(b.lines):
                if i:  # a source line break inside a paragraph (e.g. question / answer)
                    p.add_run().add_break()
                _add_runs(p, line)
        elif b.kind == "bullets":
            for item in b.lines:
                _add_runs(doc.add_paragraph(style="List Bullet"), item)
        elif b.kind == "numbered":
            # Literal numbers: Word's "List Number" would continue counting across separate lists,
            # and its automatic numbers are not part of the extracted text.
            for item in b.lines:
                _add_runs(doc.add_paragraph(style="List Paragraph"), item)
        elif b.kind == "table":
            ncols = len(b.rows[0])
            table = doc.add_table(rows=0, cols=ncols)
            table.style = "Table Grid"
            for ri, row in enumerate(b.rows):
                cells = table.add_row().cells
                for ci in range(ncols):
                    text = row[ci] if ci < len(row) else ""
                    par = cells[ci].paragraphs[0]
                    if ri == 0:
                        par.add_run(re.sub(r"\*+", "", text)).bold = True
                    else:
                        _add_runs(par, text)
            doc.add_paragraph()
    buf = io.BytesIO()
    doc.save(buf)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(_deterministic_zip(buf.getvalue()))


# ---------------------------------------------------------------- main
JOBS = [
    ("pdf", "en-safety-guide.md", "en/safety-guide.pdf", "Kestrel M3 and M5 - Safety and Installation Guide", "en"),
    ("docx", "en-service-agreement.md", "en/kestrel-care-plus.docx", "Kestrel Care+ Terms and Conditions", "en-US"),
    ("docx", "zh-installation-service.md", "zh/installation-service.docx", "隼鸟割草机器人上门安装服务说明", "zh-CN"),
]


def main() -> int:
    for kind, src, dst, title, lang in JOBS:
        if kind == "pdf":
            build_pdf(SRC / src, OUT / dst, title)
        else:
            build_docx(SRC / src, OUT / dst, title, lang)
        print(f"wrote corpus/{dst}")
    # Read the outputs back the way ragkit ingests them.
    sys.path.insert(0, str(HERE.parent))
    try:
        from ragkit.ingest.loaders import load_file
    except ImportError:
        return 0
    for _, _, dst, _, _ in JOBS:
        docs = load_file(OUT / dst, dst)
        pages = len(docs[0].page_starts or []) if dst.endswith(".pdf") else None
        extra = f", {pages} pages" if pages else ""
        print(f"  {dst}: {len(docs[0].text)} characters extracted{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
