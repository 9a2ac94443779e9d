"""Defects 3, 6 and 9 of issue 14: nothing outside the corpus is read, nothing stored is lost."""


import io
import os
import warnings

import pytest

from ragkit.index import Index, IngestConfig, ingest
from ragkit.ingest.loaders import decode_text, load_file_noted

FAKE = IngestConfig(embed_model="fake-embedder")


def test_links_out_of_the_root_and_special_files_are_named_not_read(mini_corpus, tmp_path, fake_embedder):
    secret = tmp_path / "secret.txt"
    secret.write_text("HOSTSECRET root:x:0:0", encoding="utf-8")
    (mini_corpus / "passwd.txt").symlink_to(secret)
    (mini_corpus / "etc.md").symlink_to("/etc/hostname")
    (mini_corpus / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    (mini_corpus / "loop.md").symlink_to(mini_corpus / "loop.md")
    (mini_corpus / "outdir").symlink_to(tmp_path)
    (mini_corpus / "zhlink").symlink_to(mini_corpus / "zh")
    (mini_corpus / "alias.md").symlink_to(mini_corpus / "warranty.md")  # inside the root: read
    os.mkfifo(mini_corpus / "pipe.txt")  # reading it would block the ingest for ever
    s = ingest([mini_corpus], tmp_path / "idx", FAKE)
    reasons = {os.path.basename(p): r for p, r in s.skipped}
    assert set(reasons) == {"passwd.txt", "etc.md", "dangling.md", "loop.md", "outdir", "zhlink", "pipe.txt"}
    assert "outside the ingest root" in reasons["passwd.txt"] and "dangling" in reasons["dangling.md"]
    assert "loop" in reasons["loop.md"] and "FIFO" in reasons["pipe.txt"] and "outside" in reasons["outdir"]
    assert "folder; not followed" in reasons["zhlink"]
    index = Index.open(tmp_path / "idx")
    assert index.search("HOSTSECRET", k=3, mode="bm25") == []
    assert "alias.md" in index.manifest["files"]


def test_a_file_argument_that_links_out_is_refused(tmp_path, fake_embedder):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "ok.md").write_text("fine", encoding="utf-8")
    (tmp_path / "docs" / "x.md").symlink_to("/etc/passwd")
    s = ingest([tmp_path / "docs" / "x.md", tmp_path / "docs" / "ok.md"], tmp_path / "idx", FAKE)
    assert [os.path.basename(p) for p, _ in s.skipped] == ["x.md"]


def test_unreadable_file_keeps_its_last_good_version(mini_corpus, tmp_path, fake_embedder, monkeypatch):
    import ragkit.ingest.loaders as loaders

    idx = tmp_path / "idx"
    ingest([mini_corpus], idx, FAKE)
    (mini_corpus / "specs.txt").write_text("changed, then unreadable", encoding="utf-8")
    real_open = os.open

    def deny(path, *a, **k):  # tests run as root, which ignores chmod 000
        if str(path).endswith("specs.txt"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr(loaders.os, "open", deny)
    s = ingest([mini_corpus], idx, FAKE)
    assert s.files_deleted == 0 and "kept its last indexed version" in s.skipped[0][1]
    hit = Index.open(idx).search("flight time minutes", k=1, mode="bm25")[0]
    assert hit.source == "specs.txt" and "38 minutes" in hit.text


def test_failed_first_ingest_leaves_no_folder(tmp_path, fake_embedder):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Exception, match="no readable documents"):
        ingest([empty], tmp_path / "idx", FAKE)
    assert not (tmp_path / "idx").exists()


def test_latin1_is_decoded_and_the_guess_named():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert decode_text("Café au lait, crème brûlée. Naïve façade.".encode("latin-1")) == \
            "Café au lait, crème brûlée. Naïve façade."
        assert decode_text("Café".encode("latin-1")) == "Café"
        gbk = "猎鹰无人机整机保修期为二十四个月。电池保修十二个月。".encode("gb18030")
        assert decode_text(gbk) == "猎鹰无人机整机保修期为二十四个月。电池保修十二个月。"
    assert any("Windows-1252" in str(w.message) for w in caught)


def _pdf(text: str, encrypt: bool = False, broken_eof: bool = False) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text=text)
    data = bytes(pdf.output())
    if encrypt:  # permissions only: an empty user password, as most "protected" PDFs have
        from pypdf import PdfReader, PdfWriter

        w = PdfWriter()
        w.append(PdfReader(io.BytesIO(data)))
        w.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
        out = io.BytesIO()
        w.write(out)
        data = out.getvalue()
    return data.rstrip()[:-1] if broken_eof else data  # "%%EO": pypdf warns "EOF marker seems truncated"


