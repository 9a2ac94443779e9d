"""Progress on stderr for the library's Progress callbacks (ragkit.progress), the one terminal and
log implementation every command uses.

On a terminal: a tqdm bar per stage, with any figures the library passes (training's loss, lr and
tokens/s) beside the count, and message lines written above the bar. When stderr is a log file (CI,
nohup, `ragkit run ... 2> log`): no bar, and a plain line at most every `log_every` seconds (30 by
default, so a long job can be followed without filling the log with bar redraws; a stage shorter
than that prints nothing). Both show the rate (items/s) and the time left; a streamed ingest learns
its total as it reads and updates it (set_total).
"""

from __future__ import annotations

import sys
import time

LOG_EVERY_S = 30.0


class TerminalProgress:
    def __init__(self, enabled: bool | None = None, log_every: float = LOG_EVERY_S, unit: str = ""):
        self.tty = sys.stderr.isatty() if enabled is None else enabled
        self.log_every = log_every
        self.unit = unit
        self._bar = None
        self._name, self._total, self._n, self._t0, self._last = "", 0, 0, 0.0, 0.0

    def stage(self, name: str, total: int) -> None:
        self.done()
        self._name, self._total, self._n = name, total, 0
        self._t0 = self._last = time.monotonic()
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=name, unit=self.unit, file=sys.stderr, leave=False, dynamic_ncols=True)

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

    def advance(self, n: int = 1, **stats) -> None:
        self._n += n
        if self._bar is not None:
            if stats:
                self._bar.set_postfix(stats, refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        if not self.tty and self.log_every and now - self._last >= self.log_every:
            self._last = now
            pct = f" ({100 * self._n / self._total:.0f}%)" if self._total else ""
            figures = "".join(f" {k}={v}" for k, v in stats.items())
            print(f"{self._name}: {self._n}/{self._total}{pct}, {now - self._t0:.0f} s{self.rate_eta(now)}{figures}",
                  file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
