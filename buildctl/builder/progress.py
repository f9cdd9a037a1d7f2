"""Live progress: a rich table (one line per board) on a terminal, timestamped lines otherwise."""
from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from dataclasses import dataclass

from buildctl.builder.logparse import BitbakeLog

FINAL = ("succeeded", "failed", "interrupted", "skipped")


@dataclass
class BoardState:
    board: str
    phase: str = "waiting"
    done: int = 0
    total: int = 0
    setscene: str = ""
    current: str = ""
    started: float | None = None
    ended: float | None = None

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.started


class ProgressView:
    """Collects board states; subclasses decide how to show them."""

    def __init__(self, boards: list[str]) -> None:
        self.states = {b: BoardState(b) for b in boards}
        self.lock = threading.Lock()

    def update(self, board: str, phase: str, log: BitbakeLog | None) -> None:
        with self.lock:
            st = self.states.setdefault(board, BoardState(board))
            changed = st.phase != phase
            if st.started is None and phase not in FINAL:
                st.started = time.monotonic()
            st.phase = phase
            if phase in FINAL:
                st.ended = time.monotonic()
                st.current = ""
            if log is not None:
                p = log.progress
                st.done, st.total, st.current = p.tasks_done, p.tasks_total, p.current
                st.setscene = f"{p.setscene_done}/{p.setscene_total}" if p.setscene_total else ""
        self.changed(st, changed)

    def changed(self, st: BoardState, phase_changed: bool) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


class PlainView(ProgressView):
    """One timestamped line per phase change, and progress at most every ``every`` seconds."""

    def __init__(self, boards: list[str], stream=None, every: float = 10.0) -> None:
        super().__init__(boards)
        self.stream = stream or sys.stdout
        self.every = every
        self._last: dict[str, float] = {}

    def changed(self, st: BoardState, phase_changed: bool) -> None:
        now = time.monotonic()
        if not phase_changed and now - self._last.get(st.board, 0.0) < self.every:
            return
        self._last[st.board] = now
        ts = dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S")
        tasks = f" tasks {st.done}/{st.total}" if st.total else ""
        line = f"{ts} {st.board}: {st.phase}{tasks} ({st.elapsed():.0f}s)"
        with self.lock:
            print(line, file=self.stream, flush=True)


class LiveView(ProgressView):
    """A rich Live table refreshed a few times a second."""

    def __init__(self, boards: list[str], console=None) -> None:
        super().__init__(boards)
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console()
        self.live = Live(self._table(), console=self.console, refresh_per_second=4,
                         get_renderable=self._table)

    def _table(self):
        from rich.table import Table

        t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for col in ("board", "phase", "tasks", "setscene", "elapsed", "running"):
            t.add_column(col)
        style = {"succeeded": "green", "failed": "red", "interrupted": "yellow",
                 "skipped": "dim"}
        for st in list(self.states.values()):
            tasks = f"{st.done}/{st.total}" if st.total else ""
            t.add_row(st.board, f"[{style.get(st.phase, 'cyan')}]{st.phase}[/]", tasks,
                      st.setscene, f"{st.elapsed():.0f}s", st.current[-48:])
        return t

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)


def make_view(boards: list[str], json_mode: bool) -> ProgressView:
    if not json_mode and sys.stdout.isatty():
        return LiveView(boards)
    return PlainView(boards, stream=sys.stderr if json_mode else sys.stdout)
