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
TRAIN = "ragkit.sft.train:TrainOptions"
SFT_DATA = "ragkit.sft.qa:SFTDataConfig"
INGEST = "ragkit.index.build:IngestConfig"
CHUNKING = "ragkit.ingest.chunking:ChunkingConfig"


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
