"""buildctl's one way to talk to git: run a git command (with errors classified once), and
read files and list trees of a repository at a commit without a work tree.

One `git ls-tree -r` per (repository, commit) gives every path and blob id; configuration
files are read in one `git cat-file --batch`, other blobs on demand. Both are cached, so reading
the same layers for many boards costs one listing per pinned commit. A local repository used
as it is on disk (no pinned commit) is read from its work tree instead (WORKTREE).
"""
from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["GitFS", "GitTree", "GitReadError", "GitError", "open_tree", "default_fs",
           "match_path_glob", "git", "git_args", "is_dirty", "WORKTREE"]

GIT_TIMEOUT_S = 300
WORKTREE = "worktree"  # the "commit" of a local repository read as it is on disk
_DUBIOUS = "dubious ownership"


class GitError(Exception):
    """A git command that failed; `reason` is git's first error line (or the classification)."""

    def __init__(self, where: str, reason: str, *, dubious: bool = False):
        self.where = where
        self.reason = reason
        self.dubious = dubious
        super().__init__(f"{where}: {reason}")


class GitReadError(GitError):
    """A repository, commit or path that cannot be read (names which)."""

    def __init__(self, message: str, *, dubious: bool = False):
        where, _, reason = message.partition(": ")
        super().__init__(where, reason, dubious=dubious)


def git_args(repo: str | os.PathLike[str]) -> list[str]:
    """How to point git at repo: a work tree (or a directory inside one) or a git directory,
    including a bare mirror holding only HEAD, objects and refs (no config)."""
    p = Path(repo)
    if not (p / ".git").exists() and (p / "HEAD").is_file() and (p / "objects").is_dir():
        return ["git", f"--git-dir={p}"]
    return ["git", "-C", str(p)]


def _env() -> dict[str, str]:
    return dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", LC_ALL="C")


def dubious_message(repo: str | os.PathLike[str]) -> str:
    return (f"git refuses to read {repo}: it belongs to another user (\"dubious ownership\"); "
            f"if you trust it, run `git config --global --add safe.directory {repo}`")


def git(repo: str | os.PathLike[str] | None, *args: str, check: bool = True,
        stdin: bytes | None = None, timeout: int = GIT_TIMEOUT_S,
        text: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run git on repo (None: no repository, e.g. clone). With check, a failure raises
    GitError naming the repository and git's first error line; a repository git refuses
    because another user owns it raises GitError(dubious=True) whatever check says.
    env: variables added to git's environment (credentials' plumbing, a verifier's keyring)."""
    cmd = (git_args(repo) if repo is not None else ["git"]) + list(args)
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout,
                              env={**_env(), **(env or {})})
    except subprocess.TimeoutExpired:
        raise GitError(str(repo or "git"), f"git {args[0]} timed out after {timeout} s") from None
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0 and _DUBIOUS in err:
        raise GitError(str(repo), dubious_message(repo), dubious=True)
    if proc.returncode != 0 and check:
        raise GitError(str(repo or "git"), first_error(err) or f"git {args[0]} failed")
    if text:
        return subprocess.CompletedProcess(proc.args, proc.returncode,
                                           proc.stdout.decode(errors="replace"), err)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, err)


def first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("fatal:", "error:")):
            return ln
    return lines[-1] if lines else ""


def is_dirty(path: str | os.PathLike[str]) -> bool:
    """Whether a local repository's work tree differs from its HEAD (changed, staged or
    untracked files not ignored): a build of it is not a build of any commit."""
    out = git(path, "status", "--porcelain", "--untracked-files=normal").stdout
    return bool(out.strip())


@dataclass
class GitTree:
    """The files of one commit: repo-relative paths (posix) -> blob hex id."""

    repo_path: str
    commit: str
    _blobs: dict[str, str]  # path -> blob id ("" in a work tree: read from disk)
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
        data = self._preloaded.get(sha) if sha else None
        if data is not None:
            return data
        if self.commit == WORKTREE:
            return (Path(self.repo_path) / path).read_bytes()
        return git(self.repo_path, "cat-file", "blob", sha, text=False).stdout

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
    """Configuration and global classes: what the layer checks and the base-configuration
    evaluation (layers/settings.py) read."""
    if path.endswith((".conf", ".inc")) and (path.startswith("conf/") or "/conf/" in path):
        return True
    return path.endswith((".bbclass", ".inc")) and (
        path.startswith(("classes/", "classes-global/")) or "/classes/" in path
        or "/classes-global/" in path)


