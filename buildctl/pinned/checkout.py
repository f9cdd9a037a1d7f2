"""A scratch checkout of one repository at one commit, borrowing the objects of the git
directory buildctl already reads (the git cache, a reference mirror or a local repository).

The checkout is a new repository whose ``objects/info/alternates`` points at that git
directory (and which copies its ``shallow`` list, for shallow mirrors): nothing is copied or
fetched, and the source is only ever read; the user's work trees and the build's checkouts
are never used. A checkout left by an earlier run is reset to the pin (it is buildctl's
scratch space, under the output directory).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from buildctl.errors import UserError
from buildctl.layers.gitfs import git


def materialize(git_dir: Path, commit: str, dest: Path) -> Path:
    """dest holds the files of commit (detached HEAD) and nothing else."""
    git_dir = Path(git_dir).resolve()
    # the object store (a linked work tree's git directory keeps its objects in the common one)
    objects = Path(git(git_dir, "rev-parse", "--git-path", "objects").stdout.strip())
    objects = objects if objects.is_absolute() else (git_dir / objects).resolve()
    if not (objects / "info").is_dir() and (git_dir / "objects").is_dir():
        objects = git_dir / "objects"
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        # a link would have the pin forced (checkout -f, clean -ffdx) onto whatever it points
        # to, a user's work tree included; a file is not buildctl's either
        raise UserError(f"{dest}: is {'a symbolic link' if dest.is_symlink() else 'a file'}, "
                        "not a checkout of buildctl's (remove it, or choose another --out)")
    if not (dest / ".git").is_dir():
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        git(None, "init", "-q", str(dest))
    meta = dest / ".git"
    (meta / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (meta / "objects" / "info" / "alternates").write_text(str(objects) + "\n")
    shallow = objects.parent / "shallow"
    if shallow.is_file():
        shutil.copyfile(shallow, meta / "shallow")
    elif (meta / "shallow").exists():
        (meta / "shallow").unlink()
    git(dest, "-c", "advice.detachedHead=false", "checkout", "-q", "-f", "--detach", commit)
    git(dest, "clean", "-q", "-ffdx")
    return dest
