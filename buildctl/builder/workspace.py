"""A board's directory on the host: its layout, the kas files of each phase, what git may read.

    <out>/<board>-<variant>/
        kas/      the composed kas file (a copy) and buildctl's overlay per phase
        home/     HOME inside the container (and the git config kas hands to git)
        work/     KAS_WORK_DIR: the checkouts and build/ (TMPDIR under build/tmp)
        logs/     one log per phase
        deploy/   the collected deploy outputs (see deploy.py)

Everything written here belongs to the build's owner, never to root.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import yaml

SUBDIRS = ("", "logs", "home", "kas", "work")


def own(path: Path, owner: tuple[int, int]) -> Path:
    """Give a file buildctl wrote (as root) to the build's owner: outputs are never root's."""
    if os.geteuid() == 0:
        os.lchown(path, *owner)
    return path


def chown_tree(path: Path, owner: tuple[int, int]) -> None:
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        for n in [root] + [os.path.join(root, x) for x in dirs + files]:
            try:
                os.lchown(n, *owner)
            except FileNotFoundError:
                pass


def cache_identity(image_digest: str | None, series: str) -> str:
    """What a build directory's TMPDIR is only valid for: the image and the release series."""
    return hashlib.sha256(f"{image_digest or 'host'}\n{series}".encode()).hexdigest()[:16]


def local_sources(repos: dict[str, dict], kas_file: Path) -> list[Path]:
    """Host directories a checkout reads from (local repos, file:// URLs): mounted read-only."""
    paths: list[Path] = []
    for spec in repos.values():
        url = str(spec.get("url") or "")
        if url.startswith("file://"):
            paths.append(Path(url[len("file://"):]))
        elif spec.get("path") and not url:
            p = Path(spec["path"])
            paths.append(p if p.is_absolute() else (kas_file.parent / p).resolve())
    return paths


def local_tree_dirty(path: Path) -> bool | None:
    """Whether a local ``path:`` repository has uncommitted changes (what the build reads is
    then not any commit); None when it is not a git work tree git will read."""
    import subprocess

    out = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(path), "status",
                          "--porcelain", "--untracked-files=normal"],
                         capture_output=True, text=True)
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def kas_copy(d: Path, kas_file: Path) -> Path:
    return d / "kas" / kas_file.name


def prepare(d: Path, kas_file: Path, identity: str, owner: tuple[int, int]) -> None:
    """Create the layout, copy the composed kas file in, and drop a TMPDIR that another image
    or release series made (sstate stays: it is keyed by task hashes)."""
    for sub in SUBDIRS:
        (d / sub).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(d / sub, *owner)
    copy = kas_copy(d, kas_file)
    if kas_file.resolve() != copy.resolve():
        shutil.copyfile(kas_file, copy)
        own(copy, owner)
    ident_file = d / "work" / ".buildctl-identity"
    old = ident_file.read_text().strip() if ident_file.exists() else None
    tmpdir = d / "work" / "build" / "tmp"
    if old and old != identity and tmpdir.exists():
        aside = tmpdir.with_name(f"tmp.stale-{old}")
        os.replace(tmpdir, aside)
        shutil.rmtree(aside, ignore_errors=True)
    ident_file.write_text(identity + "\n")
    own(ident_file, owner)


def write_overlay(d: Path, phase: str, env: dict[str, str], owner: tuple[int, int]) -> Path:
    """buildctl's own kas file for one phase, combined with the composed one: BitBake settings
    as kas ``env`` entries (kas forwards them through BB_ENV_PASSTHROUGH_ADDITIONS)."""
    data = {"header": {"version": 14}, "env": env}
    path = d / "kas" / f"buildctl-{phase}.yml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# written by buildctl build; settings of this run, not of the product\n"
                   + yaml.safe_dump(data, sort_keys=True))
    os.replace(own(tmp, owner), path)
    return path


def write_gitconfig(d: Path, sources: list[str], owner: tuple[int, int]) -> Path:
    """The read-only sources belong to another user: tell git (through kas's own
    GITCONFIG_FILE, since kas runs git with a fresh HOME) that they are safe to read."""
    path = d / "home" / "buildctl.gitconfig"
    path.write_text("".join(f"[safe]\n\tdirectory = {p}\n\tdirectory = {p}/.git\n"
                            for p in sources))
    own(path, owner)
    return path
