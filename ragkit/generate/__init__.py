"""Generators: pick a backend for a model name or path, load it once per process, list models.

    from ragkit.generate import load_generator, Decoding
    gen = load_generator("smollm2-135m")             # bundled GGUF on llama.cpp
    gen = load_generator(None, lang="zh")            # default model for Chinese (models.default_llm)
    gen = load_generator("./my-hf-dir", "hf", adapter="./lora")
    gen = load_generator(None, "openai", base_url="http://127.0.0.1:8000/v1")

Names resolve in this order: bundled models (ragkit.models), models configured in
``$RAGKIT_HOME/models.yaml``, local paths. Without a backend, a directory goes to `hf` and a file
to `llamacpp` (which insists on GGUF). A configured model looks like:

    my-qwen:                       # llamacpp or hf, by file type unless backend is given
      path: ~/models/qwen2.5-0.5b-instruct-q4_k_m.gguf
      prompt_style: chat
    team-server:                   # an OpenAI-compatible server
      base_url: http://gpu-box:8000/v1
      model: Qwen/Qwen2.5-7B-Instruct
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..errors import ModelNotFound, UsageError
from ..models import (
    BUNDLED,
    DEFAULT_LLM_PREFERENCE,
    default_llm,
    file_size,
    install_hint,
    ragkit_home,
    resolve_llm,
)
from .base import BACKENDS, PROMPT_STYLES, Decoding, Generator, GeneratorSpec
from .hf import HFGenerator
from .llamacpp import LlamaCppGenerator
from .openai import OpenAIGenerator

__all__ = ["Decoding", "Generator", "clear_cache", "configured_models", "list_models", "load_generator"]

_CACHE: dict[GeneratorSpec, Generator] = {}

def configured_models() -> dict[str, dict]:
    """Models named in $RAGKIT_HOME/models.yaml (empty when the file does not exist)."""
    path = ragkit_home() / "models.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UsageError(f"{path} must map model names to settings (path or base_url, backend, prompt_style)")
    for name, cfg in data.items():
        if not ("path" in cfg) ^ ("base_url" in cfg):
            raise UsageError(f"{path}: model '{name}' needs exactly one of 'path' or 'base_url'")
        unknown = set(cfg) - {"path", "base_url", "model", "backend", "prompt_style", "n_ctx", "description"}
        if unknown:
            raise UsageError(f"{path}: model '{name}' has unknown setting(s) {', '.join(sorted(unknown))}")
    return {str(k).lower(): v for k, v in data.items()}


class _Target(NamedTuple):
    backend: str
    model: str | None  # the name sent to a server (openai) or given by the user
    path: Path | None  # the local model file or directory (None for openai)
    base_url: str | None


def _locate(model: str | None, backend: str | None, base_url: str | None, lang: str, conf: dict | None) -> _Target:
    """Where a model lives and which backend runs it: models.yaml entry, bundled name or path."""
    if conf:
        backend = backend or conf.get("backend")
        if "base_url" in conf:
            base_url, backend, model = base_url or conf["base_url"], "openai", conf.get("model")
    if base_url and backend in (None, "openai"):
        backend = "openai"
    if backend == "openai":
        if not base_url:
            raise UsageError("the openai backend needs --base-url, e.g. http://127.0.0.1:8000/v1")
        return _Target("openai", model, None, base_url)
    if model is None:
        model = default_llm(lang)
        if model is None:
            raise UsageError(f"no default model for language '{lang}'; pass --model")
    if conf and "path" in conf:
        path = Path(conf["path"]).expanduser()
        if not path.exists():
            raise ModelNotFound(f"configured model '{model}' points at {path}, which does not exist")
    else:
        model, path = resolve_llm(model)
    return _Target(backend or ("hf" if path.is_dir() else "llamacpp"), model, path, None)


def resolved_backend(model: str | None, backend: str | None = None, *, base_url: str | None = None,
                     lang: str = "en") -> str:
    """The backend `load_generator` would pick for these arguments, without loading anything
    (eval reports it per arm, also for items it reuses from an earlier run)."""
    conf = configured_models().get(model.lower()) if model else None
    return _locate(model, backend, base_url, lang, conf).backend


def load_generator(
    model: str | None,
    backend: str | None = None,
    *,
    adapter: str | None = None,
    base_url: str | None = None,
    lang: str = "en",
    n_ctx: int | None = None,
    prompt_style: str | None = None,
    api_key: str | None = None,
) -> Generator:
    """A ready generator, loaded once per distinct set of arguments within the process.

    `model=None` picks the default for `lang` (models.default_llm). `prompt_style` overrides the
    style read from the model (chat template present → chat, else few-shot).
    """
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if prompt_style is not None and prompt_style not in PROMPT_STYLES:
        raise UsageError(f"unknown prompt style '{prompt_style}'; choose chat or fewshot")
    if n_ctx is not None and n_ctx < 64:
        raise UsageError("--n-ctx must be at least 64 tokens")
    conf = configured_models().get(model.lower()) if model else None
    if conf:
        prompt_style = prompt_style or conf.get("prompt_style")
        n_ctx = n_ctx or conf.get("n_ctx")
    backend, name, path, base_url = _locate(model, backend, base_url, lang, conf)
    if backend == "llamacpp" and path.is_dir():
        raise ModelNotFound(f"{path} is a directory; the llamacpp backend needs a .gguf file (or use --backend hf)")
    info = BUNDLED.get(name) if name else None
    local = backend != "openai"  # a server's model keeps the server's own style and all k passages
    spec = GeneratorSpec(backend, name, path=path, base_url=base_url, api_key=api_key, adapter=adapter, n_ctx=n_ctx,
                         prompt_style=prompt_style or (info.prompt_style if info and local else None),
                         max_passages=info.max_passages if info and local else None)
    if spec not in _CACHE:
        _CACHE[spec] = LOADERS[backend](spec)
    return _CACHE[spec]


def _llamacpp(spec: GeneratorSpec) -> Generator:
    return LlamaCppGenerator(spec.path, spec.name, n_ctx=spec.n_ctx, prompt_style=spec.prompt_style,
                             adapter=spec.adapter, max_passages=spec.max_passages)


def _hf(spec: GeneratorSpec) -> Generator:
    return HFGenerator(spec.path, spec.name, n_ctx=spec.n_ctx, prompt_style=spec.prompt_style, adapter=spec.adapter,
                       max_passages=spec.max_passages)


def _openai(spec: GeneratorSpec) -> Generator:
    return OpenAIGenerator(spec.base_url, spec.name, api_key=spec.api_key, prompt_style=spec.prompt_style,
                           n_ctx=spec.n_ctx, max_passages=spec.max_passages)


# The backends by name: load_generator looks the backend up here (a new one is one line and its loader).
LOADERS: dict[str, Callable[[GeneratorSpec], Generator]] = {"llamacpp": _llamacpp, "hf": _hf, "openai": _openai}


def clear_cache() -> None:
    """Forget loaded generators (tests; freeing memory between eval arms)."""
    _CACHE.clear()


def list_models() -> list[dict]:
    """Every bundled and configured model with its path, size, prompt style and install state."""
    rows = []
    defaults = {lang: default_llm(lang) for lang in DEFAULT_LLM_PREFERENCE}
    for name, info in BUNDLED.items():
        installed, path, size = info.status()
        note = f"{info.assembly} on first use" if info.assembly and installed and not path else None
        rows.append({
            "name": name, "kind": info.kind, "source": "bundled", "package": info.package,
            "backend": "llamacpp" if info.kind == "llm" else "sentence-transformers",
            "path": str(path) if path else None, "size_bytes": size,
            "prompt_style": info.prompt_style, "languages": list(info.languages),
            "context_length": info.context_length, "installed": installed,
            "default_for": [lang for lang, m in defaults.items() if m == name],
            "licence": info.licence, "description": info.description, "note": note if installed else f"install with: {install_hint(info)}",
        })
    for name, cfg in configured_models().items():
        path = Path(cfg["path"]).expanduser() if "path" in cfg else None
        backend = cfg.get("backend") or ("openai" if path is None else "hf" if path.is_dir() else "llamacpp")
        rows.append({
            "name": name, "kind": "llm", "source": "configured", "package": None, "backend": backend,
            "path": str(path) if path else cfg["base_url"], "size_bytes": file_size(path) if path else None,
            "prompt_style": cfg.get("prompt_style"), "languages": [], "context_length": cfg.get("n_ctx"),
            "installed": path.exists() if path else None, "default_for": [],
            "description": cfg.get("description", ""), "note": None,
        })
    return rows

