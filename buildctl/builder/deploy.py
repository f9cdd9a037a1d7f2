"""Deploy collection: a board's DEPLOY_DIR_IMAGE, linked into ``<board>/deploy`` at once.

Files are hard-linked (copied across file systems) into a staging directory that replaces
the previous deploy directory with one rename, so there is never half a deploy directory.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from buildctl.builder.workspace import chown_tree


def deploy_source(d: Path, machine: str) -> Path:
    """Where OE writes a machine's images: DEPLOY_DIR_IMAGE under kas's build directory."""
    return d / "work" / "build" / "tmp" / "deploy" / "images" / machine


def collect(src: Path, final: Path, owner: tuple[int, int]) -> list[dict]:
    """Mirror src into final; return the listing ({path, size} per file, {path, link} per
    symlink) that the report and the release steps read."""
    staging = final.with_name(".deploy.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    entries = []
    if src.is_dir():
        for p in sorted(src.rglob("*")):
            rel = p.relative_to(src)
            dst = staging / rel
            if p.is_symlink():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.readlink(p), dst)
                entries.append({"path": str(rel), "link": os.readlink(p)})
            elif p.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
            elif p.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(p, dst)
                except OSError:
                    shutil.copy2(p, dst)
                entries.append({"path": str(rel), "size": p.stat().st_size})
    chown_tree(staging, owner)
    if final.exists():
        old = final.with_name(".deploy.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)
    return entries
