"""The optional parts of ragkit (pyproject's extras) and the one sentence a command gives when the
part it needs is not installed:

    ragkit train needs the 'train' extra (peft is not installed): pip install 'ragkit[train]'

A plain `pip install ragkit` ingests, searches, asks on llama.cpp, evaluates and builds SFT data.
"""

from __future__ import annotations

import importlib.util

from .errors import MissingExtra

# extra -> the modules it provides (checked without importing them)
EXTRAS = {
    "train": ("peft",),  # accelerate too, but ingest needs it already (sentence-transformers imports it)
    "milvus": ("pymilvus", "milvus_lite"),
    "serve": ("fastapi", "uvicorn"),
    "ray": ("ray",),
    "langchain": ("langchain_core",),
}


def missing(extra: str) -> list[str]:
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]


def require(extra: str, what: str) -> None:
    """Raise MissingExtra naming `extra` when any of its modules is not installed."""
    gone = missing(extra)
    if gone:
        verb = "is" if len(gone) == 1 else "are"
        raise MissingExtra(f"{what} needs the '{extra}' extra ({', '.join(gone)} {verb} not installed): "
                           f"pip install 'ragkit[{extra}]'")
