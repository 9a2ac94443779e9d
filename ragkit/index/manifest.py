"""The index manifest and the CURRENT pointer, read as untrusted input.

An index directory may be damaged (a disk filled up, a file truncated by a copy) or crafted (a
shared or downloaded index). Everything read from it is checked here before it is used: CURRENT
must name a version directory directly inside the index (no absolute or `../` path, no symlink
out), the manifest must match the schema below, and every artifact must have the size the
manifest recorded when it was written (a stat per file: a truncated dense.faiss is named as such
instead of surfacing as a FAISS traceback). Each kind of damage is one sentence, raised as
IndexDamaged.

A local embedding model directory is recorded by its absolute path and a content fingerprint
(sha256 over file names, sizes and contents: 0.18-0.24 s for all-MiniLM-L6-v2's 88 MB on the
2-core dev machine, paid when an index opens, never per query), so an index
never loads whatever `./model` happens to exist in the current directory, nor a changed model.
A bundled model whose weights ragkit pins by SHA-256 (multilingual-e5-small, embed/e5.py) is
recorded with that pin as `weights_sha256`, and an index made with other weights is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict
from pathlib import Path

from .. import __version__
from ..embed import is_registered, pinned_weights
from ..errors import IndexDamaged, IndexIncompatible
from ..models import BUNDLED, model_info
from .fusion import FusionWeights, default_fusion

FORMAT_VERSION = 1
DENSE_TYPES = ("flat", "hnsw", "ivf")
EMBED_BACKENDS = ("torch", "onnx", "onnx-int8", None)
VERSION_NAME = re.compile(r"^v-[A-Za-z0-9_.-]{1,120}$")
# Artifacts an ingest writes into a version; bm25/ is recorded file by file.
ARTIFACTS = ("chunks.sqlite", "embeddings.npy", "dense.faiss")


def damaged(directory: Path, what: str, remedy: str = "re-run 'ragkit ingest' to rebuild it") -> IndexDamaged:
    return IndexDamaged(f"index {directory} is damaged: {what}; {remedy}")


def read_current(directory: Path) -> Path | None:
    """The live version directory, or None when the index has no CURRENT yet.

    Raises IndexDamaged when CURRENT names anything but a version directory inside `directory`.
    """
    marker = directory / "CURRENT"
    if not marker.is_file():
        return None
    try:
        name = marker.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise damaged(directory, "CURRENT is unreadable", "re-run 'ragkit ingest' into a new directory") from None
    if not VERSION_NAME.match(name):
        raise damaged(directory, f"CURRENT names {name[:80]!r}, which is not a version directory of this index",
                      "re-run 'ragkit ingest' into a new directory")
    version = directory / name
    if version.is_symlink() or not version.is_dir() or version.resolve().parent != directory.resolve():
        raise damaged(directory, f"CURRENT names {name!r}, which is missing or not a directory inside the index",
                      "re-run 'ragkit ingest' into a new directory")
    return version


def bad_manifest(directory: Path, problem: str) -> IndexDamaged:
    return damaged(directory, f"manifest.json {problem}", "re-run 'ragkit ingest' into a new directory")


def _expect(cond: bool, directory: Path, problem: str) -> None:
    if not cond:
        raise bad_manifest(directory, problem)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_embedding(emb, d: Path) -> None:
    _expect(isinstance(emb, dict), d, "has no 'embedding' object")
    _expect(isinstance(emb.get("model"), str) and emb["model"].strip() != "", d, "has no embedding model name")
    _expect(_is_int(emb.get("dim")) and 0 < emb["dim"] <= 65536, d, "has an invalid embedding dimension")
    langs = emb.get("languages")
    _expect(langs is None or (isinstance(langs, list) and all(isinstance(x, str) for x in langs)), d,
            "has invalid embedding languages")
    _expect(emb.get("backend") in EMBED_BACKENDS, d, f"names an unknown embedding backend {emb.get('backend')!r}")
    _expect(emb.get("weights_sha256") is None or (isinstance(emb["weights_sha256"], str) and re.fullmatch(
        r"[0-9a-f]{64}", emb["weights_sha256"]) is not None), d, "has an invalid embedding weights_sha256")
    if "path" in emb or "fingerprint" in emb:
        _expect(isinstance(emb.get("path"), str) and os.path.isabs(emb["path"]), d,
                "records a local embedding model without an absolute path")
        _expect(isinstance(emb.get("fingerprint"), str) and re.fullmatch(r"[0-9a-f]{64}", emb["fingerprint"]) is not None,
                d, "records a local embedding model without a fingerprint")


def _check_files(files, d: Path) -> None:
    _expect(isinstance(files, dict), d, "has no 'files' object")
    for source, info in files.items():
        _expect(isinstance(info, dict) and isinstance(info.get("sha256"), str), d, f"has an invalid entry for {source!r}")
        for key in ("root", "path"):
            _expect(info.get(key) is None or isinstance(info[key], str), d, f"has an invalid {key} for {source!r}")


def _check_store(m: dict, d: Path) -> None:
    """`store` (absent: faiss) is a name; the registry (registry.py) knows whether it is a store, and
    the store checks its own keys (a Milvus index's `milvus` object: milvus/store.py)."""
    store = m.get("store", "faiss")
    _expect(isinstance(store, str) and re.fullmatch(r"[a-z][a-z0-9_]{0,31}", store) is not None, d,
            f"names an unknown store {str(store)[:40]!r}")


def _check_delta(m: dict, d: Path) -> None:
    """A delta version's `delta` object (delta.py writes it): the live count must add up."""
    if "delta" not in m:
        return
    dl = m["delta"]
    keys = ("base_chunks", "chunks", "tombstones", "files")
    _expect(isinstance(dl, dict) and all(_is_int(dl.get(k)) and dl[k] >= 0 for k in keys)
            and dl["tombstones"] <= dl["base_chunks"]
            and dl["base_chunks"] - dl["tombstones"] + dl["chunks"] == m["n_chunks"]
            and isinstance(dl.get("base_version", ""), str), d,
            "has an invalid 'delta' object (base_chunks - tombstones + chunks must equal n_chunks)")
    _expect(m.get("store", "faiss") == "faiss", d, "has a delta segment on a store other than faiss")


def validate_manifest(m, d: Path) -> dict:
    """The manifest if it matches the schema; IndexDamaged naming the first problem otherwise.

    Unknown top-level keys are allowed (a newer ragkit, or another store, may add some).
    """
    _expect(isinstance(m, dict), d, "is not a JSON object")
    if m.get("format") != FORMAT_VERSION:
        raise IndexIncompatible(f"index {d} has format {m.get('format')!r}, this ragkit reads {FORMAT_VERSION}; re-ingest it")
    _check_embedding(m.get("embedding"), d)
    ch = m.get("chunking")
    _expect(isinstance(ch, dict) and _is_int(ch.get("chunk_size")) and _is_int(ch.get("chunk_overlap")), d,
            "has no valid 'chunking' settings")
    _expect(m.get("dense_index") in DENSE_TYPES, d, f"names an unknown dense index {m.get('dense_index')!r}")
    _expect(_is_int(m.get("n_chunks")) and m["n_chunks"] >= 0, d, "has an invalid chunk count")
    fusion = m.get("fusion", {})
    _expect(isinstance(fusion, dict) and set(fusion) <= {"dense", "dense_foreign"}
            and all(_is_num(v) and 0.0 <= v <= 1.0 for v in fusion.values()), d,
            "has invalid fusion weights (only 'dense' and 'dense_foreign', each in [0, 1])")
    _check_files(m.get("files"), d)
    roots = m.get("roots", {})
    _expect(isinstance(roots, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in roots.items()), d,
            "has an invalid 'roots' object")
    _check_store(m, d)
    _check_delta(m, d)
    arts = m.get("artifacts", {})
    _expect(isinstance(arts, dict) and all(isinstance(k, str) and _is_int(v) for k, v in arts.items()), d,
            "has an invalid 'artifacts' object")
    return m


def read_manifest(version_dir: Path) -> dict:
    directory = version_dir.parent
    path = version_dir / "manifest.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise bad_manifest(directory, f"is missing from {version_dir.name}") from None
    except OSError as e:
        raise bad_manifest(directory, f"is unreadable ({e.strerror or e})") from None
    try:
        m = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad_manifest(directory, "is not valid JSON (truncated?)") from None
    return validate_manifest(m, directory)


def artifact_sizes(version_dir: Path) -> dict[str, int]:
    """Sizes of every file of a version but the manifest, by relative path."""
    out = {}
    for f in sorted(version_dir.rglob("*")):
        rel = f.relative_to(version_dir).as_posix()
        if f.is_file() and rel != "manifest.json" and not rel.startswith("."):
            out[rel] = f.stat().st_size
    return out


def check_artifacts(version_dir: Path, manifest: dict, names: tuple[str, ...] | None = None) -> None:
    """IndexDamaged when an artifact is missing or has another size than when it was written."""
    directory = version_dir.parent
    recorded = manifest.get("artifacts") or {}
    wanted = names if names is not None else tuple(recorded) or ARTIFACTS
    for rel in wanted:
        for name in [r for r in recorded if r == rel or r.startswith(rel + "/")] or [rel]:
            f = version_dir / name
            try:
                size = os.stat(f).st_size
            except OSError:
                raise damaged(directory, f"{name} is missing") from None
            if name in recorded and size != recorded[name]:
                raise damaged(directory, f"{name} is truncated or altered ({size} bytes, {recorded[name]} written)")


def fingerprint(model_dir: Path) -> str:
    """sha256 over the relative names, sizes and contents of every file in a model directory."""
    h = hashlib.sha256()
    for f in sorted(model_dir.rglob("*")):
        if not f.is_file() or any(p.startswith(".") for p in f.relative_to(model_dir).parts):
            continue
        h.update(f"{f.relative_to(model_dir).as_posix()}\0{f.stat().st_size}\0".encode())
        with f.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def local_model_dir(name_or_path: str) -> Path | None:
    """The absolute directory when `name_or_path` names a local model directory (not a bundled name)."""
    if name_or_path.lower() in BUNDLED:
        return None
    p = Path(name_or_path).expanduser()
    return p.resolve() if p.is_dir() else None


def embedder_source(manifest: dict, directory: Path) -> str:
    """What to load the index's embedder from: a bundled or registered name, or a checked local path."""
    emb = manifest["embedding"]
    if "path" in emb:
        p = Path(emb["path"])
        if not p.is_dir():
            raise IndexIncompatible(
                f"index {directory} was embedded with the local model {p}, which no longer exists; "
                "restore it there or re-ingest into a new index")
        if not (p / "config.json").is_file() and not (p / "modules.json").is_file():
            raise damaged(directory, f"its embedding model path {p} is not a model directory",
                          "re-run 'ragkit ingest' into a new directory")
        if fingerprint(p) != emb["fingerprint"]:
            raise IndexIncompatible(
                f"the local embedding model {p} changed since index {directory} was built; "
                "restore the original files or re-ingest into a new index")
        return str(p)
    name = emb["model"]
    if emb.get("weights_sha256") and not is_registered(name):
        pin = pinned_weights(name)
        if pin is not None and pin != emb["weights_sha256"]:
            raise IndexIncompatible(
                f"index {directory} was embedded with other {name} weights (SHA-256 {emb['weights_sha256'][:12]}…) "
                f"than this ragkit pins ({pin[:12]}…); re-ingest it into a new index")
    if is_registered(name) or name.lower() in BUNDLED:
        return name
    raise IndexIncompatible(
        f"index {directory} names the embedding model {name[:80]!r}, which is neither bundled nor recorded "
        "with its path (an index from an older ragkit?); re-ingest it with --embed-model PATH")


def embedding_entry(embedder, embed_model: str, old: dict | None) -> dict:
    """The manifest's `embedding`: the model, its dimension and languages, the backend, and for a
    local model directory its absolute path and content fingerprint (never its basename)."""
    info = model_info(embedder.name)
    entry = {
        "model": embedder.name,
        "dim": embedder.dim,
        "languages": list(info.languages) if info else None,
        "backend": getattr(embedder, "backend", None),
    }
    local = local_model_dir(embed_model) if not is_registered(embed_model) else None
    if old and old["embedding"].get("path"):
        entry["path"], entry["fingerprint"] = old["embedding"]["path"], old["embedding"]["fingerprint"]
    elif local is not None:
        entry["path"], entry["fingerprint"] = str(local), fingerprint(local)
    if getattr(embedder, "weights_sha256", None):  # a bundled model whose weights ragkit pins (embed/e5.py)
        entry["weights_sha256"] = embedder.weights_sha256
    return entry


def fusion_entry(model: str) -> dict:
    """A new index's `fusion`: empty for the defaults, else the embedder's own weights (fusion.py)."""
    weights = default_fusion(model)
    return {} if weights == FusionWeights() else asdict(weights)


def new_manifest(embedder, config, old: dict | None, n_chunks: int, roots: dict, files: dict) -> dict:
    """The manifest of a version about to be written (every store; a store adds its own keys)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return {
        "format": FORMAT_VERSION,
        "ragkit_version": __version__,
        "created": (old.get("created") or now) if old else now,
        "updated": now,
        "embedding": embedding_entry(embedder, config.embed_model, old),
        "chunking": {**asdict(config.chunking), "unit": f"tokens of {embedder.name}"},
        "dense_index": config.dense_index,
        "fusion": old.get("fusion", {}) if old else fusion_entry(embedder.name),
        "n_chunks": n_chunks,
        "roots": roots,
        "files": files,
    }
