"""What a running build is using: a lock it holds on each directory, and a ledger of builds.

A build holds a shared ``flock`` on ``<dir>/.buildctl-in-use`` for each of its board
directories and for the shared SSTATE_DIR and DL_DIR, from its start until it ends (also when
it is killed: the kernel drops the lock with the process). Beside the lock, a marker file per
build under ``<dir>/.buildctl-in-use.d/<build id>`` says who holds it (pid, product, boards,
start time) so that a refusal can name the build.

Whoever removes things from such a directory (``buildctl clean``, ``cache prune``) takes the
lock exclusively without waiting; while a build holds it, that fails at once and they refuse
with the build's name. A build that finds a clean-up holding the lock refuses too (it never
waits silently).

The ledger ``<SSTATE_DIR>/.buildctl-builds.jsonl`` has one line per build that used the cache
(start, end, product, boards): ``cache prune --keep-builds N`` reads it.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from buildctl.errors import EXIT_PROBLEMS, UserError

LOCK_NAME = ".buildctl-in-use"
MARKERS = ".buildctl-in-use.d"
LEDGER = ".buildctl-builds.jsonl"


@dataclass
class Holder:
    """A build using a directory (what its marker says)."""

    build_id: str
    pid: int
    product: str = ""
    boards: list[str] = field(default_factory=list)
    started: str = ""

    def describe(self) -> str:
        what = f"build {self.build_id} (pid {self.pid}"
        if self.product:
            what += f", product {self.product}"
        if self.boards:
            what += f", boards {', '.join(self.boards)}"
        return what + (f", started {self.started})" if self.started else ")")


class InUse(UserError):
    """A directory a running build uses (or a clean-up is working on): refused, exit 1."""

    exit_code = EXIT_PROBLEMS


def _open_lock(d: Path) -> int:
    return os.open(d / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)


def holders(d: Path) -> list[Holder]:
    """The builds whose markers are in d and whose process still runs."""
    out = []
    mdir = d / MARKERS
    if not mdir.is_dir():
        return out
    for m in sorted(mdir.iterdir()):
        try:
            data = json.loads(m.read_text())
            h = Holder(**{k: data[k] for k in ("build_id", "pid", "product", "boards", "started")
                          if k in data})
        except (OSError, ValueError, TypeError):
            continue
        if _alive(h.pid):
            out.append(h)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def busy_message(d: Path, what: str) -> str:
    hs = holders(d)
    who = "; ".join(h.describe() for h in hs) if hs else "another buildctl process"
    return f"{d}: in use by {who}: {what}"


@contextlib.contextmanager
def exclusive(d: Path, what: str = "not touched while a build runs") -> Iterator[None]:
    """Hold d's lock alone (clean-up); raises InUse at once while a build holds it."""
    fd = _open_lock(d)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InUse(busy_message(d, what)) from None
        yield
    finally:
        os.close(fd)


def in_use(d: Path) -> bool:
    """Whether a build (or a clean-up) holds d's lock now."""
    if not (d / LOCK_NAME).exists():
        return False
    fd = _open_lock(d)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold(dirs: list[Path], holder: Holder, owner: tuple[int, int] | None = None) -> Iterator[None]:
    """What a build does: a shared lock and a marker on every directory it uses."""
    held: list[tuple[int, Path]] = []
    try:
        for d in dict.fromkeys(dirs):
            if not d.exists():
                d.mkdir(parents=True)
                if owner and os.geteuid() == 0:
                    os.chown(d, *owner)  # a board directory is the build owner's, not root's
            fd = _open_lock(d)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise InUse(f"{d}: a clean-up (buildctl clean or cache prune) is removing files "
                            "there; build again when it has finished") from None
            marker = d / MARKERS / holder.build_id
            marker.parent.mkdir(exist_ok=True)
            marker.write_text(json.dumps(asdict(holder)) + "\n")
            if owner and os.geteuid() == 0:
                for p in (d / LOCK_NAME, marker.parent, marker):
                    os.lchown(p, *owner)
            held.append((fd, marker))
        yield
    finally:
        for fd, marker in held:
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
            os.close(fd)


# -- the ledger of builds that used a cache ---------------------------------------------------
def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def record(cache_dir: Path, entry: dict, owner: tuple[int, int] | None = None) -> None:
    """Append one build to the cache's ledger (one short line, appended atomically)."""
    path = cache_dir / LEDGER
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o664)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    if owner and os.geteuid() == 0:
        os.lchown(path, *owner)


def _when(text: str) -> bool:
    """Whether a ledger time can be read (an entry whose time cannot is skipped too)."""
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def builds(cache_dir: Path) -> list[dict]:
    """The builds the ledger names, oldest first (lines that cannot be read are skipped: a
    ledger is a record, not an input the user wrote)."""
    path = cache_dir / LEDGER
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            e = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(e, dict) and isinstance(e.get("started"), str) and _when(e["started"]):
            out.append(e)
    return sorted(out, key=lambda e: e["started"])
