"""File → Document loaders for .txt .md .html/.htm .pdf .docx .csv .jsonl.

Text is decoded by trying UTF-8 (with or without BOM) first; then Windows-1252 when that reads as
Western text with a few accented letters (charset-normalizer guessed cp1257 for "Café", giving
"Cafķ"); then what charset-normalizer detects, then GB18030 and Big5: Chinese users' files are
often in the legacy encodings. A non-UTF-8 guess is named in the ingest summary's notes, as are
library warnings (pypdf's "EOF marker not found") and skipped JSONL lines, each with its file.
A file that cannot be read raises LoadError with a reason the summary shows next to its name.
Files are opened with O_NOFOLLOW and must be regular files: a file swapped for a link or a FIFO
after the walk is refused, not followed or waited on.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import os
import re
import stat
import warnings
from pathlib import Path

from ..errors import LoadError
from ..types import Document

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".csv", ".jsonl")


class LoadNote(UserWarning):
    """Something the user should know about a file that was read: a guessed encoding, skipped lines."""


_CJK_GUESS = ("gb", "big5", "cp950", "cp936", "euc", "shift_jis", "cp932", "iso2022", "hz", "johab", "cp949")


def _western(text: str) -> bool:
    """Reads as Western text: letters mostly ASCII, the others accented Latin letters."""
    letters = [c for c in text if c.isalpha()]
    odd = [c for c in letters if not c.isascii()]
    return bool(letters) and all("\u00c0" <= c <= "\u024f" for c in odd) and len(odd) <= 0.3 * len(letters)


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
    if not (candidates and candidates[0].lower().startswith(_CJK_GUESS)):
        try:
            if _western(text := data.decode("cp1252")) and _looks_like_text(text):
                warnings.warn(LoadNote("not UTF-8; decoded as Windows-1252 (Latin-1), a guess"), stacklevel=2)
                return text
        except UnicodeDecodeError:
            pass
    # GB18030 is a superset of GBK/GB2312; Big5 covers traditional Chinese.
    candidates += ["gb18030", "big5"]
    for enc in candidates:
        try:
            text = data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
        if _looks_like_text(text):
            warnings.warn(LoadNote(f"not UTF-8; decoded as {enc}, a guess"), stacklevel=2)
            return text
    raise LoadError("unknown text encoding (not UTF-8, GB18030 or Big5)")


def _looks_like_text(text: str) -> bool:
    if not text:
        return False
    bad = sum(1 for c in text if (ord(c) < 32 and c not in "\t\n\r\f") or c == "\ufffd")
    return bad / len(text) < 0.01


def read_file_bytes(path: Path) -> bytes:
    """The bytes of a regular file, never through a symbolic link, never blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except PermissionError:
        raise LoadError("permission denied") from None
    except OSError as e:
        if e.errno == errno.ELOOP:  # the path is a symbolic link now
            raise LoadError("became a symbolic link; not followed") from None
        raise LoadError(f"cannot read ({e.strerror or e})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LoadError("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as e:
        raise LoadError(f"cannot read ({e.strerror or e})") from None
    finally:
        os.close(fd)


_read_bytes = read_file_bytes


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
        # A permissions-only PDF has an empty user password: any viewer opens it, so do we.
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF (needs a password)")
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
    docs, bad = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            bad.append(lineno)
            continue
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            bad.append(lineno)
            continue
        if not record["text"].strip():
            continue
        meta = {k: v for k, v in record.items() if k != "text" and isinstance(v, (str, int, float, bool))}
        meta["line"] = lineno
        title = record.get("title") if isinstance(record.get("title"), str) else None
        docs.append(Document(source=source, text=record["text"], title=title, metadata=meta))
    lines = ", ".join(map(str, bad[:10])) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
    if not docs:
        raise LoadError("no records with text" + (f" (lines {lines} are not JSON objects with a string 'text')"
                                                  if bad else ""))
    if bad:
        warnings.warn(LoadNote(f"skipped line(s) {lines}: not a JSON object with a string 'text' field"),
                      stacklevel=2)
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
    return load_file_noted(path, source)[0]


class _Collect(logging.Handler):
    def __init__(self, notes: list[str]):
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append(f"{record.name.split('.')[0]}: {record.getMessage()}")


def load_file_noted(path: Path, source: str) -> tuple[list[Document], list[str]]:
    """(documents, notes) for one file: notes are guesses and library warnings about this file."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise LoadError(f"unsupported file type '{path.suffix}'")
    notes: list[str] = []
    handler = _Collect(notes)
    libs = [logging.getLogger(n) for n in ("pypdf", "docx", "bs4")]
    saved = [(lg.propagate, lg.level) for lg in libs]
    for lg in libs:
        lg.addHandler(handler)
        lg.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                docs = loader(path, source)
            except RecursionError:
                raise LoadError("nested too deeply to parse") from None
            except (MemoryError, LoadError):
                raise
            except Exception as e:  # a parser's own bug on a hostile file must not stop the ingest
                raise LoadError(f"cannot parse ({type(e).__name__}: {str(e)[:200]})") from None
    finally:
        for lg, (prop, _level) in zip(libs, saved):
            lg.removeHandler(handler)
            lg.propagate = prop
    notes[:0] = [str(w.message) for w in caught]
    return docs, list(dict.fromkeys(notes))

