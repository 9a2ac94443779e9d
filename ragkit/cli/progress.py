"""tqdm progress bars on stderr for the library's Progress callbacks (silent when not a terminal)."""

from __future__ import annotations

import sys


class TqdmProgress:
    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar = None

    def stage(self, name: str, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        self.done()
        self._bar = tqdm(total=total, desc=name, unit="", file=sys.stderr, leave=False, dynamic_ncols=True)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
