"""`ragkit serve` on the command line (uvicorn.run patched: nothing listens), its start-up helpers,
and the passage highlight the page shows for a citation."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import ragkit.generate
from ragkit.cli import main
from ragkit.errors import UsageError
from ragkit.serve.openai_api import highlight
from ragkit.serve.startup import exposure_warning, index_specs

from .conftest import FakeGenerator, free_port


@pytest.fixture
def no_listen(monkeypatch):
    import uvicorn

    class Calls(list):
        loads: list

    calls = Calls()
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    loads = []

    def load(model, backend=None, **kw):
        loads.append((model, backend, kw))
        return FakeGenerator(model=str(model))

    monkeypatch.setattr(ragkit.generate, "load_generator", load)
    calls.loads = loads
    return calls


def run(*args, env=None):
    port = [] if "--port" in args else ["--port", str(PORT)]
    return CliRunner().invoke(main, ["serve", *map(str, args), *port], env=env, catch_exceptions=False)


PORT = free_port()  # serve binds its port before anything loads: a free one, not 8000


def test_serves_loopback_by_default_and_loads_once(no_listen, serve_index):
    r = run("--index", f"docs={serve_index}", "--index", serve_index, "--model", "smollm2-135m")
    assert r.exit_code == 0, r.output
    assert "Warning" not in r.output and "ragkit/docs, ragkit/idx" in r.output
    (app, kw), = no_listen
    assert kw["host"] == "127.0.0.1" and kw["port"] == PORT and kw["fd"] > 0
    assert [m for m, *_ in no_listen.loads] == ["smollm2-135m"]
    assert list(app.state.served.indexes) == ["docs", "idx"] and app.state.served.api_key is None


def test_without_model_each_language_gets_its_default(no_listen, serve_index):
    assert run("--index", serve_index).exit_code == 0
    (app, _), = no_listen
    assert [kw.get("lang") for _, _, kw in no_listen.loads] == ["en", "zh"]
    gens = app.state.served.generators
    assert gens["en"] is not gens["zh"] and len(app.state.slots) == 2  # one queue per model


def test_public_host_without_key_warns_and_key_comes_from_env(no_listen, serve_index):
    r = run("--index", serve_index, "--model", "m", "--host", "0.0.0.0")
    assert "Warning: listening on 0.0.0.0 without an API key" in r.output
    r = run("--index", serve_index, "--model", "m", "--host", "0.0.0.0", env={"RAGKIT_API_KEY": "k1"})
    assert "Warning" not in r.output and "auth: on" in r.output
    assert no_listen[-1][0].state.served.api_key == "k1"


def test_bad_input_is_one_line_and_nothing_loads(no_listen, tmp_path, serve_index):
    for args, fragment in [
        (["--index", tmp_path / "missing"], "no index at"),
        (["--index", f"bad name={serve_index}"], "index name 'bad name' may hold only"),
        (["--keys", tmp_path / "nokeys.json", "--index", serve_index], "no keys file"),
        ([], "give at least one --index DIR"),
        (["--data-dir", serve_index / "CURRENT"], "is a file"),
        (["--index", serve_index, "--index", f"idx={serve_index}"], "two indexes are named 'idx'"),
        (["--index", serve_index, "-k", "50"], "--max-k"),
        (["--index", serve_index, "--temperature", "-1"], "temperature"),
    ]:
        r = run(*args)
        assert r.exit_code == 2 and r.output.count("\n") == 1 and r.output.startswith("Error: "), r.output
        assert fragment in r.output
    assert no_listen == [] and no_listen.loads == []


def test_a_taken_port_is_exit_2_before_anything_loads(no_listen, serve_index):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = run("--index", serve_index, "--port", port)
    assert r.exit_code == 2 and r.output == f"Error: port {port} on 127.0.0.1 is already in use; stop what listens " \
        "there or pick another with --port\n"
    assert no_listen == [] and no_listen.loads == []


def test_top_level_help_does_not_cut_command_descriptions():
    r = CliRunner().invoke(main, ["--help"], terminal_width=80)
    commands = r.output.split("Commands:")[1]
    assert r.exit_code == 0 and "..." not in commands
    assert "Serve indexes and knowledge bases over an OpenAI-compatible API and a web page, with" in \
        " ".join(r.output.split())


def test_index_specs_and_exposure():
    specs = index_specs(["/data/manuals", "faq=/data/x", "/data/a=b/v2"])
    assert list(specs) == ["manuals", "faq", "v2"] and str(specs["v2"]) == "/data/a=b/v2"
    for bad in ([], ["/data/y=z"], ["a=/x", "a=/y"]):
        with pytest.raises(UsageError):
            index_specs(bad)
    assert exposure_warning("127.0.0.1", None) is None and exposure_warning("::1", None) is None
    assert exposure_warning("localhost", None) is None and exposure_warning("0.0.0.0", "k") is None
    assert "without an API key" in exposure_warning("192.168.1.5", None)


def test_highlight_finds_the_cited_sentence():
    p = "Suction: the Kestrel V7 reaches a maximum suction power of 5,000 Pa. The dustbin holds 400 mL."
    a, b = highlight("The maximum suction power of the V7 is 5,000 Pa. [1]", 1, p)
    assert p[a:b] == "Suction: the Kestrel V7 reaches a maximum suction power of 5,000 Pa."
    a, b = highlight("5,000 Pa [1].", 1, p)
    assert p[a:b] == "5,000 Pa"  # verbatim: exactly that
    a, b = highlight("Suction is 5,000 Pa [2]. The bin holds 400 mL [1].", 1, p)
    assert p[a:b] == "The dustbin holds 400 mL."  # the sentence that carries [1], not the other
    assert highlight("nothing shared [1]", 1, p) is None
