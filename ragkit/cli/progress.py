"""Progress on stderr for the library's Progress callbacks: a tqdm bar on a terminal, and when
stderr is a log file (CI, nohup, `ragkit run ... 2> log`), a plain line at most every 30 seconds,
so a long job can be followed without filling the log with bar redraws. Both show the rate (items/s)
and the time left; a streamed ingest learns its total as it reads and updates it (set_total)."""

from __future__ import annotations

import sys
import time

LOG_EVERY_S = 30.0


class TqdmProgress:
    def __init__(self, enabled: bool | None = None, log_every: float = LOG_EVERY_S):
        self.tty = sys.stderr.isatty() if enabled is None else enabled
        self.log_every = log_every
        self._bar = None
        self._name, self._total, self._n, self._t0, self._last = "", 0, 0, 0.0, 0.0

    def stage(self, name: str, total: int) -> None:
        self.done()
        self._name, self._total, self._n = name, total, 0
        self._t0 = self._last = time.monotonic()
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=name, unit="", file=sys.stderr, leave=False, dynamic_ncols=True)

    def set_total(self, total: int) -> None:
        self._total = max(total, self._n)
        if self._bar is not None and self._bar.total != self._total:
            self._bar.total = self._total
            self._bar.refresh()

    def rate_eta(self, now: float) -> str:
        """', 48.0/s, 2 min left' from the work done so far in this stage."""
        spent = now - self._t0
        if spent <= 0 or not self._n:
            return ""
        rate = self._n / spent
        text = f", {rate:.1f}/s"
        if self._total > self._n:
            left = (self._total - self._n) / rate
            text += f", {left / 60:.0f} min left" if left >= 120 else f", {left:.0f} s left"
        return text

    def advance(self, n: int = 1) -> None:
        self._n += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if not self.tty and self.log_every and now - self._last >= self.log_every:
            # Short stages print nothing: only work that outlasts the interval gets a line.
            self._last = now
            pct = f" ({100 * self._n / self._total:.0f}%)" if self._total else ""
            print(f"{self._name}: {self._n}/{self._total}{pct}, {now - self._t0:.0f} s{self.rate_eta(now)}",
                  file=sys.stderr, flush=True)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
