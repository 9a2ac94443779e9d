"""Each default has one home: a test that fails when a known default's number is written twice.

The homes: k and the search mode in settings.RetrievalSettings, the embedding batch sizes in
settings.EmbedSettings, the context window in generate/base.py (DEFAULT_N_CTX), the refusal
thresholds in pipeline.py (DEFAULT_MIN_SCORE). Everything else, CLI help included, reads them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ragkit

ROOT = Path(ragkit.__file__).parent
# (names a default is bound to, its value): a binding is a parameter default, a field or a module
# constant of one of these names with this number, or a pydantic Field(default=number) of them.
KNOWN = {
    "k": ({"k", "context_k"}, 5),
    "context window": ({"n_ctx", "DEFAULT_N_CTX", "context_length"}, 4096),
    "embedding batch": ({"batch_size"}, 64),
    "CUDA embedding batch": ({"batch_size", "cuda_batch_size"}, 512),
}
THRESHOLDS = (0.20, 0.15)  # DEFAULT_MIN_SCORE's, English and Chinese, in any module about min_score
HELP_NUMBERS = ("4096", "0.20", "0.15", "512")  # what --help showed as literal text before


def bindings(tree: ast.AST):
    """(name, number) for every default-like binding of a number in a module."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            positional = args.posonlyargs + args.args
            for a, d in zip(positional[len(positional) - len(args.defaults):], args.defaults):
                yield a.arg, number(d)
            for a, d in zip(args.kwonlyargs, args.kw_defaults):
                if d is not None:
                    yield a.arg, number(d)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            yield node.target.id, number(node.value)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    yield t.id, number(node.value)


def number(node: ast.AST):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Field":
        for kw in node.keywords:
            if kw.arg == "default":
                return number(kw.value)
    return None


def modules():
    for path in sorted(ROOT.rglob("*.py")):
        yield path.relative_to(ROOT.parent), ast.parse(path.read_text(encoding="utf-8"))


def test_each_known_default_is_written_once():
    found = {what: [] for what in KNOWN}
    floats = {t: [] for t in THRESHOLDS}
    for path, tree in modules():
        for name, value in bindings(tree):
            for what, (names, want) in KNOWN.items():
                if name in names and value == want:
                    found[what].append(f"{path}: {name} = {value}")
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
            {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
        if not names & {"min_score", "DEFAULT_MIN_SCORE"} and path.parts[1] != "cli":
            continue  # 0.2 is other things elsewhere (a fusion weight, a delay)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, float) and node.value in floats:
                floats[node.value].append(f"{path}:{node.lineno}")
    twice = {what: where for what, where in {**found, **floats}.items() if len(where) != 1}
    assert not twice, f"defaults written other than once: {twice}"


def test_cli_help_reads_defaults_rather_than_repeating_them():
    repeated = []
    for path, tree in modules():
        if path.parts[1] != "cli":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                repeated += [f"{path}:{node.lineno} says {n}" for n in HELP_NUMBERS if n in node.value.split()
                             or f"{n}]" in node.value or f"{n};" in node.value or f"{n}," in node.value]
    assert not repeated, repeated


def test_the_help_shows_the_numbers_from_their_homes():
    from click.testing import CliRunner

    from ragkit.cli import main
    from ragkit.generate.base import DEFAULT_N_CTX
    from ragkit.pipeline import DEFAULT_MIN_SCORE
    from ragkit.settings import EMBED, RETRIEVAL

    ask = CliRunner().invoke(main, ["ask", "--help"], terminal_width=400).output
    assert f"[default: {DEFAULT_N_CTX}]" in ask and f"{DEFAULT_MIN_SCORE['zh']:.2f} Chinese" in ask
    assert f"[default: {RETRIEVAL.k}]" in ask
    ingest = CliRunner().invoke(main, ["ingest", "--help"], terminal_width=400).output
    assert f"[default: {EMBED.batch_size}; {EMBED.cuda_batch_size} when" in ingest
