"""Everything `ragkit serve` does before it listens: open the indexes, load the models, warm up.

Models and indexes load once, here, so that a question costs an answer and not a cold start
(`ragkit ask` spends most of ~15 s per question loading jieba, the embedder, the index and the
model). The warm-up runs one English and one Chinese search per index, which loads the embedder,
the BM25 arrays and jieba's dictionary before the first request, so concurrent first requests do
not race to load them.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
from pathlib import Path

from .. import generate
from ..embed import default_backend, load_embedder
from ..errors import UsageError
from ..index import Index, IngestConfig
from ..models import DEFAULT_LLM_PREFERENCE
from .knowledge import KnowledgeBases

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def index_specs(specs: list[str]) -> dict[str, Path]:
    """`DIR` or `NAME=DIR` per --index, in order (the first is the default); names from the
    directory's name when not given; each name once."""
    if not specs:
        raise UsageError("give at least one --index DIR (or NAME=DIR)")
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep and "/" not in name and os.sep not in name:  # NAME=DIR: the name must be a good one
            if not NAME_RE.match(name):
                raise UsageError(f"index name '{name}' may hold only letters, digits, '.', '_' and '-' (from "
                                 f"--index '{spec}')")
        elif not sep or not NAME_RE.match(name):
            name, path = Path(spec).resolve().name or "index", spec
        if not NAME_RE.match(name):
            raise UsageError(f"index name '{name}' may hold only letters, digits, '.', '_' and '-'; "
                             "name it with --index NAME=DIR")
        if name in out:
            raise UsageError(f"two indexes are named '{name}'; name them with --index NAME=DIR")
        out[name] = Path(path)
    return out


def open_indexes(specs: dict[str, Path]) -> dict:
    """The indexes by name; a missing one is bad input (exit 2), like any path that does not exist."""
    for name, path in specs.items():
        if not Path(path).exists():
            raise UsageError(f"no index at {path} (--index {name}); build one with 'ragkit ingest PATH --index {path}'")
    return {name: Index.open(path) for name, path in specs.items()}


def bind_port(host: str, port: int):
    """The listening socket, bound now so that a taken port is one sentence and exit 2 before any
    model loads; uvicorn serves on it (its fd)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UsageError(f"cannot listen on '{host}': not an address or a known host name (--host)") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is already in use; stop what listens there or pick another "
                             "with --port") from None
        raise UsageError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    sock.set_inheritable(True)
    return sock


def open_knowledge_bases(data_dir: str | Path, reserved: set[str]):
    """(KnowledgeBases under data_dir, the IngestConfig their ingests use), with the embedder loaded
    once and shared by every knowledge base's searches and ingests."""

    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise UsageError(f"--data-dir {data_dir} exists and is not a folder")
    config = IngestConfig()
    backend = default_backend()
    embedder = load_embedder(config.embed_model, batch_size=config.embed_batch(backend), backend=backend)
    return KnowledgeBases(data_dir, embedder=embedder, reserved=reserved), config


def warm_up(indexes: dict) -> None:
    for index in indexes.values():
        for q in ("warranty", "保修期"):
            index.search(q, k=1)


def load_generators(model: str | None, backend: str | None, **kw) -> dict:
    """A generator per question language: the one --model for all, else each language's default
    model (models.default_llm, as `ragkit ask` picks)."""

    if model is not None or backend == "openai" or kw.get("base_url"):
        gen = generate.load_generator(model, backend, **kw)
        return {lang: gen for lang in DEFAULT_LLM_PREFERENCE}
    return {lang: generate.load_generator(None, backend, lang=lang, **kw) for lang in DEFAULT_LLM_PREFERENCE}


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """A warning when the server listens beyond this machine without an API key."""
    if api_key:
        return None
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return (f"Warning: listening on {host} without an API key: anyone who can reach this port can read the "
            "indexed documents and use the model. Set --api-key or RAGKIT_API_KEY.")