def _git(repo: str, args: list[str], *, shown, rev: str = "", stdin: bytes | None = None) -> bytes:
    """git for tree reads: a failure becomes GitReadError naming what was shown to the user."""
    try:
        return git(repo, *args, stdin=stdin, text=False).stdout
    except GitError as e:
        if e.dubious:
            raise GitReadError(f"{shown}: {e.reason}", dubious=True) from None
        detail = f" ({e.reason})" if e.reason else ""
        if rev:
            raise GitReadError(f"{shown}: commit {rev!r} not found{detail}") from None
        raise GitReadError(f"{shown}: git {args[0]} failed{detail}") from None


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
    """Caches trees; one instance per validate run (or the default one)."""

    def __init__(self) -> None:
        self._trees: dict[tuple[str, str], GitTree] = {}
        self._resolved: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        # Results derived from trees (e.g. LayerInfo) keyed by their caller; cleared with close().
        self.memo: dict[tuple, object] = {}

    @staticmethod
    def _check_repo(path: str, shown) -> None:
        if not os.path.isdir(path):
            raise GitReadError(f"{shown}: not a git repository")

    def resolve(self, repo_path: str | os.PathLike[str], rev: str) -> str:
        """Full commit id for rev (sha, branch, tag) in the repository."""
        key = (os.path.realpath(os.fspath(repo_path)), rev)
        sha = self._resolved.get(key)
        if sha is None:
            self._check_repo(key[0], repo_path)
            try:
                r = git(key[0], "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
            except GitError as e:
                raise GitReadError(f"{repo_path}: {e.reason}", dubious=e.dubious) from None
            if r.returncode != 0:
                probe = git(key[0], "rev-parse", "--git-dir", check=False)
                if probe.returncode != 0:
                    raise GitReadError(f"{repo_path}: not a git repository")
                raise GitReadError(f"{repo_path}: commit {rev!r} not found")
            sha = self._resolved[key] = r.stdout.strip()
        return sha

    def tree(self, repo_path: str | os.PathLike[str], rev: str) -> GitTree:
        path = os.path.realpath(os.fspath(repo_path))
        if rev == WORKTREE:
            return self.worktree(repo_path)
        # A full commit id needs no lookup (ls-tree below fails if it is absent); pinned
        # commits are full ids, so this saves a git process per repository.
        sha = rev.lower() if _FULL_SHA.match(rev) else self.resolve(repo_path, rev)
        key = (path, sha)
        t = self._trees.get(key)
        if t is not None:
            return t
        self._check_repo(path, repo_path)
        listing = _git(path, ["ls-tree", "-r", "-z", "--full-tree", f"{sha}^{{commit}}"], shown=repo_path, rev=rev)
        blobs: dict[str, str] = {}
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, _, fpath = entry.partition(b"\t")
            _mode, kind, obj = meta.split(b" ")
            if kind == b"blob":
                blobs[fpath.decode("utf-8", "surrogateescape")] = obj.decode()
        t = GitTree(repo_path=path, commit=sha, _blobs=blobs)
        # Configuration files are what layer checks read: fetch them all in one git process
        # instead of one round trip each.
        wanted = sorted({b for p, b in blobs.items() if _is_conf(p)})
        if wanted:
            t._preloaded.update(_cat_blobs(path, wanted))
        return self._trees.setdefault(key, t)

    def worktree(self, repo_path: str | os.PathLike[str]) -> GitTree:
        """The files of a local repository as they are on disk (what a build of the path uses):
        tracked files with their uncommitted changes and untracked files git does not ignore;
        every file when the directory is not in a git repository."""
        path = os.path.realpath(os.fspath(repo_path))
        key = (path, WORKTREE)
        t = self._trees.get(key)
        if t is not None:
            return t
        if not os.path.isdir(path):
            raise GitReadError(f"{repo_path}: directory not found")
        files: list[str] = []
        try:
            out = git(path, "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                      check=False, text=False)
            inside = out.returncode == 0
        except GitError as e:
            raise GitReadError(f"{repo_path}: {e.reason}", dubious=e.dubious) from None
        if inside:
            files = [f.decode("utf-8", "surrogateescape") for f in out.stdout.split(b"\0") if f]
        else:
            for root, dirs, names in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                rel = os.path.relpath(root, path)
                files += [n if rel == "." else f"{rel}/{n}".replace(os.sep, "/") for n in names]
        blobs = {f: "" for f in files if os.path.isfile(os.path.join(path, f))}
        return self._trees.setdefault(key, GitTree(repo_path=path, commit=WORKTREE, _blobs=blobs))

    def close(self) -> None:
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
