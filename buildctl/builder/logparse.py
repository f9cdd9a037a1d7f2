"""Read BitBake's knotty output line by line: progress, the Sstate summary, warnings, failures.

Only the line formats BitBake prints in non-interactive mode are recognised (see
``lib/bb/ui/knotty.py``, ``lib/bb/runqueue.py`` and the ``LEVEL: message`` format of
``lib/bb/msg.py``); anything else is ignored. The parser is fed one line at a time so the live
view and the report see the same state.
"""
from __future__ import annotations

import re
from pathlib import Path
from dataclasses import asdict, dataclass, field

# kas: "2026-11-24 21:26:10 - ERROR    - fetch repos failed: error code 128"
_KAS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - (ERROR|WARNING|INFO)\s+- (.*)$")
_LEVEL = re.compile(r"^(NOTE|WARNING|ERROR|FATAL|CRITICAL): (.*)$")
_RUNNING = re.compile(r"^Running (setscene task|task|noexec task) (\d+) of (\d+) \((.+)\)$")
_SSTATE = re.compile(
    r"Sstate summary: Wanted (\d+) (?:Found (\d+)|Local (\d+) (?:Network|Mirrors) (\d+)) "
    r"Missed (\d+) Current (\d+) \((\d+)% match, (\d+)% complete\)")
_TASKS_SUMMARY = re.compile(
    r"^Tasks Summary: Attempted (\d+) tasks of which (\d+) didn't need to be rerun and "
    r"(?:all succeeded|(\d+) failed)\.")
_TASK_FAILED = re.compile(r"^Task \((.+)\) failed with exit code '([^']*)'")
_LOGFILE = re.compile(r"^Logfile of failure stored in: (\S+)")
_RECIPE_TASK = re.compile(r"^recipe (\S+): task (do_\w+): (Started|Succeeded|Failed)$")
_RECIPE_MSG = re.compile(r"^(\S+) (do_\w+): (.*)$")
# kas: 'Command "/dir$ git clone -q -- URL DIR" failed:', the tool's own output follows
_KAS_COMMAND = re.compile(r'^Command "(?:[^"$]*\$ )?(.+)" failed:$')
# errors that only say that something else failed: never the root cause while a better line exists
_CONSEQUENCE = re.compile(
    r"^(kas: )?(Task \(.+\) failed with exit code|(\S+ do_\w+: )?Execution of '.+' failed with "
    r"exit code|Summary: |Command \".*\" failed with error \d+$|Shell returned non-zero exit "
    r"status|fetch repos failed: error code|Build interrupted|ExecutionError\()")


@dataclass
class SstateSummary:
    wanted: int
    local: int
    mirrors: int
    missed: int
    current: int
    match_percent: int
    complete_percent: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TaskFailure:
    recipe: str  # PF, e.g. "busybox-1.36.1-r0", or the recipe file when only that is known
    task: str  # e.g. "do_compile"
    log: str = ""  # the task's log file (inside the build directory)
    exit_code: str = ""
    recipe_file: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Progress:
    """What the live view shows and the report keeps."""

    tasks_done: int = 0
    tasks_total: int = 0
    setscene_done: int = 0
    setscene_total: int = 0
    current: str = ""  # the last task started


