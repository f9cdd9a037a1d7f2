"""Access to layer repositories as git object stores (no work trees).

Where a repository's objects come from, in order:
1. a local reference mirror (``--repo-ref-dir``; the command line defaults it to ``KAS_REPO_REF_DIR``), named the way kas names
   them (``github.com.owner.repo.git``) or after the repo id (``<id>`` / ``<id>.git``);
2. buildctl's own bare clone in the git cache (``~/.cache/buildctl/git``), fetched on demand.
Local repos (``path:``) are read in place. Reference mirrors are only ever read.
Every git command goes through buildctl.layers.gitfs.git (one place that runs git and
classifies its errors, e.g. a repository another user owns).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from buildctl.errors import UserError
from buildctl.layers.gitauth import GitAuth, explain_failure
from buildctl.layers.gitfs import GitError, first_error, git
from buildctl.manifest.model import Repo

DEFAULT_GIT_CACHE = Path("~/.cache/buildctl/git")  # the command line passes BUILDCTL_GIT_CACHE


def qualified_name(url: str) -> str:
    """The directory name kas uses for a repository in KAS_REPO_REF_DIR."""
    u = urlparse(url)
    if u.scheme in ("", "file") and not u.netloc:
        text = u.path
    else:
        text = f"{u.netloc}{u.path}"
    for ch in "@:/*":
        text = text.replace(ch, ".")
    return text.strip(".")


def _git(git_dir: Path, *args: str, check: bool = True, env: dict[str, str] | None = None):
    try:
        return git(git_dir, *args, check=check, env=env)
    except GitError as e:
        raise RepoAccessError(e.reason if e.dubious else str(e), dubious=e.dubious) from None


class RepoAccessError(UserError):
    """A repository, ref or commit that cannot be reached; dubious: git refuses to read the
    repository because another user owns it (not a missing commit)."""

    def __init__(self, message: str, *, dubious: bool = False):
        super().__init__(message)
        self.dubious = dubious


@dataclass
class RepoCache:
    cache_dir: Path = field(default_factory=lambda: DEFAULT_GIT_CACHE.expanduser())
    ref_dir: Path | None = None
    offline: bool = False
    auth: GitAuth | None = None  # private repositories: SSH host keys, agent, HTTPS tokens
    _dirs: dict[str, Path] = field(default_factory=dict)
    _known: set[tuple[str, str]] = field(default_factory=set)
    _heads: dict[str, str] = field(default_factory=dict)

    # -- locating ---------------------------------------------------------------------------
    def _reference(self, repo: Repo) -> Path | None:
        if not self.ref_dir or not repo.url:
            return None
        q = qualified_name(repo.url)
        for cand in (q, q + ".git", q.removesuffix(".git"), repo.name, repo.name + ".git"):
            d = self.ref_dir / cand
            for g in (d, d / ".git", d / "repo"):
                if (g / "objects").is_dir() and (g / "HEAD").is_file():
                    return g
        return None

    def git_dir(self, repo: Repo) -> Path:
        """A git directory holding the repository's objects (cloned into the cache if needed)."""
        key = repo.url or str(repo.path)
        if key in self._dirs:
            return self._dirs[key]
        if repo.is_local:
            # Through the work tree, as the build uses it: git applies its ownership rule
            # there (reading the .git directory directly would bypass it).
            d = Path(repo.path)
            if not d.is_dir():
                raise RepoAccessError(f"repo {repo.name}: {d} does not exist")
            try:
                top = git(d, "rev-parse", "--absolute-git-dir", check=False)
            except GitError as e:
                raise RepoAccessError(f"repo {repo.name}: {e.reason}", dubious=True) from None
            if top.returncode != 0:
                raise RepoAccessError(f"repo {repo.name}: {d} is not inside a git repository")
            g = Path(top.stdout.strip())
        else:
            g = self._reference(repo) or _local_url(repo.url) or self._clone(repo)
        self._dirs[key] = g
        return g

    def _clone(self, repo: Repo) -> Path:
        target = self.cache_dir / (qualified_name(repo.url) + ("" if repo.url.endswith(".git") else ".git"))
        if (target / "objects").is_dir():
            return target
        if self.offline:
            raise RepoAccessError(f"repo {repo.name}: no local copy of {repo.url} (offline; "
                                  "give --repo-ref-dir with a mirror)")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        args, env = self._remote(repo)
        try:
            r = git(None, *args, "clone", "--bare", "--quiet", repo.url, str(tmp), env=env,
                    check=False)
        except GitError as exc:
            r = None
            reason = exc.reason
        if r is None or r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            if r is not None:  # git's (or ssh's) most telling line, with what was at hand
                reason = explain_failure(r.stderr, self.auth, repo.url) or "git clone failed"
            raise RepoAccessError(f"repo {repo.name}: cannot clone {repo.url}: {reason}") from None
        tmp.rename(target)
        return target

    # -- queries ----------------------------------------------------------------------------
    def has_commit(self, repo: Repo, sha: str) -> bool:
        key = (str(self.git_dir(repo)), sha)
        if key not in self._known:  # commits never disappear: remember the yeses
            if _git(self.git_dir(repo), "cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode:
                return False
            self._known.add(key)
        return True

    def ensure_commit(self, repo: Repo, sha: str) -> Path:
        g = self.git_dir(repo)
        if self.has_commit(repo, sha):
            return g
        if not repo.is_local and not self.offline and self._writable(g):
            args, env = self._remote(repo)
            _git(g, *args, "fetch", "--quiet", repo.url, "+refs/heads/*:refs/heads/*",
                 "+refs/tags/*:refs/tags/*", check=False, env=env)
            if self.has_commit(repo, sha):
                return g
        raise RepoAccessError(f"repo {repo.name}: commit {sha} not found in {repo.url or repo.path}")

    def _remote(self, repo: Repo) -> tuple[list[str], dict[str, str] | None]:
        """git options and environment for talking to repo's remote (credentials at hand)."""
        if self.auth is None:
            return [], None
        return self.auth.host_git(repo.url)

    def _writable(self, g: Path) -> bool:
        """Only buildctl's own cache is fetched into; mirrors and local repos are read-only."""
        return str(g).startswith(str(self.cache_dir))

    def branch_head(self, repo: Repo, branch: str, *, update: bool = False) -> str:
        """The commit a branch points to (after fetching it, with update=True)."""
        g = self.git_dir(repo)
        if update and not repo.is_local and not self.offline and self._writable(g):
            args, env = self._remote(repo)
            r = _git(g, *args, "fetch", "--quiet", repo.url, f"+refs/heads/{branch}:refs/heads/{branch}",
                     check=False, env=env)
            if r.returncode != 0:
                raise RepoAccessError(f"repo {repo.name}: cannot fetch branch {branch} from "
                                      f"{repo.url}: {first_error(r.stderr) or 'git fetch failed'}")
        for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"):
            r = _git(g, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
            if r.returncode == 0:
                return r.stdout.strip()
        raise RepoAccessError(f"repo {repo.name}: branch {branch!r} not found in {repo.url or repo.path}")

    def tag_commit(self, repo: Repo, tag: str) -> str:
        r = _git(self.git_dir(repo), "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}",
                 check=False)
        if r.returncode != 0:
            raise RepoAccessError(f"repo {repo.name}: tag {tag!r} not found in {repo.url or repo.path}")
        return r.stdout.strip()

    def head(self, repo: Repo) -> str:
        g = str(self.git_dir(repo))
        if g not in self._heads:
            r = _git(self.git_dir(repo), "rev-parse", "HEAD", check=False)
            if r.returncode != 0:
                raise RepoAccessError(f"repo {repo.name}: {repo.path} has no commit yet")
            self._heads[g] = r.stdout.strip()
        return self._heads[g]

    def is_ancestor(self, repo: Repo, older: str, newer: str) -> bool:
        return _git(self.git_dir(repo), "merge-base", "--is-ancestor", older, newer,
                    check=False).returncode == 0

    def count_between(self, repo: Repo, old: str, new: str) -> int:
        r = _git(self.git_dir(repo), "rev-list", "--count", f"{old}..{new}", check=False)
        return int(r.stdout.strip() or 0) if r.returncode == 0 else 0

    def branch_contains(self, repo: Repo, branch: str, sha: str) -> bool | None:
        """Whether sha is on branch; None when the branch is unknown locally."""
        try:
            head = self.branch_head(repo, branch)
        except RepoAccessError:
            return None
        return self.is_ancestor(repo, sha, head)


def _local_url(url: str) -> Path | None:
    """A repository on this file system is read in place (never cloned into the cache)."""
    u = urlparse(url)
    if u.scheme == "file" or (not u.scheme and url.startswith("/")):
        d = Path(u.path)
        for g in (d / ".git", d):
            if (g / "objects").is_dir() and (g / "HEAD").is_file():
                return g
    return None
