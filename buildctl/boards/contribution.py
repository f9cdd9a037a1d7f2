"""The contribution as a patch (git's diff format) or as a commit in a community checkout.

The commit follows the repository's conventions: a conventional-commit subject (`feat:`),
`Changelog:`/`Ticket:` trailers and a `Signed-off-by` from the committer (`git commit -s`).
"""
from __future__ import annotations

import difflib
import os
import subprocess
from pathlib import Path

from buildctl.boards.scaffold import OutFile
from buildctl.errors import UserError
from buildctl.fsutil import write_atomic


def patch(files: list[OutFile]) -> str:
    """A patch `git apply` accepts, adding or changing files."""
    out: list[str] = []
    for f in files:
        if f.old == f.text:
            continue
        out.append(f"diff --git a/{f.path} b/{f.path}\n")
        if f.old is None:
            out.append("new file mode 100644\n")
        old = [] if f.old is None else f.old.splitlines(keepends=True)
        new = f.text.splitlines(keepends=True)
        lines = list(difflib.unified_diff(old, new, "/dev/null" if f.old is None else f"a/{f.path}",
                                          f"b/{f.path}", n=3))
        for line in lines:
            if line.startswith(("--- ", "+++ ")):
                out.append(line.rstrip("\n").rstrip() + "\n")
            elif line.endswith("\n"):
                out.append(line)
            else:
                out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _git(checkout: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    return subprocess.run(["git", "-C", str(checkout), *args], input=stdin, capture_output=True,
                          text=True, env=env)


def apply(checkout: Path, files: list[OutFile], message: str) -> str | None:
    """Write files into the checkout and commit them; the new commit id, or None if there was
    nothing to change (the same contribution was applied before)."""
    checkout = Path(checkout)
    if _git(checkout, "rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        raise UserError(f"--apply {checkout}: not a git work tree")
    paths = [f.path for f in files]
    dirty = _git(checkout, "status", "--porcelain", "--", *paths).stdout.strip()
    if dirty:
        raise UserError(f"--apply {checkout}: uncommitted changes in {dirty.splitlines()[0][3:]}; "
                        "commit or stash them first")
    for name in ("user.name", "user.email"):
        if _git(checkout, "config", name).returncode != 0:
            raise UserError(f"--apply {checkout}: git {name} is not set (the sign-off needs it)")
    planned: list[tuple[Path, str]] = []
    for f in files:
        target = checkout / f.path
        current = target.read_text() if target.is_file() else None
        if current is not None and f.edit is not None:
            want = f.edit(current)  # the same change on the checkout's version of the file
        elif current is None or current == f.text or current == f.old:
            want = f.text
        else:
            raise UserError(f"--apply {checkout}: {f.path} exists with other content "
                            "(remove it or pass --community to contribute against this checkout)")
        if current != want:
            planned.append((target, want))
    for target, want in planned:
        write_atomic(target, want)
    changed = [str(t.relative_to(checkout)) for t, _ in planned]
    if not changed:
        return None
    r = _git(checkout, "add", "--", *changed)
    if r.returncode != 0:
        raise UserError(f"--apply {checkout}: git add failed: {r.stderr.strip()}")
    r = _git(checkout, "commit", "--quiet", "--signoff", "-F", "-", stdin=message)
    if r.returncode != 0:
        raise UserError(f"--apply {checkout}: git commit failed: {(r.stderr or r.stdout).strip()}")
    return _git(checkout, "rev-parse", "HEAD").stdout.strip()
