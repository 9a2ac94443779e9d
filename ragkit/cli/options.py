"""Options whose default is a settings model's (ragkit.settings): one default, read when needed.

`setting("--max-tokens", of=EVAL)` gives `ragkit eval --max-tokens` the default of
`EvalConfig.max_tokens`. The model is imported only when a command parses its options or shows its
help, not when `ragkit --help` lists the commands: pydantic and numpy would add about 0.9 s to that
(0.25 s against 1.1 s measured on this machine, 2 shared cores).
"""

from __future__ import annotations

import importlib

import click

ANSWER = "ragkit.pipeline:AnswerSettings"
EVAL = "ragkit.eval.config:EvalConfig"
TRAIN = "ragkit.train.train:TrainOptions"
SFT_DATA = "ragkit.sftdata.qa:SFTDataConfig"
INGEST = "ragkit.index.ingesting:IngestConfig"
CHUNKING = "ragkit.ingest.chunking:ChunkingConfig"
RETRIEVAL = "ragkit.settings:RetrievalSettings"
UPLOADS = "ragkit.serve.limits:UploadLimits"
EMBED = "ragkit.settings:EmbedSettings"


class SettingDefault:
    """The default of field `name` of the model (or dataclass) at `target`, lists as 'a,b'."""

    def __init__(self, target: str, name: str):
        self.target, self.name = target, name

    def __call__(self):
        module, _, cls_name = self.target.partition(":")
        cls = getattr(importlib.import_module(module), cls_name)
        if hasattr(cls, "model_fields"):
            value = cls.model_fields[self.name].get_default(call_default_factory=True)
        else:
            from ..settings import dataclass_default

            value = dataclass_default(cls, self.name)
        return ",".join(value) if isinstance(value, (list, tuple)) else value


class SettingOption(click.Option):
    """Shows a SettingDefault's value in --help (click would print "(dynamic)")."""

    def get_default(self, ctx, call=True):
        value = super().get_default(ctx, call=False)
        return value() if isinstance(value, SettingDefault) else super().get_default(ctx, call=call)


def setting(*decls: str, of: str, name: str | None = None, **kw):
    """A click option whose default is field `name` (default: the option's own name) of `of`."""
    field = name or max(decls, key=len).lstrip("-").replace("-", "_")
    return click.option(*decls, cls=SettingOption, default=SettingDefault(of, field), show_default=True, **kw)


class HelpDefaults(click.Option):
    """An option whose help names defaults that live elsewhere (a model's quirk, a calibrated
    threshold): `help` is a template, filled by `values()` only when the help is shown."""

    def __init__(self, *decls, values, **kw):
        self.values = values
        super().__init__(*decls, **kw)

    def get_help_record(self, ctx):
        template = self.help
        self.help = template.format(**self.values())
        try:
            return super().get_help_record(ctx)
        finally:
            self.help = template


def help_defaults(*decls: str, values, **kw):
    """A click option whose help is filled in from `values()` when shown (HelpDefaults)."""
    return click.option(*decls, cls=HelpDefaults, values=values, **kw)


def embed_batches() -> dict:
    from ..settings import EMBED

    return {"cpu": EMBED.batch_size, "cuda": EMBED.cuda_batch_size}


def answer_defaults() -> dict:
    """The defaults `ask` and `serve` show in their help: context window, passages, refusal threshold."""
    from ..generate.base import DEFAULT_N_CTX
    from ..models import BUNDLED
    from ..pipeline import DEFAULT_MIN_SCORE

    fewer = [f"{m.max_passages} for {n}" for n, m in BUNDLED.items() if m.max_passages]
    return {"n_ctx": DEFAULT_N_CTX, "passages": "; ".join(["all k", *fewer]),
            "min_score": ", ".join(f"{v:.2f} {dict(en='English', zh='Chinese').get(lang, lang)}"
                                   for lang, v in DEFAULT_MIN_SCORE.items())}


def model_defaults() -> dict:
    """The default model per language, as help names it (models.DEFAULT_LLM_PREFERENCE)."""
    from ..models import DEFAULT_LLM_PREFERENCE

    firsts = {prefs[0] for prefs in DEFAULT_LLM_PREFERENCE.values()}
    first = firsts.pop() if len(firsts) == 1 else None
    rest = ", ".join(f"{prefs[-1]} for {lang}" for lang, prefs in DEFAULT_LLM_PREFERENCE.items())
    return {"default_model": f"{first} where installed, else {rest}" if first else rest}

