"""File → Document loaders for .txt .md .html/.htm .pdf .docx .csv .jsonl.

Text is decoded by trying UTF-8 (with or without BOM) first, then what charset-normalizer detects,
then GB18030 and Big5: Chinese users' files are often in the legacy encodings. A file that cannot
be read raises LoadError with a reason the ingest summary shows next to the file name.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from ..errors import LoadError
from ..types import Document

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".csv", ".jsonl")


def decode_text(data: bytes) -> str:
    if not data.strip():
        raise LoadError("empty file")
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError("binary content, not text")
    for enc in ("utf-8-sig",):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    guess = from_bytes(data).best()
    candidates = [guess.encoding] if guess is not None else []
    # GB18030 is a superset of GBK/GB2312; Big5 covers traditional Chinese.
    candidates += ["gb18030", "big5"]
    for enc in candidates:
        try:
            text = data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
        if _looks_like_text(text):
            return text
    raise LoadError("unknown text encoding (not UTF-8, GB18030 or Big5)")


def _looks_like_text(text: str) -> bool:
    if not text:
        return False
    bad = sum(1 for c in text if (ord(c) < 32 and c not in "\t\n\r\f") or c == "\ufffd")
    return bad / len(text) < 0.01


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError:
        raise LoadError("permission denied") from None
    except OSError as e:
        raise LoadError(f"cannot read ({e.strerror or e})") from None


_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def load_text(path: Path, source: str) -> list[Document]:
    text = decode_text(_read_bytes(path)).replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LoadError("empty file")
    title = None
    if path.suffix.lower() in (".md", ".markdown"):
        m = _MD_HEADING.search(text)
        title = m.group(1) if m else None
    return [Document(source=source, text=text, title=title)]


def load_html(path: Path, source: str) -> list[Document]:
    from bs4 import BeautifulSoup

    raw = _read_bytes(path)
    # Let BeautifulSoup honour a <meta charset>; fall back to our detection when it has none.
    soup = BeautifulSoup(raw, "html.parser")
    if soup.original_encoding in (None, "ascii", "windows-1252") and not raw.isascii():
        soup = BeautifulSoup(decode_text(raw), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else None
    if soup.title:
        soup.title.decompose()
    body = soup.body or soup
    blocks = []
    for el in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "tr", "pre", "blockquote", "dt", "dd"]):
        if el.find(["p", "li", "tr", "table", "ul", "ol"]):
            continue  # a container: its children are taken on their own
        if el.name == "tr":
            cells = [c.get_text(" ", strip=True) for c in el.find_all(["td", "th"])]
            line = " | ".join(c for c in cells if c)
        else:
            line = el.get_text(" ", strip=True)
            if el.name.startswith("h") and line:
                line = "#" * int(el.name[1]) + " " + line
        if line:
            blocks.append(line)
    text = "\n\n".join(blocks) if blocks else body.get_text("\n", strip=True)
    if not text.strip():
        raise LoadError("no text in the HTML")
    return [Document(source=source, text=text, title=title or None)]


def load_pdf(path: Path, source: str) -> list[Document]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(_read_bytes(path)))
        if reader.is_encrypted:
            raise LoadError("encrypted PDF")
        pages = [(p.extract_text() or "").strip() for p in reader.pages]
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise LoadError(f"corrupt PDF ({e})") from None
    except Exception as e:  # pypdf raises a wide variety on damaged files
        raise LoadError(f"corrupt PDF ({type(e).__name__}: {e})") from None
    if not any(pages):
        raise LoadError("PDF has no text layer (scanned? run OCR first)")
    text, starts = "", []
    for page in pages:
        if text:
            text += "\n\n"
        starts.append(len(text))
        text += page
    title = None
    try:
        title = (reader.metadata or {}).get("/Title") or None
    except Exception:
        title = None
    return [Document(source=source, text=text, title=str(title) if title else None, page_starts=starts)]


def load_docx(path: Path, source: str) -> list[Document]:
    import zipfile

    from docx import Document as Docx

    try:
        doc = Docx(io.BytesIO(_read_bytes(path)))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise LoadError(f"corrupt DOCX ({e})") from None
    except Exception as e:
        raise LoadError(f"corrupt DOCX ({type(e).__name__}: {e})") from None
    blocks, title = [], None
    for p in doc.paragraphs:
        line = p.text.strip()
        if not line:
            continue
        style = (p.style.name or "").lower() if p.style is not None else ""
        if style.startswith("heading") or style == "title":
            level = int(style[-1]) if style[-1:].isdigit() else 1
            title = title or line
            line = "#" * level + " " + line
        blocks.append(line)
    for table in doc.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells]
            if any(cells):
                blocks.append(" | ".join(cells))
    if not blocks:
        raise LoadError("no text in the DOCX")
    return [Document(source=source, text="\n\n".join(blocks), title=title or doc.core_properties.title or None)]


def load_csv(path: Path, source: str) -> list[Document]:
    text = decode_text(_read_bytes(path))
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise LoadError("empty CSV")
    header, body = rows[0], rows[1:]
    if not body:
        return [Document(source=source, text=" | ".join(header))]
    # One line per row as "column: value; ..." so a retrieved chunk carries its column names.
    lines = ["; ".join(f"{h.strip()}: {v.strip()}" for h, v in zip(header, r) if v.strip()) for r in body]
    return [Document(source=source, text="\n".join(lines), title=None, metadata={"columns": header})]


def load_jsonl(path: Path, source: str) -> list[Document]:
    text = decode_text(_read_bytes(path))
    docs = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise LoadError(f"line {lineno} is not valid JSON ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise LoadError(f"line {lineno} has no string 'text' field")
        if not record["text"].strip():
            continue
        meta = {k: v for k, v in record.items() if k != "text" and isinstance(v, (str, int, float, bool))}
        meta["line"] = lineno
        title = record.get("title") if isinstance(record.get("title"), str) else None
        docs.append(Document(source=source, text=record["text"], title=title, metadata=meta))
    if not docs:
        raise LoadError("no records with text")
    return docs


LOADERS = {
    ".txt": load_text,
    ".md": load_text,
    ".markdown": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".csv": load_csv,
    ".jsonl": load_jsonl,
}


def load_file(path: Path, source: str) -> list[Document]:
    """Load one file; raises LoadError with a reason for anything unreadable."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise LoadError(f"unsupported file type '{path.suffix}'")
    return loader(path, source)


def discover(paths: list[Path]) -> list[tuple[Path, Path, str]]:
    """(root, file, source) for every supported file under the given paths, sorted.

    `source` is the path relative to the root: the directory given, or a file's own folder.
    Hidden files and folders are skipped.
    """
    found = []
    for p in paths:
        p = p.resolve()
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                if f.is_file() and f.suffix.lower() in SUPPORTED:
                    found.append((p, f, rel.as_posix()))
        elif p.is_file():
            found.append((p.parent, p, p.name))
    return found
