"""Typed settings: one pydantic model per command, validated once, with one-sentence errors.

Each command's settings are one model (`EvalConfig`, `TrainConfig`, `SFTDataConfig`, the
experiment's sections): the model's field defaults are the only defaults, read by the CLI options
(`default_of`), by the experiment files (pipelines/*.yaml) and by the Python API alike. Values are
coerced the way a command line or a YAML file writes them ("5" → 5, "rag,sft" → [rag, sft]), and a
bad one is reported as one sentence that names the field path:

    eval.k: expected an integer, got 'five'

Why pydantic rather than dataclasses with hand-written checks: before this module, `--set
eval.k=five` surfaced as "'<' not supported between instances of 'str' and 'int'", `--set
eval.arms=rag` iterated the string ("unknown arm(s) r, a, g") and `--set eval.temperature=hot`
was accepted. Cross-field checks stay in plain code (`model_validator(mode="after")`) where they
read better.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .errors import SettingsError

__all__ = ["EMBED", "RETRIEVAL", "SEARCH_MODES", "EmbedSettings", "CommaList", "RetrievalSettings", "SearchMode", "Settings", "dataclass_default",
           "default_of", "describe", "sentence", "split_commas"]


def split_commas(value: Any) -> Any:
    """'rag,sft' → ['rag', 'sft'] (a command line or `--set` writes lists this way); lists pass."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, tuple):
        return list(value)
    return value


CommaList = Annotated[list[str], BeforeValidator(split_commas)]

_EXPECTED = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "a whole number",
    "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
    "bool_type": "true or false", "string_type": "a string", "list_type": "a list", "tuple_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


def _is_tag(part: str) -> bool:
    """pydantic puts union members and validator names in an error's location: not field names."""
    return part in ("str", "int", "float", "bool", "list", "dict", "[key]") or "[" in part or part.startswith(
        ("function-", "lax-or-strict"))


def _path(loc: tuple, where: str) -> str:
    parts = [where] if where else []
    for p in loc:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        elif not _is_tag(str(p)):
            parts.append(str(p))
    return ".".join(parts)


def describe(error: dict, where: str = "", model: type[BaseModel] | None = None) -> str:
    """One pydantic error as 'path: what was expected, got what'."""
    path = _path(error.get("loc", ()), where) or where or "settings"
    kind, got = error.get("type", ""), error.get("input")
    ctx = error.get("ctx") or {}
    if kind in _EXPECTED:
        return f"{path}: expected {_EXPECTED[kind]}, got {got!r}"
    if kind == "literal_error":
        choices = ctx.get("expected", "").replace("'", "")
        return f"{path}: expected one of {choices}, got {got!r}"
    if kind == "extra_forbidden":
        known = ""
        if model is not None:
            section = model
            for p in error.get("loc", ())[:-1]:
                f = section.model_fields.get(str(p)) if isinstance(section, type) else None
                ann = getattr(f, "annotation", None)
                section = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
                if section is None:
                    break
            if section is not None:
                known = "; known: " + ", ".join(sorted(section.model_fields))
        return f"{path}: unknown setting{known}"
    if kind == "missing":
        return f"{path}: required, but not given"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": ("at least", "ge"), "greater_than": ("more than", "gt"),
                 "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}[kind]
        return f"{path}: must be {bound[0]} {ctx.get(bound[1])}, got {got!r}"
    msg = str(error.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f"{path}: {msg}" if path != "settings" else msg


def sentence(exc: ValidationError, where: str = "", model: type[BaseModel] | None = None) -> str:
    """The first problem of a ValidationError as one sentence (the others are counted, not listed).

    A union (`list[str] | str`) fails once per member at the same path: those read as one
    expectation, "expected a list or a string"."""
    errors = exc.errors(include_url=False)
    path = _path(errors[0].get("loc", ()), where)
    same = [e for e in errors if _path(e.get("loc", ()), where) == path]
    others = len(errors) - len(same)
    if len(same) > 1 and all(e.get("type") in _EXPECTED for e in same):
        wanted = list(dict.fromkeys(_EXPECTED[e["type"]] for e in same))
        first = f"{path}: expected {' or '.join(wanted)}, got {same[0].get('input')!r}"
    else:
        first = describe(errors[0], where, model)
        others = len(errors) - 1
    return first + (f" (and {others} more problem(s))" if others else "")


def first_path(exc: ValidationError, where: str = "") -> str:
    errors = exc.errors(include_url=False)
    return _path(errors[0].get("loc", ()), where) if errors else where


class Settings(BaseModel):
    """Base of every settings model: unknown names are errors, and a failed validation raises
    SettingsError (a UsageError and a ValueError) with one sentence instead of pydantic's block."""

    model_config = ConfigDict(extra="forbid", validate_default=False, protected_namespaces=())

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise SettingsError(sentence(e, model=type(self)), first_path(e)) from None

    # Tell pydantic this __init__ only wraps its own: nested models are then validated directly
    # (their errors keep the full field path) instead of through this method.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def check(cls, data: dict | None, where: str = ""):
        """Build from a mapping (a YAML section), naming problems with `where` as the path prefix."""
        try:
            return cls.__pydantic_validator__.validate_python(dict(data or {}))  # not through __init__
        except ValidationError as e:
            raise SettingsError(sentence(e, where, model=cls), first_path(e, where)) from None


SearchMode = Literal["dense", "bm25", "hybrid"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)


class RetrievalSettings(Settings):
    """How many chunks a question retrieves, and how: the one home of k and the search mode for
    `ask`, `search`, `serve`, `eval` (EvalSettings extends it), Pipeline and the LangChain retriever."""

    k: int = Field(default=5, ge=1)
    mode: SearchMode = "hybrid"


RETRIEVAL = RetrievalSettings()  # the defaults, for signatures that take plain arguments


class EmbedSettings(Settings):
    """Texts per embedding batch: the one home of the batch sizes (IngestConfig, the embedders and
    `ragkit ingest --batch-size` read them). On CUDA, larger batches keep the GPU busy."""

    batch_size: int = Field(default=64, ge=1)
    cuda_batch_size: int = Field(default=512, ge=1)


EMBED = EmbedSettings()


def default_of(model: type[BaseModel], name: str):
    """The default of one field: CLI options take theirs from here, so there is one default."""
    f = model.model_fields[name]
    return f.get_default(call_default_factory=True)


def dataclass_default(cls, name: str):
    """The default of a dataclass field (IngestConfig, ChunkingConfig), for a model or option that
    exposes it without repeating the number."""
    f = cls.__dataclass_fields__[name]
    return f.default_factory() if callable(f.default_factory) else f.default
