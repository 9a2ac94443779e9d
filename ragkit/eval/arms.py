"""The eval arms, as data: one `Arm` per arm in one table (ARMS), read by the runner, the experiment
config, sweeps and reports.

Arms differ in the knowledge source only; the bench, prompts, decoding and k are shared:

    closed_book  base model, no retrieval        sft      tuned model, no retrieval
    rag          base model + retrieval          sft_rag  tuned model + retrieval
    oracle       base model given the gold source's chunks (ragkit.eval.passages): rag's ceiling
    raft_rag     base model + an adapter trained on RAFT data (build-sft-data --recipe raft) + retrieval

A tuned arm names the recipe of its adapter's data (`recipe`: qa for the sft arms, raft for
raft_rag); report.md shows it beside the adapter each language ran with (`tuned_arms`).

Adding an arm is one entry in ARMS and, where no existing one fits, its plan function: which
(model, adapter, backend) answers it in a language (None: no model, the arm is skipped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RagkitError, UsageError
from ..generate import resolved_backend
from ..train.export import adapter_meta, gguf_adapter_info
from ..train.export import resolve_adapter as adapter_kind

if TYPE_CHECKING:  # config.py validates arm names against ARMS
    from .config import EvalConfig

Spec = tuple  # (model, adapter, backend) that answers an arm in one language


def resolve_adapter(model: str | None, adapter: str, backend: str | None) -> tuple[str | None, str, str | None]:
    """(base model, adapter, backend) for a tuned arm.

    An adapter only fits the model it was trained on, so the base it records (ragkit_adapter.json
    of a `ragkit train` directory, or the ragkit.base key of an exported GGUF adapter) wins over
    the eval's base model. A PEFT directory runs on the hf backend, a GGUF adapter on llama.cpp.
    """
    kind, path = adapter_kind(adapter)
    if kind == "peft":
        if backend not in (None, "hf"):
            raise UsageError(f"{adapter} is a PEFT adapter, which the {backend} backend cannot load; "
                             "export it with 'ragkit export-gguf' or use --backend hf")
        return adapter_meta(path).get("base") or model, str(path), "hf"
    if backend not in (None, "llamacpp"):
        raise UsageError(f"{adapter} is a GGUF adapter, which only the llamacpp backend loads")
    return gguf_adapter_info(path).get("base") or model, str(path), "llamacpp"


def plan_base(config: EvalConfig, lang: str) -> Spec | None:
    """The base model of the language (named, or the bundled default)."""
    return config.base_model(lang), None, config.backend


def plan_tuned(config: EvalConfig, lang: str) -> Spec | None:
    """The tuned model of the language: a merged model, or its base with the adapter; None: none given."""
    tuned = config.tuned_model(lang)
    if tuned is None:
        return None
    model, adapter = tuned
    return resolve_adapter(model, adapter, config.backend) if adapter else (model, None, config.backend)


def plan_raft(config: EvalConfig, lang: str) -> Spec | None:
    """The base model of the language with its RAFT adapter; None: none given."""
    adapter = config.raft_adapters.get(lang) or config.raft_adapters.get("*")
    return resolve_adapter(config.base_model(lang), adapter, config.backend) if adapter else None


@dataclass(frozen=True)
class Arm:
    name: str
    label: str  # how reports and charts name it
    retrieves: bool  # searches the index for every question (else closed-book, unless given passages)
    tuned: bool  # answers with the tuned model: an adapter or a merged model (needs training)
    passages: str | None  # what it is given instead of retrieving: "gold" (the oracle's chunks), or None
    plan: Callable[[EvalConfig, str], Spec | None]
    default: bool = True  # run when the arms are not named
    untuned: str | None = None  # the arm that differs only in the model: forgetting compares the two
    skip_reason: str = "no model"  # the report's note when `plan` finds no model in any language
    recipe: str | None = None  # a tuned arm: the recipe of its adapter's data (build-sft-data --recipe)

    @property
    def reads_index(self) -> bool:
        return self.retrieves or self.passages == "gold"

    @property
    def base_only(self) -> bool:
        """Its answers depend on the base model and the eval settings only (sweeps share them)."""
        return not (self.tuned or self.reads_index)


NO_TUNED = "no tuned model: pass --adapter DIR (or --tuned-model) to run it"
NO_RAFT = "no RAFT adapter: pass --raft-adapter DIR (trained on build-sft-data --recipe raft) to run it"

ARMS: dict[str, Arm] = {a.name: a for a in (
    Arm("closed_book", "closed-book", retrieves=False, tuned=False, passages=None, plan=plan_base),
    Arm("rag", "RAG", retrieves=True, tuned=False, passages=None, plan=plan_base),
    Arm("sft", "SFT", retrieves=False, tuned=True, passages=None, plan=plan_tuned, untuned="closed_book",
        skip_reason=NO_TUNED, recipe="qa"),
    Arm("sft_rag", "SFT + RAG", retrieves=True, tuned=True, passages=None, plan=plan_tuned, untuned="rag",
        skip_reason=NO_TUNED, recipe="qa"),
    # not run by default: it costs a pass of the base model; name it in --arms / eval.arms
    Arm("oracle", "oracle", retrieves=False, tuned=False, passages="gold", plan=plan_base, default=False),
    # not run by default: it needs a second adapter (docs/raft.md)
    Arm("raft_rag", "RAFT + RAG", retrieves=True, tuned=True, passages=None, plan=plan_raft, default=False,
        untuned="rag", skip_reason=NO_RAFT, recipe="raft"),
)}
DEFAULT_ARMS = tuple(a.name for a in ARMS.values() if a.default)


def arms_where(test: Callable[[Arm], bool]) -> tuple[str, ...]:
    """Names of the arms that pass `test`, in table order: arms_where(lambda a: a.tuned)."""
    return tuple(a.name for a in ARMS.values() if test(a))


def forgetting_pairs() -> tuple[tuple[str, str], ...]:
    """(tuned arm, its untuned twin): what the general bench compares."""
    return tuple((a.name, a.untuned) for a in ARMS.values() if a.untuned)


def tuned_arms(plan: dict) -> dict:
    """{tuned arm: {recipe, adapters: {lang: adapter, or the merged model}}}: what report.md shows."""
    return {arm: {"recipe": ARMS[arm].recipe, "adapters": {lang: adapter or model
                                                           for lang, (model, adapter, _) in specs.items()}}
            for arm, specs in plan.items() if ARMS[arm].tuned}


def plan_arms(config: EvalConfig, arms: list[str], langs: dict[str, str]):
    """Which (model, adapter, backend) answers each arm in each language; arms with no model are
    skipped, and partial or mixed-backend plans get a note for the report."""
    skipped: dict[str, str] = {}
    notes: list[str] = []
    plan: dict[str, dict[str, Spec]] = {}  # arm -> lang -> (model, adapter, backend)
    for name in arms:
        arm = ARMS[name]
        specs = {lang: spec for lang in sorted(set(langs.values())) if (spec := arm.plan(config, lang)) is not None}
        if not specs:
            skipped[name] = arm.skip_reason
            continue
        missing = sorted(set(langs.values()) - set(specs))
        if missing:
            n = sum(1 for lang in langs.values() if lang in specs)
            notes.append(f"{name} ran on the {n} items in {', '.join(sorted(specs))} only; no tuned model "
                         f"for {', '.join(missing)}")
        plan[name] = specs
    backends = {arm: {backend_name(config, lang, s) for lang, s in specs.items()} for arm, specs in plan.items()}
    if len(set().union(*backends.values()) if backends else set()) > 1:
        notes.append("arms ran on different backends (" + "; ".join(
            f"{a}: {', '.join(sorted(bs))}" for a, bs in backends.items())
            + "): PEFT adapters run on hf in full precision while the base GGUF runs quantised on llama.cpp; "
            "for a like-for-like comparison use --backend hf for every arm or export the adapter to GGUF")
    return plan, skipped, notes


def backend_name(config: EvalConfig, lang: str, spec: Spec) -> str:
    """The backend an arm's generator runs on; "default" when the model cannot be resolved here."""
    model, _adapter, backend = spec
    try:
        return resolved_backend(model, backend, base_url=config.base_url, lang=lang)
    except RagkitError:
        return backend or "default"
