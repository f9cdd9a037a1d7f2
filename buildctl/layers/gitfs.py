"""Read files and list trees of a git repository at a commit, without a work tree.

One `git ls-tree -r` per (repository, commit) gives every path and blob id; blobs are read
through GitPython's persistent `git cat-file --batch` process. Both are cached, so reading the
same layers for many boards costs one listing per pinned commit.
"""
from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import threading
from dataclasses import dataclass, field

import git
from gitdb.exc import BadName, BadObject

__all__ = ["GitFS", "GitTree", "GitReadError", "open_tree", "default_fs", "match_path_glob"]


class GitReadError(Exception):
    """A repository, commit or path that cannot be read (names which)."""


@dataclass
class GitTree:
    """The files of one commit: repo-relative paths (posix) -> blob hex id."""

    repo_path: str
    commit: str
    _blobs: dict[str, str]
    _repo: git.Repo = field(repr=False)
    _dirs: dict[str, list[str]] | None = field(default=None, repr=False)
    _text_cache: dict[str, str] = field(default_factory=dict, repr=False)
    _preloaded: dict[str, bytes] = field(default_factory=dict, repr=False)

    def exists(self, path: str) -> bool:
        path = _norm(path)
        return path in self._blobs or path in self.dirs()

    def is_file(self, path: str) -> bool:
        return _norm(path) in self._blobs

    def read_bytes(self, path: str) -> bytes:
        path = _norm(path)
        sha = self._blobs.get(path)
        if sha is None:
            raise FileNotFoundError(f"{path} not found in {self.repo_path} at {self.commit[:12]}")
        data = self._preloaded.get(sha)
        if data is not None:
            return data
        return self._repo.odb.stream(bytes.fromhex(sha)).read()

    def read_text(self, path: str) -> str:
        path = _norm(path)
        cached = self._text_cache.get(path)
        if cached is None:
            cached = self._text_cache[path] = self.read_bytes(path).decode("utf-8", errors="replace")
        return cached

    def dirs(self) -> dict[str, list[str]]:
        """Directory path ("" = root) -> sorted names of its direct children."""
        if self._dirs is None:
            dirs: dict[str, set[str]] = {"": set()}
            for p in self._blobs:
                parent, _, name = p.rpartition("/")
                while True:
                    dirs.setdefault(parent, set()).add(name)
                    if not parent:
                        break
                    parent, _, name = parent.rpartition("/")
                    if parent in dirs and name in dirs[parent]:
                        break
            self._dirs = {k: sorted(v) for k, v in dirs.items()}
        return self._dirs

    def list_dir(self, path: str = "") -> list[str]:
        """Names directly inside path (files and directories); [] if path is not a directory."""
        return list(self.dirs().get(_norm(path), []))

    def files(self, prefix: str = "") -> list[str]:
        """Every file path under directory prefix ("" = all), sorted."""
        prefix = _norm(prefix)
        if not prefix:
            return sorted(self._blobs)
        pre = prefix + "/"
        return sorted(p for p in self._blobs if p.startswith(pre))

    def glob(self, pattern: str) -> list[str]:
        """Files matching a shell pattern the way glob.glob does (`*` never crosses `/`)."""
        pattern = _norm(pattern)
        # Narrow by the literal directory prefix before matching each path.
        parts = pattern.split("/")
        lit = []
        for part in parts[:-1]:
            if any(c in part for c in "*?["):
                break
            lit.append(part)
        candidates = self.files("/".join(lit)) if lit else self._blobs
        return sorted(p for p in candidates if match_path_glob(pattern, p))


def match_path_glob(pattern: str, path: str) -> bool:
    """Shell-style match per path segment, so `recipes-*/*/*.bb` needs exactly three levels."""
    pp, ps = pattern.split("/"), path.split("/")
    if len(pp) != len(ps):
        return False
    for pat, seg in zip(pp, ps):
        if seg.startswith(".") and not pat.startswith("."):
            return False  # glob does not match hidden names with wildcards
        if not fnmatch.fnmatchcase(seg, pat):
            return False
    return True


_FULL_SHA = re.compile(r"^[0-9a-fA-F]{40}$")


def _is_conf(path: str) -> bool:
    return (path.startswith("conf/") or "/conf/" in path) and path.endswith((".conf", ".inc"))


