"""Knowledge bases over HTTP (/v1/vector_stores): create, upload, ingest jobs, file status, delete,
and every bad upload refused with one sentence and nothing written.

The server runs on a loopback port with the fake generator and the fake embedder; the embedder's
gate holds an ingest running so that what happens during one (a second upload, a delete, a
search) can be checked.
"""

from __future__ import annotations

import io
import time
import zipfile

import httpx
import pytest

EN = ("falcon-manual.md", "# Falcon Z9\n\nThe Falcon Z9 weighs 1,240 grams with its battery. It folds to 21 cm.\n")
ZH = ("云雀说明.txt", "云雀K5扫地机的尘盒容量是450毫升，续航时间为150分钟。\n")


def create(srv, name="manuals", **kw):
    return httpx.post(f"{srv.url}/v1/vector_stores", json={"name": name}, timeout=20, **kw)


def upload(srv, kb, files, **kw):
    return httpx.post(f"{srv.url}/v1/vector_stores/{kb}/files", timeout=20,
                      files=[("file", (n, d.encode() if isinstance(d, str) else d, "application/octet-stream"))
                             for n, d in files], **kw)


def raw_upload(srv, kb, filename: bytes, data: bytes, **kw):
    """A multipart body written by hand, so that any file name (NUL, '../') reaches the server as sent."""
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename + b"\"\r\n"
            b"Content-Type: text/plain\r\n\r\n" + data + b"\r\n--XyZ--\r\n")
    return httpx.post(f"{srv.url}/v1/vector_stores/{kb}/files", content=body, timeout=20,
                      headers={"Content-Type": "multipart/form-data; boundary=XyZ", **kw.pop("headers", {})}, **kw)


def wait_job(srv, kb, job_id, timeout=30, **kw):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{srv.url}/v1/vector_stores/{kb}/file_batches/{job_id}", timeout=10, **kw).json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def files_of(srv, kb, **kw):
    return {f["filename"]: f for f in httpx.get(f"{srv.url}/v1/vector_stores/{kb}/files", timeout=10, **kw).json()["data"]}


def retrieve(srv, kb, query, **kw):
    return httpx.post(f"{srv.url}/v1/retrieve", json={"query": query, "knowledge_base": kb}, timeout=20, **kw)


def tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def docx_bytes(text: str) -> bytes:
    from docx import Document

    doc = Document()
    doc.add_paragraph(text)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def test_create_list_get_and_delete(kb_serve):
    srv = kb_serve()
    r = create(srv)
    assert r.status_code == 201 and r.json()["object"] == "vector_store" and r.json()["id"] == "manuals"
    assert r.json()["file_counts"] == {"indexed": 0, "skipped": 0, "pending": 0, "total": 0}
    assert create(srv).status_code == 409
    for bad in ["", "a b", "../x", "x" * 65, "名字", "a\x00b"]:
        r = create(srv, bad)
        assert r.status_code == 400 and "must be 1-64 letters" in r.json()["error"]["message"], bad
    assert [k["id"] for k in httpx.get(f"{srv.url}/v1/vector_stores").json()["data"]] == ["manuals"]
    assert httpx.get(f"{srv.url}/v1/vector_stores/manuals").json()["name"] == "manuals"
    assert httpx.get(f"{srv.url}/v1/vector_stores/nope").status_code == 404
    # an empty knowledge base searches to nothing, and the chat refuses
    assert retrieve(srv, "manuals", "weight").json()["hits"] == []
    r = httpx.delete(f"{srv.url}/v1/vector_stores/manuals")
    assert r.json() == {"id": "manuals", "object": "vector_store.deleted", "deleted": True}
    assert not (srv.data / "kb" / "manuals").exists()
    assert httpx.delete(f"{srv.url}/v1/vector_stores/manuals").status_code == 404


