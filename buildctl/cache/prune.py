"""Age out sstate objects and downloads no recent build used, from a local SSTATE_DIR / DL_DIR.

BitBake marks use on the files themselves: sstate.bbclass touches an archive when a task
re-creates it and updates its ``.siginfo`` when a build uses the object (mtime, or atime for
a setscene unpack); the fetcher touches a download's ``<file>.done`` stamp each time a fetch
task finds it. An sstate object (the archive with its ``.siginfo`` and ``.sig``) or a download
(the file or git/svn directory with its ``.done`` stamp) is removed only when none of its files
was used within the window. Anything else (locks, the hash-equivalence database, downloads
without a ``.done`` stamp, i.e. a fetch in progress) is never touched.

The window: ``older_than_days`` (used within N days) and/or ``keep_builds`` (used by the last
N builds of the cache's ledger, see buildctl.builder.inuse: every use during a build touches
the object, so an object untouched since the N-th last build started was not used by any of
them). With both, an object is kept when either rule keeps it. Pruning holds the directory's
in-use lock alone: while a build uses the cache it refuses at once, naming the build.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from buildctl.builder import inuse
from buildctl.errors import UserError

_COMPANIONS = (".siginfo", ".sig")
SSTATE = "sstate"
DOWNLOADS = "downloads"


@dataclass
class PruneResult:
    root: str = ""
    kind: str = SSTATE
    objects: int = 0
    removed: int = 0
    removed_bytes: int = 0
    kept: int = 0
    failed: list[str] = field(default_factory=list)
    cutoff: float | None = None  # objects last used before this (epoch seconds) go
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"root": self.root, "kind": self.kind, "objects": self.objects,
                "removed": self.removed, "removed_bytes": self.removed_bytes, "kept": self.kept,
                "failed": self.failed, "notes": self.notes,
                "cutoff": _iso(self.cutoff) if self.cutoff is not None else None}


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")


def _sstate_groups(root: Path) -> dict[Path, list[Path]]:
    """Archive path -> its files (the archive, if present, and its companions)."""
    groups: dict[Path, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.startswith("sstate:") or name.endswith((".lock", ".tmp")):
                continue
            p = Path(dirpath) / name
            key = p
            for suffix in _COMPANIONS:
                if name.endswith(suffix):
                    key = p.with_name(name[: -len(suffix)])
            groups.setdefault(key, []).append(p)
    return groups


def _download_groups(root: Path) -> dict[Path, list[Path]]:
    """Download path -> [its .done stamp, the file or directory itself if present]. Only what
    the fetcher finished (a .done stamp) is an object; git2/, svn/ ... hold more of them."""
    groups: dict[Path, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != inuse.MARKERS)
        here = Path(dirpath)
        for name in sorted(filenames):
            if not name.endswith(".done"):
                continue
            item = here / name[: -len(".done")]
            groups[item] = [here / name] + ([item] if os.path.lexists(item) else [])
        # a finished download directory (a git clone) is one object: do not walk into it
        dirnames[:] = [d for d in dirnames if d + ".done" not in filenames]
    return groups


def _size(p: Path) -> int:
    st = p.lstat()
    if not p.is_dir() or p.is_symlink():
        return st.st_size
    total = 0
    for dirpath, _dirs, files in os.walk(p):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                pass
    return total


def _last_use(files: list[Path]) -> float:
    stats = [f.lstat() for f in files]
    return max(max(s.st_mtime, s.st_atime) for s in stats)


def cutoff(root: Path, older_than_days: float | None, keep_builds: int | None,
           now: float, notes: list[str]) -> float:
    """Objects whose last use is before the returned time go."""
    if older_than_days is None and keep_builds is None:
        raise UserError("cache prune: give --older-than DAYS and/or --keep-builds N")
    if older_than_days is not None and not 0 < older_than_days < 1e6:  # nan and inf too
        raise UserError(f"--older-than: {older_than_days:g} is not a number of days "
                        "(more than 0, less than a million)")
    if keep_builds is not None and keep_builds < 1:
        raise UserError("--keep-builds: must be at least 1")
    limits = []
    if older_than_days is not None:
        limits.append(now - older_than_days * 86400)
    if keep_builds is not None:
        recorded = inuse.builds(root)
        if len(recorded) < keep_builds:
            notes.append(f"{root}: the ledger names {len(recorded)} build(s), fewer than "
                         f"--keep-builds {keep_builds}: every object is kept by that rule")
            limits.append(float("-inf"))
        else:
            nth = recorded[-keep_builds]
            start = dt.datetime.fromisoformat(nth["started"]).timestamp()
            notes.append(f"{root}: keeping what the last {keep_builds} build(s) used (since "
                         f"{nth['started']}, build {nth.get('build_id', '?')})")
            limits.append(start)
    return min(limits)


def prune(root: Path, older_than_days: float | None = None, *, keep_builds: int | None = None,
          kind: str = SSTATE, dry_run: bool = False, now: float | None = None) -> PruneResult:
    if not root.is_dir():
        what = "the sstate cache" if kind == SSTATE else "the downloads directory"
        raise UserError(f"{root}: no such directory ({what} to prune)")
    result = PruneResult(root=str(root), kind=kind)
    limit = cutoff(root, older_than_days, keep_builds,
                   now if now is not None else time.time(), result.notes)
    result.cutoff = limit if limit != float("-inf") else None
    groups = _sstate_groups if kind == SSTATE else _download_groups
    # alone in the directory: a build starting now waits for no one and refuses instead
    with inuse.exclusive(root, "prune refused; run it again when the build has finished"):
        for _key, files in sorted(groups(root).items()):
            result.objects += 1
            try:
                last = _last_use(files)
                size = sum(_size(f) for f in files)
            except FileNotFoundError:
                continue  # removed meanwhile (BitBake's own clean-up)
            if last >= limit:
                result.kept += 1
                continue
            result.removed += 1
            result.removed_bytes += size
            if dry_run:
                continue
            # the stamp first: a download without its .done is never taken for a finished one
            for f in sorted(files, key=lambda f: not f.name.endswith(".done")):
                try:
                    if f.is_dir() and not f.is_symlink():
                        shutil.rmtree(f)
                    else:
                        f.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    result.failed.append(f"{f}: {exc.strerror}")
    return result


def prune_targets(sstate_dir: Path | None, downloads: Path | None, product: Path | None,
                  cache_root: Path | None) -> list[tuple[Path, str]]:
    """The directories to prune: those named, else the product's SSTATE_DIR and DL_DIR."""
    targets: list[tuple[Path, str]] = []
    if product is not None:
        from buildctl.builder.caches import settings_from_manifest
        from buildctl.manifest import load_product

        p = load_product(product)
        caches = settings_from_manifest(p.cache, base=product.resolve().parent, root=cache_root)
        sstate_dir = sstate_dir or caches.sstate_dir
        downloads = downloads or caches.dl_dir
    if sstate_dir is None and downloads is None:
        raise UserError("cache prune: name an SSTATE_DIR, --downloads DIR or --product FILE")
    if sstate_dir is not None:
        targets.append((sstate_dir, SSTATE))
    if downloads is not None:
        targets.append((downloads, DOWNLOADS))
    return targets


def run(targets: list[tuple[Path, str]], older_than_days: float | None, keep_builds: int | None,
        *, dry_run: bool = False) -> list[PruneResult]:
    for root, kind in targets:  # every directory checked before any is pruned
        if not root.is_dir():
            what = "the sstate cache" if kind == SSTATE else "the downloads directory"
            raise UserError(f"{root}: no such directory ({what} to prune)")
    return [prune(root, older_than_days, keep_builds=keep_builds, kind=kind, dry_run=dry_run)
            for root, kind in targets]
