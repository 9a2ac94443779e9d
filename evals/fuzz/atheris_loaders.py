"""Coverage-guided fuzzing of the loaders, the bench parser and the manifest reader (outside CI).

The property tests in tests/unit/test_fuzz.py run a fixed number of examples in `make test`; this
harness runs for as long as you let it, guided by coverage. Any exception but a RagkitError is a
finding (atheris prints the input and stops).

    pip install atheris
    python evals/fuzz/atheris_loaders.py -max_total_time=600
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main() -> None:
    try:
        import atheris
    except ImportError:
        sys.exit("this harness needs atheris: pip install atheris")
    with atheris.instrument_imports():
        from ragkit.errors import RagkitError
        from ragkit.eval.bench import validate_bench
        from ragkit.index.manifest import validate_manifest
        from ragkit.ingest.loaders import SUPPORTED, load_file_noted

    work = Path(tempfile.mkdtemp(prefix="ragkit-fuzz-"))
    suffixes = sorted(SUPPORTED)

    def one(data: bytes) -> None:
        if not data:
            return
        target, body = data[0] % (len(suffixes) + 2), data[1:]
        try:
            if target < len(suffixes):
                p = work / f"f{suffixes[target]}"
                p.write_bytes(body)
                load_file_noted(p, p.name)
            elif target == len(suffixes):
                p = work / "bench.jsonl"
                p.write_bytes(body)
                validate_bench(p)
            else:
                import json

                try:
                    m = json.loads(body.decode("utf-8", "replace"))
                except ValueError:
                    return
                validate_manifest(m, work)
        except RagkitError:
            pass

    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