@dataclass
class BitbakeLog:
    progress: Progress = field(default_factory=Progress)
    sstate: SstateSummary | None = None
    tasks_attempted: int | None = None
    tasks_rerun_skipped: int | None = None
    tasks_failed: int = 0
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failures: list[TaskFailure] = field(default_factory=list)
    root_cause: str = ""  # the failing tool's first own error line (see _cause)
    _pending_log: str = ""
    _consequence: str = ""  # the first error that only reports another failure
    _tool_command: str | None = None  # kas printed 'Command "..." failed:'; output follows
    _in_traceback: bool = False

    @property
    def tasks_run(self) -> int | None:
        if self.tasks_attempted is None:
            return None
        return self.tasks_attempted - (self.tasks_rerun_skipped or 0)

    def _cause(self, msg: str) -> None:
        """Remember the first error line that is a cause, not a consequence."""
        if _CONSEQUENCE.match(msg):
            self._consequence = self._consequence or msg
        elif not self.root_cause:
            self.root_cause = msg

    def feed(self, raw: str) -> None:
        line = raw.rstrip("\r\n")
        if self._tool_command is not None and line.strip() and not _KAS.match(line):
            self._cause(f"{line.strip()} ({self._tool_command})")  # e.g. git's "fatal: ..."
            self._tool_command = None
            return
        if line.startswith("Traceback (most recent call last):"):
            self._in_traceback = True
            return
        if self._in_traceback and line and not line[0].isspace():
            self._in_traceback = False
            self._cause(line.strip())  # the exception that ended a tool
            return
        m = _SSTATE.search(line)  # printed at PLAIN level: no "NOTE: " in front
        if m:
            self._sstate(m)
            return
        m = _KAS.match(line)
        if m:  # kas's own errors (checkout, configuration) come before any BitBake output
            if m.group(1) == "ERROR":
                self.errors.append(f"kas: {m.group(2)}")
                cmd = _KAS_COMMAND.match(m.group(2))
                if cmd:
                    self._tool_command = cmd.group(1)
                else:
                    self._cause(f"kas: {m.group(2)}")
            return
        m = _LEVEL.match(line)
        if not m:
            return
        level, msg = m.group(1), m.group(2)
        if level == "NOTE":
            self._note(msg)
        elif level == "WARNING":
            self.warnings.append(msg)
        else:
            self._error(msg)

    def _note(self, msg: str) -> None:
        m = _RUNNING.match(msg)
        if m:
            kind, n, total, what = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
            p = self.progress
            if kind == "setscene task":
                p.setscene_done, p.setscene_total = max(p.setscene_done, n), total
            else:
                p.tasks_done, p.tasks_total = max(p.tasks_done, n), total
            p.current = what.rsplit("/", 1)[-1]
            return
        m = _TASKS_SUMMARY.match(msg)
        if m:
            self.tasks_attempted = int(m.group(1))
            self.tasks_rerun_skipped = int(m.group(2))
            self.tasks_failed = int(m.group(3) or 0)
            return
        m = _RECIPE_TASK.match(msg)
        if m and m.group(3) == "Failed":
            self._failure(recipe=m.group(1), task=m.group(2))

    def _sstate(self, m: re.Match) -> None:
        g = m.groups()
        local = int(g[1]) if g[1] is not None else int(g[2])
        mirrors = int(g[3]) if g[3] is not None else 0
        self.sstate = SstateSummary(int(g[0]), local, mirrors, int(g[4]), int(g[5]),
                                    int(g[6]), int(g[7]))

    def _error(self, msg: str) -> None:
        m = _LOGFILE.match(msg)
        if m:
            self._pending_log = m.group(1)
            # the log line follows the task's own error; attach it to the latest failure
            for f in reversed(self.failures):
                if not f.log:
                    f.log = self._pending_log
                    break
            return
        self.errors.append(msg)
        self._cause(msg)
        m = _TASK_FAILED.match(msg)
        if m:
            fn, _, task = m.group(1).rpartition(":")
            recipe_file = fn.split(":")[-1]  # drop a "mc:<name>:" or "virtual:native:" prefix
            f = self._failure(recipe=_recipe_from_file(recipe_file), task=task)
            f.exit_code, f.recipe_file = m.group(2), recipe_file
            return
        m = _RECIPE_MSG.match(msg)
        if m:
            self._failure(recipe=m.group(1), task=m.group(2))

    def _failure(self, recipe: str, task: str) -> TaskFailure:
        """One entry per (recipe, task): BitBake names a failure several times."""
        for f in self.failures:
            if f.task == task and (_same_recipe(f.recipe, recipe)):
                if len(recipe) > len(f.recipe) and "-r" in recipe:
                    f.recipe = recipe  # prefer PF ("busybox-1.36.1-r0") over the file stem
                return f
        f = TaskFailure(recipe=recipe, task=task, log=self._pending_log)
        self._pending_log = ""
        self.failures.append(f)
        return f

    def to_dict(self) -> dict:
        return {
            "tasks_done": self.progress.tasks_done,
            "tasks_total": self.progress.tasks_total,
            "setscene_done": self.progress.setscene_done,
            "setscene_total": self.progress.setscene_total,
            "tasks_attempted": self.tasks_attempted,
            "tasks_run": self.tasks_run,
            "tasks_failed": self.tasks_failed,
            "sstate": self.sstate.to_dict() if self.sstate else None,
            "warnings": list(self.warnings),
            "errors": list(self.errors),
            "root_cause": self.root_cause or self._consequence,
            "failures": [f.to_dict() for f in self.failures],
        }


def task_log_cause(path: str | Path, limit: int = 4 << 20) -> str:
    """The first line of a failed task's log that reports an error (compiler, make, fetcher,
    Python): what the task's tool said, which BitBake's console output only points at."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(limit)
    except OSError:
        return ""
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith(("DEBUG:", "NOTE:", "+ ")) and _TOOL_ERROR.search(s):
            return s[:300]
    return ""


_TOOL_ERROR = re.compile(r"\b(error|fatal|failed|failure)\b|\*\*\*", re.IGNORECASE)


def _recipe_from_file(path: str) -> str:
    stem = path.rsplit("/", 1)[-1]
    for ext in (".bbappend", ".bb"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    return stem.replace("_", "-", 1)


def _same_recipe(a: str, b: str) -> bool:
    """"busybox-1.36.1-r0" (PF) and "busybox-1.36.1" (from busybox_1.36.1.bb) name one recipe."""
    return a == b or a.startswith(b + "-r") or b.startswith(a + "-r")


def parse_lines(lines) -> BitbakeLog:
    log = BitbakeLog()
    for line in lines:
        log.feed(line)
    return log
