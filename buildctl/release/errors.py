"""Release errors: a promised output missing, a document that does not read, a bad bundle."""
from __future__ import annotations

from buildctl.errors import EXIT_PROBLEMS, UserError


class ReleaseError(UserError):
    """The inputs of a release are missing or broken (exit 1): names the file and what is wrong."""

    exit_code = EXIT_PROBLEMS
