"""What an upload must pass before a byte of it is stored: a safe name, a size, and a type by content.

A multipart body (already bounded by the guard's upload limit, so it sits in memory) is split by
hand here rather than by python-multipart, which is not a dependency and would spool large parts
to the system's temporary folder, outside the data directory. Each file is then checked:

- its name is a plain base name: no '/', '\\', NUL or other control characters, not '.' or '..',
  not hidden (ingest skips hidden files), at most 255 bytes;
- its size is above 0 and at most the per-file limit;
- its type comes from its bytes and must agree with its suffix: '%PDF-' for .pdf; a ZIP holding
  'word/document.xml' for .docx; text that decodes (no NUL, loaders.decode_text) for the text types.
  A .docx is refused as a zip bomb when its members declare more than `MAX_DOCX_UNPACKED` bytes in
  all, more than `MAX_DOCX_MEMBERS` members, or a member that unpacks more than `MAX_ZIP_RATIO`
  times its packed size. The declared sizes can be trusted as upper bounds: Python's zipfile
  (which python-docx reads with) stops a member at its declared size.

Each refusal is an `UploadRefused` with one sentence; the route answers it with a 4xx.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import PurePosixPath

from ..errors import LoadError
from ..ingest.loaders import SUPPORTED, decode_text

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".csv", ".jsonl"})
MAX_DOCX_UNPACKED = 100 * 1024 * 1024
MAX_DOCX_MEMBERS = 2000
MAX_ZIP_RATIO = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UploadRefused(Exception):
    """An upload that is not stored: the HTTP status and one sentence."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Part:
    """One multipart form part: the field name, the file name (None for a plain field), the bytes."""

    field: str
    filename: str | None
    data: bytes


def parse_multipart(content_type: str, body: bytes, max_parts: int) -> list[Part]:
    """The parts of a multipart/form-data body; UploadRefused(400) when it is not one."""
    msg = Message()
    msg["content-type"] = content_type or ""
    boundary = msg.get_param("boundary")
    if msg.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not boundary:
        raise UploadRefused(400, "send the files as multipart/form-data, one 'file' field per file")
    delim = b"--" + boundary.encode("latin-1")
    if not body.startswith(delim):
        raise UploadRefused(400, "the multipart body does not start with its boundary")
    parts: list[Part] = []
    pieces = (b"\r\n" + body).split(b"\r\n" + delim)
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break  # the closing delimiter
        head, sep, data = piece.partition(b"\r\n\r\n")
        if not sep:
            raise UploadRefused(400, "a multipart part has no blank line after its headers")
        if len(parts) >= max_parts:
            raise UploadRefused(413, f"more than {max_parts} parts in one upload")
        headers = Message()
        for line in head.decode("utf-8", "replace").split("\r\n")[1:]:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip()] = value.strip()
        if headers.get_content_disposition() != "form-data":
            raise UploadRefused(400, "each multipart part needs 'Content-Disposition: form-data'")
        field = headers.get_param("name", header="content-disposition")
        filename = headers.get_filename()
        if filename is None and "filename" in (headers.get("content-disposition") or ""):
            filename = ""  # filename="" : a file input left empty
        parts.append(Part(str(field or ""), filename, data))
    else:
        raise UploadRefused(400, "the multipart body has no closing boundary")
    return parts


def check_name(name: str) -> str:
    """The file's name as stored, or UploadRefused(400) naming what is wrong with it."""
    shown = ascii(name)[1:-1][:80]
    if not name:
        raise UploadRefused(400, "a file has no name; send it with filename=\"NAME\"")
    if "\x00" in name:
        raise UploadRefused(400, f"the file name '{shown}' holds a NUL byte")
    if "/" in name or "\\" in name or name in (".", "..") or PurePosixPath(name).name != name:
        raise UploadRefused(400, f"the file name '{shown}' holds a path; send a plain name such as 'manual.pdf'")
    if _CONTROL.search(name):
        raise UploadRefused(400, f"the file name '{shown}' holds control characters")
    if name.startswith("."):
        raise UploadRefused(400, f"the file name '{shown}' starts with '.', which ingest skips as hidden")
    if len(name.encode("utf-8")) > 255:
        raise UploadRefused(400, "a file name is longer than 255 bytes")
    return name


def sniff(data: bytes) -> str:
    """What the bytes are: 'pdf', 'zip', 'binary' or 'text'."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return "zip"
    sample = data[:65536]
    if b"\x00" not in sample and len(data) > len(sample):
        for cut in range(4):  # a UTF-8 character cut at the sample's end is not a reason to refuse
            try:
                sample[: len(sample) - cut].decode("utf-8")
                return "text"
            except UnicodeDecodeError:
                continue
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            decode_text(sample)
    except LoadError:
        return "binary"
    return "text"


def check_docx(name: str, data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as e:
        raise UploadRefused(415, f"'{name}' is not a readable DOCX (a broken ZIP: {e})") from None
    if len(infos) > MAX_DOCX_MEMBERS:
        raise UploadRefused(413, f"'{name}' holds {len(infos)} ZIP members (at most {MAX_DOCX_MEMBERS}); refused "
                            "as a possible zip bomb")
    unpacked = sum(i.file_size for i in infos)
    if unpacked > MAX_DOCX_UNPACKED:
        raise UploadRefused(413, f"'{name}' unpacks to {unpacked} bytes (at most {MAX_DOCX_UNPACKED}); refused as "
                            "a zip bomb")
    for i in infos:
        if i.file_size > 1_000_000 and i.file_size > MAX_ZIP_RATIO * max(1, i.compress_size):
            raise UploadRefused(413, f"'{name}' has a member that unpacks {i.file_size // max(1, i.compress_size)} "
                                f"times its size (at most {MAX_ZIP_RATIO}); refused as a zip bomb")
    if "word/document.xml" not in {i.filename for i in infos}:
        raise UploadRefused(415, f"'{name}' is a ZIP but not a Word document (no word/document.xml)")


def check_file(name: str, data: bytes, max_bytes: int) -> None:
    """Refuse a file that is empty, too large, of an unknown type, or whose bytes contradict its suffix."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SUPPORTED:
        raise UploadRefused(415, f"'{name}' has an unsupported type '{suffix or '(none)'}'; supported: "
                            f"{' '.join(SUPPORTED)}")
    if not data:
        raise UploadRefused(400, f"'{name}' is empty (0 bytes)")
    if len(data) > max_bytes:
        raise UploadRefused(413, f"'{name}' is {len(data)} bytes, over the server's {max_bytes}-byte limit per file")
    kind = sniff(data)
    expected = "pdf" if suffix == ".pdf" else "zip" if suffix == ".docx" else "text"
    if kind != expected:
        what = {"pdf": "a PDF", "zip": "a ZIP archive", "binary": "binary data", "text": "plain text"}[kind]
        raise UploadRefused(415, f"'{name}' holds {what}, not what its suffix '{suffix}' says")
    if suffix == ".docx":
        check_docx(name, data)