def test_upload_is_indexed_by_a_job_and_answers_from_the_file(kb_serve, fake_gen):
    srv = kb_serve()
    create(srv)
    r = upload(srv, "manuals", [EN, ZH])
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["object"] == "vector_store.file_batch" and job["files"] == [EN[0], ZH[0]]
    done = wait_job(srv, "manuals", job["id"])
    assert done["state"] == "succeeded" and done["status"] == "completed"
    p = done["progress"]
    assert p["files"] == 2 and p["chunks_done"] == p["chunks_total"] >= 2 and p["eta_s"] == 0.0
    assert p["chunks_per_s"] > 0 and p["elapsed_s"] > 0
    rows = files_of(srv, "manuals")
    assert {n: r["status"] for n, r in rows.items()} == {EN[0]: "indexed", ZH[0]: "indexed"}
    assert all(r["chunks"] >= 1 and r["bytes"] > 0 for r in rows.values())
    hits = retrieve(srv, "manuals", "How much does the Falcon Z9 weigh?").json()["hits"]
    assert hits[0]["source"] == EN[0] and "1,240 grams" in hits[0]["text"]
    zh_hits = retrieve(srv, "manuals", "云雀K5的尘盒容量是多少？").json()["hits"]
    assert zh_hits[0]["source"] == ZH[0]
    fake_gen.reply = "It weighs 1,240 grams [1]."
    for body in ({"model": "ragkit/manuals"}, {"knowledge_base": "manuals"}, {"vector_store_ids": ["manuals"]}):
        r = httpx.post(f"{srv.url}/v1/chat/completions", timeout=20,
                       json={**body, "messages": [{"role": "user", "content": "How much does the Falcon Z9 weigh?"}]})
        assert r.status_code == 200 and r.json()["sources"][0]["source"] == EN[0], body
    models = [m["id"] for m in httpx.get(f"{srv.url}/v1/models").json()["data"]]
    assert models == ["ragkit/manuals"]
    kb = httpx.get(f"{srv.url}/v1/vector_stores/manuals").json()
    assert kb["file_counts"]["indexed"] == 2 and kb["chunks"] >= 2 and kb["status"] == "completed"