def test_permissions_only_pdf_opens_and_pdf_warnings_name_the_file(tmp_path):
    p = tmp_path / "locked.pdf"
    p.write_bytes(_pdf("Rotor torque is 12 newton metres.", encrypt=True))
    docs, _ = load_file_noted(p, "locked.pdf")
    assert "Rotor torque" in docs[0].text
    p = tmp_path / "noeof.pdf"
    p.write_bytes(_pdf("Battery cells are LiPo.", broken_eof=True))
    docs, notes = load_file_noted(p, "noeof.pdf")
    assert "LiPo" in docs[0].text and any("EOF" in n for n in notes)


def test_chunk_cap_keeps_the_first_chunks_with_a_note(tmp_path, fake_embedder):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "big.txt").write_text(" ".join(f"w{i}" for i in range(4000)), encoding="utf-8")
    cfg = IngestConfig(embed_model="fake-embedder", max_chunks_per_file=5)
    s = ingest([tmp_path / "c"], tmp_path / "idx", cfg)
    assert s.chunks == 5 and "per-file cap of 5" in s.notes[0][1]


def test_chunk_count_grows_linearly_with_text(fake_embedder):
    """The 6 MB one-line file: chunking is linear in tokens (about tokens / (size - overlap))."""
    from ragkit.ingest.chunking import ChunkingConfig, chunk_documents
    from ragkit.types import Document

    for n in (2000, 8000):
        text = " ".join(f"w{i}" for i in range(n))
        chunks = chunk_documents([Document("x", text)], "h", ChunkingConfig(200, 40), fake_embedder.count_tokens)
        assert n / 200 <= len(chunks) <= n / 160 + 2


def test_names_with_newlines_stay_on_one_summary_line(tmp_path, fake_embedder):
    from click.testing import CliRunner

    from ragkit.cli import main

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "ok.md").write_text("fine", encoding="utf-8")
    (tmp_path / "c" / "bad\nname.pdf").write_bytes(b"not a pdf")
    r = CliRunner().invoke(main, ["ingest", str(tmp_path / "c"), "--index", str(tmp_path / "i"),
                                  "--embed-model", "fake-embedder"])
    skipped = [line for line in r.output.splitlines() if "skipped" in line and "bad" in line]
    assert r.exit_code == 3 and len(skipped) == 1 and "bad\\nname.pdf" in skipped[0]


def test_bm25_mode_does_not_pad_with_non_matching_hits(mini_corpus, tmp_path, fake_embedder):
    ingest([mini_corpus], tmp_path / "idx", FAKE)
    hits = Index.open(tmp_path / "idx").search("Brightwater", k=5, mode="bm25")
    assert [h.source for h in hits] == ["warranty.md"]


def test_out_of_range_citation_is_dropped():
    from ragkit.generate.citations import drop_unknown_citations

    assert drop_unknown_citations("Two years [4].", 3) == "Two years."
    assert drop_unknown_citations("Two years [2][4] and [1, 5].", 3) == "Two years [2] and [1]."
    assert drop_unknown_citations("ok [3]", 3) == "ok [3]"


def test_peft_adapter_on_llamacpp_names_export_gguf(tmp_path):
    from ragkit.errors import ModelNotFound
    from ragkit.generate.llamacpp import LlamaCppGenerator

    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "m.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelNotFound, match="GGUF adapter.*export-gguf"):
        LlamaCppGenerator(tmp_path / "m.gguf", "m", adapter=str(tmp_path / "adapter"))


def test_bench_not_utf8_is_named_by_line(tmp_path):
    from ragkit.errors import BenchFormatError
    from ragkit.eval.bench import load_bench, validate_bench

    good = '{"id": "a", "question": "q", "answers": ["x"], "sources": ["s"], "category": "k", "difficulty": "easy"}'
    p = tmp_path / "b.jsonl"
    p.write_bytes(good.encode() + b"\n" + "Café".encode("latin-1") + b"\n")
    valid, errors = validate_bench(p)
    assert valid == 1 and errors[0][0] == 2 and "not UTF-8" in errors[0][1]
    with pytest.raises(BenchFormatError, match="line 2: not UTF-8"):
        load_bench(p)


def test_eval_out_existing_file_is_one_sentence(tmp_path, mini_corpus, fake_embedder):
    from click.testing import CliRunner

    from ragkit.cli import main

    ingest([mini_corpus], tmp_path / "idx", FAKE)
    bench = tmp_path / "b.jsonl"
    bench.write_text('{"id": "a", "question": "warranty?", "answers": ["24 months"], "sources": ["warranty.md"], '
                     '"category": "knowledge", "difficulty": "easy"}\n', encoding="utf-8")
    (tmp_path / "out.txt").write_text("x")
    r = CliRunner().invoke(main, ["eval", "--bench", str(bench), "--index", str(tmp_path / "idx"),
                                  "--out", str(tmp_path / "out.txt"), "--retrieval-only"])
    assert r.exit_code != 0 and "is a file" in r.output and "Traceback" not in r.output

