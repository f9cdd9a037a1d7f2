"""The meta-mender-community checkout a contribution is made against, read from git objects."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from buildctl.errors import UserError
from buildctl.layers.gitfs import GitReadError, GitTree, default_fs


@dataclass
class CommunityBase:
    git_dir: str
    commit: str
    branch: str
    tree: GitTree | None = None  # None: an empty base (every file is new)

    def read(self, path: str) -> str | None:
        if self.tree is None or not self.tree.is_file(path):
            return None
        return self.tree.read_text(path)

    def is_dir(self, path: str) -> bool:
        return self.tree is not None and self.tree.exists(path) and not self.tree.is_file(path)


def open_base(git_dir: str | Path, rev: str) -> CommunityBase:
    """The community repository at rev (a branch, tag or commit; HEAD of a work tree)."""
    try:
        tree = default_fs().tree(str(git_dir), rev)
    except GitReadError as e:
        raise UserError(f"community checkout: {e}") from None
    branch = rev
    if rev == "HEAD":
        r = subprocess.run(["git", f"--git-dir={git_dir}", "symbolic-ref", "--short", "-q", "HEAD"],
                           capture_output=True, text=True)
        branch = r.stdout.strip() or rev
    return CommunityBase(str(git_dir), tree.commit, branch, tree)


def git_dir_of(checkout: Path) -> Path:
    r = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--absolute-git-dir"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"{checkout}: not a git checkout of meta-mender-community")
    return Path(r.stdout.strip())