def _git(repo: str, args: list[str], *, shown, rev: str = "", stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", "-C", repo, *args], input=stdin, capture_output=True)
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip().splitlines()
        detail = f" ({why[0]})" if why else ""
        if rev:
            raise GitReadError(f"{shown}: commit {rev!r} not found{detail}")
        raise GitReadError(f"{shown}: git {args[0]} failed{detail}")
    return proc.stdout


def _cat_blobs(repo: str, shas: list[str]) -> dict[str, bytes]:
    """Contents of many blobs from one `git cat-file --batch` run."""
    out = _git(repo, ["cat-file", "--batch"], shown=repo, stdin=("\n".join(shas) + "\n").encode())
    blobs: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        nl = out.index(b"\n", pos)
        header = out[pos:nl].split()
        pos = nl + 1
        if len(header) != 3:  # "<sha> missing"
            continue
        size = int(header[2])
        blobs[header[0].decode()] = out[pos : pos + size]
        pos += size + 1
    return blobs


def _norm(path: str) -> str:
    return path.strip("/").replace("//", "/") if path not in ("", ".", "/") else ""


class GitFS:
    """Caches repositories and trees; one instance per validate run (or the default one)."""

    def __init__(self) -> None:
        self._repos: dict[str, git.Repo] = {}
        self._trees: dict[tuple[str, str], GitTree] = {}
        self._resolved: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        # Results derived from trees (e.g. LayerInfo) keyed by their caller; cleared with close().
        self.memo: dict[tuple, object] = {}

    def repo(self, repo_path: str | os.PathLike[str]) -> git.Repo:
        key = os.path.realpath(os.fspath(repo_path))
        r = self._repos.get(key)
        if r is None:
            # dict.setdefault is atomic: two threads opening one repository keep the same object.
            r = self._repos.setdefault(key, self._open(key, repo_path))
        return r

    @staticmethod
    def _open(key: str, shown: str | os.PathLike[str]) -> git.Repo:
        try:
            r = git.Repo(key)
        except (git.NoSuchPathError, git.InvalidGitRepositoryError) as e:
            raise GitReadError(f"{shown}: not a git repository") from e
        if not r.bare and os.path.realpath(r.git_dir) == key:
            # A git directory without `core.bare` in its config (e.g. a mirror holding only
            # HEAD, objects and refs): GitPython would run git in the parent directory.
            r.git.update_environment(GIT_DIR=key)
        return r

    def resolve(self, repo_path: str | os.PathLike[str], rev: str) -> str:
        """Full commit id for rev (sha, branch, tag) in the repository."""
        key = (os.path.realpath(os.fspath(repo_path)), rev)
        sha = self._resolved.get(key)
        if sha is None:
            r = self.repo(repo_path)
            try:
                sha = r.commit(rev).hexsha
            except (BadName, BadObject, ValueError, git.GitCommandError) as e:
                why = (str(e).strip().splitlines() or [""])[0]
                raise GitReadError(f"{repo_path}: commit {rev!r} not found ({why})" if why else
                                   f"{repo_path}: commit {rev!r} not found") from e
            self._resolved[key] = sha
        return sha

    def tree(self, repo_path: str | os.PathLike[str], rev: str) -> GitTree:
        path = os.path.realpath(os.fspath(repo_path))
        # A full commit id needs no lookup (ls-tree below fails if it is absent); pinned
        # commits are full ids, so this saves a git process per repository.
        sha = rev.lower() if _FULL_SHA.match(rev) else self.resolve(repo_path, rev)
        key = (path, sha)
        t = self._trees.get(key)
        if t is not None:
            return t
        r = self.repo(repo_path)
        listing = _git(path, ["ls-tree", "-r", "-z", "--full-tree", f"{sha}^{{commit}}"], shown=repo_path, rev=rev)
        blobs: dict[str, str] = {}
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, _, fpath = entry.partition(b"\t")
            _mode, kind, obj = meta.split(b" ")
            if kind == b"blob":
                blobs[fpath.decode("utf-8", "surrogateescape")] = obj.decode()
        t = GitTree(repo_path=path, commit=sha, _blobs=blobs, _repo=r)
        # Configuration files are what layer checks read: fetch them all in one git process
        # instead of one round trip (and a persistent process) each.
        wanted = sorted({b for p, b in blobs.items() if _is_conf(p)})
        if wanted:
            t._preloaded.update(_cat_blobs(path, wanted))
        return self._trees.setdefault(key, t)

    def close(self) -> None:
        for r in self._repos.values():
            r.close()
        self._repos.clear()
        self._trees.clear()
        self.memo.clear()


_default: GitFS | None = None


def default_fs() -> GitFS:
    global _default
    if _default is None:
        _default = GitFS()
    return _default


def open_tree(repo_path: str | os.PathLike[str], rev: str) -> GitTree:
    """The tree of repo_path at rev, cached in the default GitFS."""
    return default_fs().tree(repo_path, rev)
