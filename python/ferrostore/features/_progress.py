"""A tiny progress bar on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Self

__all__ = ["Progress"]


class Progress:
    """Draw ``label [#####     ] 50% (n/total)`` on stderr; silent unless it is a TTY.

    Args:
        label: What is progressing.
        total: The count at completion (0 or less: unknown, the count alone is shown).
        enabled: Force drawing on or off; default: when stderr is a terminal.
    """

    def __init__(self, label: str, total: int, *, enabled: bool | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units done and redraw (at most 10 times a second)."""
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total > 0):
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self.total > 0:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 30)
            text = f"\r{self.label} [{bar:<30}] {frac:4.0%} ({self.done:,}/{self.total:,})"
        else:
            text = f"\r{self.label} {self.done:,}"
        sys.stderr.write(text)
        sys.stderr.flush()

    def __enter__(self) -> Self:
        if self.enabled:
            self._draw()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.enabled:
            self._draw()
            sys.stderr.write("\n")
            sys.stderr.flush()
