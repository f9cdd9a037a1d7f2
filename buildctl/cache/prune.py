"""Age out sstate objects no recent build used, from a local SSTATE_DIR.

BitBake marks use on the files themselves: sstate.bbclass touches an archive when a task
re-creates it and updates its ``.siginfo`` when a build uses the object (mtime, or atime for
a setscene unpack). An object (the archive with its ``.siginfo`` and ``.sig``) is removed only
when none of its files was used within the window. Files that are not sstate objects (locks,
the hash-equivalence database) are never touched.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from buildctl.errors import UserError

_COMPANIONS = (".siginfo", ".sig")


@dataclass
class PruneResult:
    objects: int = 0
    removed: int = 0
    removed_bytes: int = 0
    kept: int = 0
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"objects": self.objects, "removed": self.removed,
                "removed_bytes": self.removed_bytes, "kept": self.kept, "failed": self.failed}


def _groups(root: Path) -> dict[Path, list[Path]]:
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


def prune(root: Path, older_than_days: float, *, dry_run: bool = False,
          now: float | None = None) -> PruneResult:
    if older_than_days <= 0:
        raise UserError("--older-than: must be more than 0 days")
    if not root.is_dir():
        raise UserError(f"{root}: no such directory (the sstate cache to prune)")
    cutoff = (now if now is not None else time.time()) - older_than_days * 86400
    result = PruneResult()
    for _key, files in sorted(_groups(root).items()):
        result.objects += 1
        try:
            stats = [f.stat() for f in files]
        except FileNotFoundError:
            continue  # removed meanwhile (a concurrent prune or BitBake's own clean-up)
        if max(max(s.st_mtime, s.st_atime) for s in stats) >= cutoff:
            result.kept += 1
            continue
        result.removed += 1
        result.removed_bytes += sum(s.st_size for s in stats)
        if dry_run:
            continue
        for f in files:
            try:
                f.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                result.failed.append(f"{f}: {exc.strerror}")
    return result
