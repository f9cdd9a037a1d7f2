"""User errors: raised anywhere, turned into one clean line and an exit code in cli.main.

Internal errors (bugs) are not UserError: cli.main writes their traceback to a log file and
exits with EXIT_INTERNAL, printing one line that points at the log.
"""
from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_PROBLEMS = 1  # checks ran and found problems
EXIT_USAGE = 2  # bad input or usage
EXIT_INTERNAL = 70  # a bug in buildctl (sysexits' EX_SOFTWARE)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class UserError(Exception):
    """A mistake in what the user gave us; printed as one line, no traceback."""

    exit_code = EXIT_USAGE


class ManifestError(UserError):
    """A manifest that cannot be loaded: names the file, line and field."""

    def __init__(self, path: str | Path, message: str, *, line: int | None = None,
                 field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        what = f"{field}: " if field else ""
        super().__init__(f"{where}: {what}{message}")


class ProblemsFound(UserError):
    """Checks ran and found problems (exit 1); the findings were already reported."""

    exit_code = EXIT_PROBLEMS
