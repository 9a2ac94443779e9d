"""Settings are typed once (ragkit/settings.py): coercion, and one sentence naming the field for a bad value.

Driven through `ragkit run --check --set`, the way a user meets them, and through the Python API."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel

from ragkit.cli import main
from ragkit.errors import SettingsError
from ragkit.eval.config import EvalConfig
from ragkit.experiment.config import ExperimentConfig, load_experiment
from ragkit.sftdata.qa import SFTDataConfig
from ragkit.train.train import TrainConfig


def mini(tmp_path: Path) -> Path:
    (tmp_path / "corpus").mkdir(exist_ok=True)
    (tmp_path / "corpus" / "a.md").write_text("The X2 warranty is 24 months.\n")
    (tmp_path / "bench.jsonl").write_text(json.dumps(
        {"id": "1", "question": "How long is the X2 warranty?", "answers": ["24 months"], "sources": ["a.md"]}) + "\n")
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({"name": "mini", "corpus": "corpus", "bench": "bench.jsonl",
                                 "eval": {"arms": ["closed_book", "rag"]}}))
    return p


def check(p: Path, *sets: str):
    args = ["run", str(p), "--check"]
    for s in sets:
        args += ["--set", s]
    return CliRunner().invoke(main, args)


def one_sentence(result, exit_code: int = 2) -> str:
    assert result.exit_code == exit_code, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    out = result.output.strip()
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    return out


# The four overrides the issue reported, each with what they said before.
def test_the_four_reported_overrides(tmp_path):
    p = mini(tmp_path)
    # "--set eval.temperature=hot was accepted"
    assert one_sentence(check(p, "eval.temperature=hot")).endswith("eval.temperature: expected a number, got 'hot'")
    # "'<' not supported between instances of 'str' and 'int'"
    assert one_sentence(check(p, "eval.k=five")).endswith("eval.k: expected an integer, got 'five'")
    # "unknown arm(s) r, a, g": a comma-separated value is a list, so one arm is fine ...
    assert load_experiment(p, ["eval.arms=rag"]).eval.arms == ["rag"]
    assert load_experiment(p, ["eval.arms=closed_book,rag"]).eval.arms == ["closed_book", "rag"]
    # ... and a wrong arm is named whole.
    assert one_sentence(check(p, "eval.arms=rag,nope")).endswith(
        "eval.arms: unknown arm(s) nope; choose from closed_book, rag, sft, sft_rag, oracle, raft_rag")
    # "not e, n": the same for training languages.
    assert load_experiment(p, ["train.languages=en"]).train.languages == ["en"]
    assert one_sentence(check(p, "train.languages=en,fr")).endswith(
        "train.languages[1]: expected one of en or zh, got 'fr'")


def test_strings_are_coerced_where_a_command_line_writes_them(tmp_path):
    cfg = load_experiment(mini(tmp_path), ["eval.k='5'", "train.options.epochs='2'", "sft_data.options.tasks=direct,list"])
    assert cfg.eval.k == 5 and cfg.train.options.epochs == 2 and cfg.sft_data.options.tasks == ["direct", "list"]
    assert EvalConfig(bench="b", out="o", k="7", arms="closed_book").k == 7


def _wrong_value(annotation) -> str:
    """A `--set` value (YAML) of the wrong type for a field with this annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _wrong_value(args[0])
    if origin in (typing.Union, types.UnionType):
        if any(typing.get_origin(a) in (list, typing.Annotated) for a in args):
            return "{a: 1}"
        return _wrong_value(args[0])
    if origin is typing.Literal:
        return "nope"
    if origin is list:
        return "{a: 1}"
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return "x"
    return {bool: "maybe", int: "five", float: "hot", str: "[1, 2]"}[annotation]


def _fields():
    sections = {"": ExperimentConfig}
    for name in ("index", "sft_data", "train", "eval"):
        sections[name] = ExperimentConfig.model_fields[name].annotation
    sections["sft_data.options"] = SFTDataConfig
    sections["train.options"] = sections["train"].model_fields["options"].annotation
    for where, model in sections.items():
        for name, f in model.model_fields.items():
            if where == "" and name in sections:
                continue
            yield f"{where}.{name}".lstrip("."), f.annotation


@pytest.mark.parametrize("path, annotation", list(_fields()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_field_given_a_wrong_type_is_one_sentence(tmp_path, path, annotation):
    p = mini(tmp_path)
    value = _wrong_value(annotation)
    out = one_sentence(check(p, "train.enabled=true", f"{path}={value}") if path.startswith("train.options")
                       else check(p, f"{path}={value}"))
    assert out.startswith(f"Error: {p}: {path}"), out
    with pytest.raises(SettingsError) as e:
        load_experiment(p, [f"{path}={value}"])
    assert "\n" not in str(e.value) and path in str(e.value)


def test_python_api_errors_are_one_sentence_and_value_errors():
    with pytest.raises(ValueError, match=r"^k: expected an integer, got 'five'$"):
        EvalConfig(bench="b", out="o", k="five", arms="closed_book")
    with pytest.raises(ValueError, match=r"^epochs: expected an integer"):
        TrainConfig(data="d", base="b", out="o", epochs="two")
    with pytest.raises(ValueError, match=r"^nope: unknown setting; known: "):
        SFTDataConfig(nope=1)


def test_one_default_for_eval_and_run():
    from ragkit.eval.config import EvalSettings

    def defaults_of(name):
        cmd = main.commands[name]
        ctx = click.Context(cmd)
        return {p.name: p.get_default(ctx) for p in cmd.params}

    defaults = defaults_of("eval")
    assert defaults["max_tokens"] == EvalSettings().max_tokens == EvalConfig(bench="b", out="o", arms="closed_book").max_tokens
    assert defaults["k"] == EvalSettings().k and defaults["arms"] == ",".join(EvalSettings().arms)
    train = defaults_of("train")
    assert train["epochs"] == TrainConfig(data="d", base="b", out="o").epochs
    assert train["lr"] == TrainConfig(data="d", base="b", out="o").lr
    assert train["target_modules"] == "q_proj,v_proj" and train["share_prefix"] is True
    assert defaults_of("ingest")["chunk_size"] == 200 and defaults_of("build-sft-data")["tasks"] == "direct,explain,list"


def test_help_shows_the_models_defaults_and_the_command_list_does_not_import_them():
    import subprocess
    import sys

    out = CliRunner().invoke(main, ["eval", "--help"], terminal_width=200).output
    assert "[default: 48]" in out and "[default: closed_book,rag,sft,sft_rag]" in out
    code = ("import sys; from click.testing import CliRunner; from ragkit.cli import main; "
            "CliRunner().invoke(main, ['--help']); print('pydantic' in sys.modules, 'numpy' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == ["False", "False"]
