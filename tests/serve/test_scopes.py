"""Keys with scopes (--keys, --api-key), /metrics, /docs, and honest queue times."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from ragkit.errors import UsageError
from ragkit.serve.keys import ApiKey, match_key, read_keys_file

from .test_concurrency import wait_until
from .test_knowledge import EN, create, retrieve, upload, wait_job

READ = "read-key-0123456789abcdef"
ADMIN = "admin-key-0123456789abcdef"


def auth(key):
    return {"headers": {"Authorization": f"Bearer {key}"}}


@pytest.fixture
def keyed(kb_serve):
    keys = [ApiKey("reader", READ.encode(), "read"), ApiKey("ops", ADMIN.encode(), "admin")]
    return kb_serve(keys=keys, api_key="single-admin-key-xyz")


def test_read_keys_ask_and_search_admin_keys_also_change(keyed):
    srv = keyed
    assert create(srv, **auth(READ)).status_code == 403
    r = create(srv, **auth(ADMIN))
    assert r.status_code == 201
    for key in (READ, ADMIN, "single-admin-key-xyz"):  # every key reads
        assert httpx.get(f"{srv.url}/v1/vector_stores", **auth(key)).status_code == 200
        assert httpx.get(f"{srv.url}/v1/vector_stores/manuals/files", **auth(key)).status_code == 200
        assert httpx.get(f"{srv.url}/v1/models", **auth(key)).status_code == 200
        assert httpx.get(f"{srv.url}/metrics", **auth(key)).status_code == 200
    denied = [upload(srv, "manuals", [EN], **auth(READ)),
              httpx.delete(f"{srv.url}/v1/vector_stores/manuals/files/{EN[0]}", **auth(READ)),
              httpx.delete(f"{srv.url}/v1/vector_stores/manuals", **auth(READ))]
    for r in denied:
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
        assert "'reader' has the read scope" in r.json()["error"]["message"] and READ not in r.text
    job = upload(srv, "manuals", [EN], **auth("single-admin-key-xyz"))  # --api-key is an admin key
    assert job.status_code == 202
    wait_job(srv, "manuals", job.json()["id"], **auth(READ))
    assert retrieve(srv, "manuals", "Falcon Z9 weight", **auth(READ)).json()["hits"][0]["source"] == EN[0]
    r = httpx.post(f"{srv.url}/v1/chat/completions", timeout=20, **auth(READ),
                   json={"model": "ragkit/manuals", "messages": [{"role": "user", "content": "Falcon Z9 weight?"}]})
    assert r.status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": f"Basic {ADMIN}"}):
        r = httpx.get(f"{srv.url}/v1/vector_stores", headers=headers)
        assert r.status_code == 401 and ADMIN not in r.text and "wrong-key" not in r.text
    assert httpx.get(f"{srv.url}/healthz").status_code == 200 and httpx.get(f"{srv.url}/").status_code == 200
    assert httpx.delete(f"{srv.url}/v1/vector_stores/manuals", **auth(ADMIN)).json()["deleted"] is True


def test_keys_file_is_checked_and_never_echoed(tmp_path):
    good = tmp_path / "keys.json"
    good.write_text(json.dumps([{"name": "alice", "key": ADMIN, "scope": "admin"},
                                {"name": "bob", "key": READ, "scope": "read"}]))
    keys = read_keys_file(good)
    assert [(k.name, k.scope) for k in keys] == [("alice", "admin"), ("bob", "read")]
    assert ADMIN not in repr(keys)
    assert match_key(READ, keys).name == "bob" and match_key(READ[:-1], keys) is None
    for entries, fragment in [
        ([{"name": "a", "key": "short", "scope": "read"}], "at least 16"),
        ([{"name": "a", "key": ADMIN, "scope": "owner"}], "'read' or 'admin'"),
        ([{"name": "a", "key": ADMIN, "scope": "read"}, {"name": "b", "key": ADMIN, "scope": "read"}], "twice"),
        ([{"name": "a", "key": ADMIN, "scope": "read", "extra": 1}], "only 'name', 'key' and 'scope'"),
        ({"a": 1}, "non-empty JSON list"),
    ]:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(entries))
        with pytest.raises(UsageError) as e:
            read_keys_file(bad)
        assert fragment in str(e.value) and ADMIN not in str(e.value) and "short" not in str(e.value).split("'")[1:2]
    with pytest.raises(UsageError, match="no keys file"):
        read_keys_file(tmp_path / "missing.json")


def test_metrics_count_requests_tokens_queue_and_jobs(kb_serve):
    srv = kb_serve()
    create(srv)
    wait_job(srv, "manuals", upload(srv, "manuals", [EN]).json()["id"])
    httpx.post(f"{srv.url}/v1/chat/completions", timeout=20,
               json={"model": "ragkit/manuals", "messages": [{"role": "user", "content": "Falcon Z9 weight?"}]})
    httpx.get(f"{srv.url}/v1/vector_stores/nope")
    r = httpx.get(f"{srv.url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'ragkit_requests_total{route="/v1/chat/completions",status="200"} 1' in text
    assert 'ragkit_requests_total{route="/v1/vector_stores/{name}",status="404"} 1' in text
    assert 'ragkit_queue_depth{model="fake-model"} 0' in text
    assert "ragkit_queue_seconds_count 1" in text and "ragkit_answer_seconds_count 1" in text
    assert "ragkit_completion_tokens_total 6" in text
    assert 'ragkit_ingest_jobs{state="succeeded"} 1' in text
    assert all(line.startswith("#") or len(line.split()) == 2 for line in text.splitlines())


def test_docs_only_with_the_flag(kb_serve):
    assert httpx.get(f"{kb_serve().url}/docs").status_code == 404
    srv = kb_serve(docs=True, api_key="a-key-for-the-docs-test")
    assert httpx.get(f"{srv.url}/docs").status_code == 200  # public: the schema holds no data
    paths = httpx.get(f"{srv.url}/openapi.json").json()["paths"]
    assert "/v1/vector_stores/{name}/files" in paths and "/v1/chat/completions" in paths


@pytest.mark.parametrize("stream", [False, True])
def test_queue_ms_counts_from_submission(serve, fake_gen, stream):
    srv = serve()
    fake_gen.gate = threading.Event()
    results = {}

    def ask(name, **extra):
        r = httpx.post(f"{srv.url}/v1/chat/completions", timeout=30,
                       json={"messages": [{"role": "user", "content": "Falcon X2 warranty?"}], **extra})
        if extra.get("stream"):
            last = [json.loads(line[6:]) for line in r.text.splitlines()
                    if line.startswith("data: {") and '"timings"' in line][-1]
            results[name] = last["timings"]
        else:
            results[name] = r.json()["timings"]

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    time.sleep(0.3)
    second = threading.Thread(target=ask, args=("second",), kwargs={"stream": stream})
    second.start()
    wait_until(lambda: next(iter(srv.server.config.app.state.slots.values())).pending == 2)
    time.sleep(1.5)
    fake_gen.gate.set()
    first.join(20)
    second.join(20)
    assert results["second"]["queue_ms"] >= 1400, results  # it waited 1.5 s behind the first
    assert results["first"]["queue_ms"] < 500


def test_a_one_token_answer_has_no_absurd_rate():
    from ragkit.pipeline import _gen_timings
    from ragkit.types import Completion

    one = Completion("Yes", 300, 1, first_token_ms=16000.0, total_ms=16000.0, finish_reason="stop")
    assert _gen_timings(one, 0.02, 16000.0)["tokens_per_s"] is None
    many = Completion("a b c d e", 300, 5, first_token_ms=1000.0, total_ms=2000.0, finish_reason="stop")
    assert _gen_timings(many, 0.0, 2000.0)["tokens_per_s"] == pytest.approx(4.0)
