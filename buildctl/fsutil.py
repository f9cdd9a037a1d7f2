"""Files written whole or not at all: a temporary file beside the target, then a rename."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from buildctl.errors import UserError

_SPECIAL = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def special_file(path: Path) -> str | None:
    """What path is when it is a device, FIFO or socket (None otherwise). A rename onto it
    would replace it with a regular file: `-o /dev/null` run as root replaced /dev/null."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    return next((what for test, what in _SPECIAL if test(mode)), None)


def write_atomic(path: Path, text: str, *, mode: int = 0o644,
                 owner: tuple[int, int] | None = None) -> None:
    """Write text to path so that readers see the old file or the new one, never half of it."""
    path = Path(path)
    if (what := special_file(path)) is not None:
        raise UserError(f"{path}: is {what}, not a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        if owner and os.geteuid() == 0:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
