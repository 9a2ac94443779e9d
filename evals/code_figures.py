"""Longest functions and module sizes under ragkit/: the figures the code-health notes quote.

    python evals/code_figures.py .        # repository root
"""

import ast
import pathlib
import sys


def main(root: pathlib.Path) -> None:
    funcs, mods = [], []
    for p in sorted((root / "ragkit").rglob("*.py")):
        src = p.read_text(encoding="utf-8")
        mods.append((len(src.splitlines()), str(p.relative_to(root))))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                funcs.append((node.end_lineno - node.lineno + 1, f"{p.relative_to(root)}:{node.lineno} {node.name}"))
    funcs.sort(reverse=True)
    mods.sort(reverse=True)
    print("== longest functions (lines incl. docstring) ==")
    for n, name in funcs[:20]:
        print(f"{n:5d}  {name}")
    print(f"functions over 80 lines: {sum(n > 80 for n, _ in funcs)}; over 60: {sum(n > 60 for n, _ in funcs)}")
    print("== module sizes (lines) ==")
    for n, name in mods[:20]:
        print(f"{n:5d}  {name}")
    print(f"modules: {len(mods)}; total lines: {sum(n for n, _ in mods)}; over 400: {sum(n > 400 for n, _ in mods)}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "."))
