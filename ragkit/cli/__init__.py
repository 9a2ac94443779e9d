"""The `ragkit` command line: a Click group (group.py) over the library. No logic lives here.

Each command module registers its commands on `main` when imported, and imports the library parts
that pull numpy, pydantic or a model backend inside the command body, so `ragkit --help` starts fast.
"""

from . import (  # noqa: F401
    ask_cmds,
    bench_cmds,  # noqa: F401  (after index_cmds: it adds to the `bench` group)
    eval_cmds,
    index_cmds,
    run_cmds,
    serve_cmds,
    sft_data_cmds,
    train_cmds,
)
from .group import echo_json, main, stderr_is_tty

__all__ = ["echo_json", "main", "stderr_is_tty"]
