"""ragkit: retrieval and LoRA fine-tuning for domain knowledge, and a bench that says which works.

The library mirrors the CLI: `ragkit.Index.open(dir).search(query)`, `ragkit.Pipeline(...).answer(q)`.
Attributes are imported lazily so that `import ragkit` stays cheap.
"""

__version__ = "0.1.0"

_LAZY = {
    "Index": ("ragkit.index", "Index"),
    "ingest": ("ragkit.index", "ingest"),
    "Pipeline": ("ragkit.pipeline", "Pipeline"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ragkit' has no attribute {name!r}")
