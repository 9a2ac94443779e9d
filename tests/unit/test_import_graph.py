"""ragkit's own import graph: no cycles among module-level imports, and ragkit's own modules imported
at module level (a function-level import hides an edge from readers and from this check).

Run by `make lint` as well as `make test`. A ragkit module may be imported inside a function only
where it guards something heavy: the module itself imports a heavy package at its top (FastAPI,
LangChain), or the importer is a CLI command and the module is the library's (a command imports
the library when it runs, so that `ragkit --help` imports click, the CLI and ragkit.errors only).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import ragkit

ROOT = Path(ragkit.__file__).parent
# Packages imported only inside the functions that need them (the list, and the web and
# LangChain stacks): a ragkit module importing one at its top is itself imported lazily.
HEAVY = {"torch", "transformers", "faiss", "llama_cpp", "pymilvus", "milvus_lite", "fastapi", "starlette",
         "uvicorn", "sentence_transformers", "onnxruntime", "onnx", "ray", "peft", "accelerate",
         "langchain_core", "bm25s", "jieba", "matplotlib"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def resolve(importer: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The ragkit modules an import statement loads (a package's submodule when a name is one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "ragkit"]
    is_pkg = MODULES[importer].name == "__init__.py"
    base = importer.split(".")
    if node.level:
        base = base[: len(base) - node.level + (1 if is_pkg else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "ragkit":
        return []
    subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
    # `from pkg import submodule` needs the submodule, not pkg's own names: pkg may still be importing
    names = len(node.names) > len(subs) or isinstance(node, ast.Import)
    return ([target] if target in MODULES and names else []) + subs


def is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def top_level_imports(tree: ast.Module):
    """Import statements run when the module is imported (not under TYPE_CHECKING, not in a def)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and not is_type_checking(node):
            stack += node.body + node.orelse
        elif isinstance(node, ast.Try):
            stack += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]


def function_imports(tree: ast.Module):
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield fn, node


def third_party(tree: ast.Module) -> set[str]:
    """Top-level packages other than the standard library and ragkit that a module imports at its top."""
    out = set()
    for node in top_level_imports(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            ([node.module] if not node.level and node.module else [])
        out |= {n.split(".")[0] for n in names}
    return out - set(sys.stdlib_module_names) - {"ragkit", "__future__"}


def pulls() -> dict[str, set[str]]:
    """{module: third-party packages its import loads}, through ragkit's module-level imports."""
    edges = graph()
    own = {n: third_party(ast.parse(p.read_text(encoding="utf-8"))) for n, p in MODULES.items()}
    out = {}
    for name in MODULES:
        seen, todo = set(), [name]
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo += edges.get(m, ())
        out[name] = set().union(*(own[m] for m in seen))
    return out


def may_be_lazy(importer: str, target: str, loads: dict[str, set[str]]) -> bool:
    if loads[target] & HEAVY:
        return True
    return in_cli(importer) and not in_cli(target) and target not in CLI_LIGHT


def in_cli(module: str) -> bool:
    return module == "ragkit.cli" or module.startswith("ragkit.cli.")


# What `ragkit --help` may import of ragkit besides the CLI itself: the version and the error types.
CLI_LIGHT = {"ragkit", "ragkit.errors"}


def graph() -> dict[str, set[str]]:
    edges = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges[name] = {t for node in top_level_imports(tree) for t in resolve(name, node) if t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_ragkit_modules():
    found = cycles(graph())
    assert not found, "import cycles (module-level imports): " + "; ".join(" -> ".join(c) for c in found)


def test_ragkit_modules_are_imported_at_module_level():
    inside, loads = [], pulls()
    for name, path in sorted(MODULES.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn, node in function_imports(tree):
            for target in resolve(name, node):
                if not may_be_lazy(name, target, loads):
                    inside.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {fn.name} imports {target}")
    assert not inside, f"{len(inside)} imports of ragkit modules inside functions:\n" + "\n".join(inside)


def test_the_cli_group_and_commands_load_nothing_but_click():
    edges, seen, todo = graph(), set(), ["ragkit.cli"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += edges[m]
    assert {m for m in seen if not in_cli(m)} <= CLI_LIGHT
    assert pulls()["ragkit.cli"] == {"click"}


def test_no_module_imports_another_modules_private_names():
    private = []
    for name, path in sorted(MODULES.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and resolve(name, node):
                private += [f"{path.relative_to(ROOT.parent)}:{node.lineno} imports {a.name}"
                            for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not private, private
