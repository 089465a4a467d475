"""A progress line on stderr: a bar, counts by status and an ETA. On a terminal it
redraws in place; otherwise (a log, CI) it prints a line when something changed,
at most every few seconds, so logs stay short."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO

ORDER = ("completed", "failed", "blocked", "canceled", "processing", "queued", "pending")
FINISHED = frozenset({"completed", "failed", "blocked", "canceled"})


class Progress:
    def __init__(
        self, total: int, stream: TextIO | None = None, width: int = 30, every: float = 2.0
    ) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.width = width
        self.every = every
        self.status: dict[str, str] = {}
        self.started = time.monotonic()
        self.finished_at_start = 0
        self._last_print = 0.0
        self._last_line = ""
        self.tty = self.stream.isatty()

    def set(self, name: str, status: str, draw: bool = True) -> None:
        self.status[name] = status if status in ORDER else "queued"
        if draw:
            self.draw()

    def start(self) -> None:
        """Marks what was finished before this run, so the ETA counts this run's pace."""
        self.finished_at_start = sum(1 for s in self.status.values() if s in FINISHED)
        self.started = time.monotonic()
        self.draw(force=True)

    def line(self) -> str:
        counts = Counter(self.status.values())
        done = sum(counts[s] for s in FINISHED)
        filled = int(self.width * done / self.total) if self.total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        parts = [f"{counts[s]} {s}" for s in ORDER if counts[s]]
        line = f"[{bar}] {done}/{self.total} " + ", ".join(parts)
        this_run = done - self.finished_at_start
        left = self.total - done
        if left and this_run > 0:
            eta = (time.monotonic() - self.started) / this_run * left
            line += f"  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        return line

    def draw(self, force: bool = False) -> None:
        line = self.line()
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
        elif force or (line != self._last_line and now - self._last_print >= self.every):
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_print = now
        self._last_line = line

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line() + "\n")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
