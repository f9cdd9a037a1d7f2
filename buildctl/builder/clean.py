"""Remove a product's build directories: what ``buildctl clean`` does.

A board's build directory (``<out>/<board>-<variant>/``, see workspace.py) keeps BitBake's
TMPDIR (``work/build/tmp``: every recipe's workdir, the sysroots, the images before
collection) between builds; it only grows. By default clean removes TMPDIR (and TMPDIRs set
aside for another image or series); ``everything`` removes the whole board directory
(checkouts, logs, collected deploy outputs and reports too). The shared SSTATE_DIR and DL_DIR
are `cache prune`'s business, never touched here.

A board directory a running build holds (builder/inuse.py) is skipped with a line naming the
build; so is one that is (or whose work/ or work/build/ is) a symbolic link: clean removes
what is under the output directory, never what a link points to. The others are cleaned.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from buildctl.builder import inuse


@dataclass
class CleanItem:
    board_dir: str
    paths: list[str] = field(default_factory=list)  # what was (or would be) removed
    bytes: int = 0
    skipped: str = ""  # why the board directory was left alone (a build uses it)

    def to_dict(self) -> dict:
        return {"board_dir": self.board_dir, "paths": self.paths, "bytes": self.bytes,
                "skipped": self.skipped}


def tree_bytes(p: Path) -> int:
    """Bytes on disk under p (hard-linked files once, as du counts them)."""
    if p.is_symlink() or not p.is_dir():  # a link is removed, not what it points to
        try:
            return os.lstat(p).st_blocks * 512
        except FileNotFoundError:
            return 0
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirs, files in os.walk(p):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def outside(board_dir: Path) -> str:
    """Why the board directory, or the directories clean looks in, are not where they seem:
    a symbolic link out of the output directory is never followed (clean removes what is
    under the output directory, nothing a link points to)."""
    for p in (board_dir, board_dir / "work", board_dir / "work" / "build"):
        if p.is_symlink():
            return f"{p}: a symbolic link (to {os.readlink(p)}); clean does not follow it"
    return ""


def targets(board_dir: Path, everything: bool) -> list[Path]:
    if everything:
        return [board_dir]
    build = board_dir / "work" / "build"
    if not build.is_dir():
        return []
    return sorted(p for p in build.iterdir() if p.name == "tmp" or p.name.startswith("tmp.stale-")
                  or p.name.startswith("tmp-"))


def clean(board_dirs: list[Path], *, everything: bool = False,
          dry_run: bool = False) -> list[CleanItem]:
    items = []
    for d in board_dirs:
        item = CleanItem(str(d))
        items.append(item)
        if (why := outside(d)):  # before the lock file is written through the link
            item.skipped = why
            continue
        if not d.is_dir():
            continue
        try:
            with inuse.exclusive(d, "skipped"):
                for t in targets(d, everything):
                    item.bytes += tree_bytes(t)
                    item.paths.append(str(t))
                    if not dry_run:
                        _remove(t, d)
        except inuse.InUse as exc:
            item.skipped = str(exc)
    return items


def _remove(t: Path, board_dir: Path) -> None:
    """Move aside first (one rename), then delete: a half-deleted TMPDIR is never used again."""
    if t == board_dir:
        aside = t.with_name(f".{t.name}.cleaning")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(t, aside)  # the lock file goes with it: nobody can be holding it now
        shutil.rmtree(aside)
        return
    if t.is_symlink() or not t.is_dir():  # the link or file itself, never its target
        t.unlink()
        return
    aside = t.with_name(f"{t.name}.cleaning")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(t, aside)
    shutil.rmtree(aside)
