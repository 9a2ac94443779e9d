"""Progress: how a long library call (ingest, build-sft-data, train, eval, run) reports where it is.

One protocol for every caller, one null object for the library's silent default; the one terminal
and log implementation lives in the CLI (ragkit.cli.progress.TerminalProgress). A long call opens
a `stage` with the number of steps it will take, `advance`s through it (with optional named
figures, such as a training loss, that a bar shows beside the count), may write a `message` line
that does not break the bar, may correct its total with `set_total` (a streamed ingest learns it
as it reads), and closes it with `done`.

    from ragkit.progress import NullProgress
    progress = progress or NullProgress()
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def stage(self, name: str, total: int) -> None: ...

    def advance(self, n: int = 1, **stats) -> None: ...

    def message(self, text: str) -> None: ...

    def set_total(self, total: int) -> None:
        """A better estimate of the stage's total (a streamed ingest learns it as it reads)."""

    def done(self) -> None: ...


class NullProgress:
    """Reports nothing: the library's default, so a caller that passes no progress sees no output."""

    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, n: int = 1, **stats) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def set_total(self, total: int) -> None:
        pass

    def done(self) -> None:
        pass