def test_unknown_knowledge_base_is_a_404_body(kb_serve):
    srv = kb_serve()
    r = retrieve(srv, "nope", "weight")
    assert r.status_code == 404 and "no knowledge base named 'nope'" in r.json()["error"]["message"]
    r = httpx.post(f"{srv.url}/v1/chat/completions", timeout=20,
                   json={"model": "ragkit/nope", "messages": [{"role": "user", "content": "hi there"}]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = httpx.post(f"{srv.url}/v1/retrieve", json={"query": "weight", "model": "ragkit/nope"}, timeout=20)
    assert r.status_code == 404
    assert upload(srv, "nope", [EN]).status_code == 404
    assert httpx.get(f"{srv.url}/v1/vector_stores/nope/files").status_code == 404
    assert httpx.get(f"{srv.url}/v1/vector_stores/nope/file_batches/job_x").status_code == 404


@pytest.fixture
def small_limits(monkeypatch):
    import ragkit.serve.uploads as uploads

    monkeypatch.setattr(uploads, "MAX_DOCX_UNPACKED", 2_000_000)


def bomb(total: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w") as f:
            for _ in range(total // 1_000_000):
                f.write(b"\0" * 1_000_000)
    return out.getvalue()


def test_every_bad_upload_is_a_4xx_sentence_and_writes_nothing(kb_serve, small_limits, tmp_path):
    from ragkit.serve.limits import UploadLimits

    srv = kb_serve(upload=UploadLimits(max_file_bytes=50_000, max_files=3, max_upload_bytes=200_000))
    create(srv)
    wait_job(srv, "manuals", upload(srv, "manuals", [EN]).json()["id"])
    before, outside = tree(srv.data), tree(tmp_path)
    cases = [
        (lambda: upload(srv, "manuals", [("empty.txt", b"")]), 400, "is empty (0 bytes)"),
        (lambda: upload(srv, "manuals", [("big.txt", b"a " * 30_000)]), 413, "over the server's 50000-byte limit"),
        (lambda: upload(srv, "manuals", [("huge.txt", b"a " * 150_000)]), 413, "--max-upload-bytes"),
        (lambda: upload(srv, "manuals", [(f"f{i}.txt", b"text") for i in range(4)]), 413, "at most 3"),
        (lambda: upload(srv, "manuals", [("bomb.docx", bomb(3_000_000))]), 413, "zip bomb"),
        (lambda: upload(srv, "manuals", [("tool.exe", b"MZ\x90\x00")]), 415, "unsupported type '.exe'"),
        (lambda: upload(srv, "manuals", [("notes", b"plain text")]), 415, "unsupported type '(none)'"),
        (lambda: upload(srv, "manuals", [("fake.txt", b"%PDF-1.4\n...")]), 415, "holds a PDF"),
        (lambda: upload(srv, "manuals", [("fake.pdf", b"just text")]), 415, "holds plain text"),
        (lambda: upload(srv, "manuals", [("blob.md", b"\x00\x01\x02binary")]), 415, "holds binary data"),
        (lambda: upload(srv, "manuals", [("zip.docx", zip_without_word())]), 415, "not a Word document"),
        (lambda: raw_upload(srv, "manuals", b"../escape.txt", b"text"), 400, "holds a path"),
        (lambda: raw_upload(srv, "manuals", b"..\\\\escape.txt", b"text"), 400, "holds a path"),
        (lambda: raw_upload(srv, "manuals", b"/etc/passwd.txt", b"text"), 400, "holds a path"),
        (lambda: raw_upload(srv, "manuals", b"a\x00b.txt", b"text"), 400, "NUL byte"),
        (lambda: raw_upload(srv, "manuals", b".hidden.txt", b"text"), 400, "starts with '.'"),
        (lambda: raw_upload(srv, "manuals", b"", b"text"), 400, "has no name"),
        (lambda: upload(srv, "manuals", [("a.txt", b"one"), ("a.txt", b"two")]), 400, "same name"),
        (lambda: httpx.post(f"{srv.url}/v1/vector_stores/manuals/files", json={"file": "x"}), 400, "multipart"),
    ]
    for send, status, fragment in cases:
        r = send()
        message = r.json()["error"]["message"]
        assert r.status_code == status and fragment in message, (status, r.status_code, message)
        assert "\n" not in message and message.count(". ") <= 1
    assert tree(srv.data) == before and tree(tmp_path) == outside  # nothing stored, nothing written anywhere
    assert set(files_of(srv, "manuals")) == {EN[0]}
    assert retrieve(srv, "manuals", "Falcon Z9 weight").json()["hits"][0]["source"] == EN[0]  # still indexed


def zip_without_word() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("readme.txt", "not a docx")
    return out.getvalue()


def test_a_file_that_fails_to_parse_is_listed_with_its_reason(kb_serve):
    srv = kb_serve()
    create(srv)
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<not really a document")
    job = upload(srv, "manuals", [EN, ("broken.docx", broken.getvalue()), ("manual.docx", docx_bytes(
        "The Heron H2 kettle holds 1.7 litres."))]).json()
    wait_job(srv, "manuals", job["id"])
    rows = files_of(srv, "manuals")
    assert rows["broken.docx"]["status"] == "skipped" and "DOCX" in rows["broken.docx"]["reason"]
    assert rows[EN[0]]["status"] == rows["manual.docx"]["status"] == "indexed"
    assert retrieve(srv, "manuals", "Heron H2 kettle litres").json()["hits"][0]["source"] == "manual.docx"


def test_uploads_and_deletes_during_an_ingest_queue_and_none_is_lost(kb_serve, gated_embedder):
    srv = kb_serve()
    create(srv)
    wait_job(srv, "manuals", upload(srv, "manuals", [EN]).json()["id"])
    gated_embedder.gate.clear()
    first = upload(srv, "manuals", [ZH]).json()
    assert gated_embedder.waiting.wait(10)  # the first job is embedding, held at the gate
    second = upload(srv, "manuals", [("kettle.txt", "The Heron H2 kettle holds 1.7 litres of water.\n")])
    assert second.status_code == 202 and second.json()["state"] == "queued"
    deleting = httpx.delete(f"{srv.url}/v1/vector_stores/manuals/files/{EN[0]}")
    assert deleting.status_code == 202 and deleting.json()["kind"] == "delete"
    # while it runs: readers keep the live version, and the files say what is pending
    assert retrieve(srv, "manuals", "Falcon Z9 weight").json()["hits"][0]["source"] == EN[0]
    rows = files_of(srv, "manuals")
    assert rows["kettle.txt"]["status"] == "pending" and rows[EN[0]]["reason"] == "being deleted"
    r = httpx.delete(f"{srv.url}/v1/vector_stores/manuals")
    assert r.status_code == 409 and "ingest job(s) queued or running" in r.json()["error"]["message"]
    r = httpx.delete(f"{srv.url}/v1/vector_stores/manuals/files/kettle.txt")
    assert r.status_code == 409 and "still waiting to be indexed" in r.json()["error"]["message"]
    assert httpx.delete(f"{srv.url}/v1/vector_stores/manuals/files/missing.txt").status_code == 404
    gated_embedder.gate.set()
    for job in (first, second.json(), deleting.json()):
        assert wait_job(srv, "manuals", job["id"])["state"] == "succeeded"
    rows = files_of(srv, "manuals")
    assert {n: r["status"] for n, r in rows.items()} == {ZH[0]: "indexed", "kettle.txt": "indexed"}
    hits = retrieve(srv, "manuals", "Falcon Z9 weight grams").json()["hits"]
    assert EN[0] not in {h["source"] for h in hits}  # the deleted file's chunks are gone
    assert retrieve(srv, "manuals", "Heron kettle litres").json()["hits"][0]["source"] == "kettle.txt"
    # deleting the last files leaves a knowledge base that finds nothing
    for name in list(rows):
        wait_job(srv, "manuals", httpx.delete(f"{srv.url}/v1/vector_stores/manuals/files/{name}").json()["id"])
    assert files_of(srv, "manuals") == {} and retrieve(srv, "manuals", "kettle").json()["hits"] == []


def test_an_upload_waiting_when_the_server_stops_is_indexed_at_the_next_start(kb_serve, gated_embedder):
    srv = kb_serve()
    create(srv)
    gated_embedder.gate.clear()
    upload(srv, "manuals", [EN])
    assert gated_embedder.waiting.wait(10)
    queued = upload(srv, "manuals", [ZH]).json()
    srv.stop()
    gated_embedder.gate.set()
    status = srv.data / "kb" / "manuals" / "status.json"
    deadline = time.monotonic() + 20
    while EN[0] not in (status.read_text(encoding="utf-8") if status.exists() else ""):  # the held job ends
        assert time.monotonic() < deadline
        time.sleep(0.05)
    srv2 = kb_serve()
    assert wait_job(srv2, "manuals", queued["id"])["state"] == "succeeded"
    assert {n: r["status"] for n, r in files_of(srv2, "manuals").items()} == {EN[0]: "indexed", ZH[0]: "indexed"}


def test_knowledge_bases_load_their_embedder_with_a_whole_batch_size(tmp_path, monkeypatch):
    """The ingest settings leave batch_size to the backend (None); the server's embedder must get a
    number (it got None, and every upload's ingest failed with a TypeError, with the real embedder)."""
    from ragkit.serve import startup

    seen = {}

    def fake_load(name, batch_size, backend):
        seen["batch_size"] = batch_size
        return object()

    monkeypatch.setattr(startup, "load_embedder", fake_load)
    monkeypatch.setattr(startup, "KnowledgeBases", lambda data_dir, embedder, reserved: ("kbs", embedder))
    startup.open_knowledge_bases(tmp_path / "data", reserved=set())
    assert isinstance(seen["batch_size"], int) and seen["batch_size"] >= 1
