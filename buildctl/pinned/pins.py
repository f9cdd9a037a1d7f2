"""Which commit of which repository each board of a product uses: the lock's, else the
manifest's pin, else (floating) the branch head or tag from git; a local ``path:`` repository
is at its work tree's HEAD."""
from __future__ import annotations

from dataclasses import dataclass, field

from buildctl.compose.kasfile import resolve
from buildctl.compose.lockfile import Lock
from buildctl.manifest.model import Board, Product, Repo
from buildctl.repos import RepoCache


@dataclass
class Pinned:
    """One repository at one commit, and the boards that use it so."""

    id: str
    repo: Repo
    commit: str
    branch: str | None = None
    source: str = "lock"  # lock | manifest | branch head | tag | work tree
    boards: list[str] = field(default_factory=list)
    suffix: str = ""  # set when boards use two commits of the repository (no lock)

    @property
    def url(self) -> str:
        return self.repo.url or str(self.repo.path)

    @property
    def key(self) -> str:
        """A name for a directory or an output prefix: the id, with the commit when the boards
        disagree (no lock, boards pinning different commits)."""
        return f"{self.id}@{self.suffix}" if self.suffix else self.id


def board_pins(product: Product, board: Board, lock: Lock | None,
               cache: RepoCache | None, *, local: bool = True) -> dict[str, Pinned]:
    """Repo id -> its pin for one board (cache: resolves floating refs and local HEADs; without
    it those repositories are left out; local=False leaves out every path: repository)."""
    out: dict[str, Pinned] = {}
    for name, rr in resolve(product, board, lock).items():
        if rr.repo.is_local and not local:
            continue
        commit, source = rr.commit, "lock" if lock and lock.commit(name) else "manifest"
        if commit is None and cache is not None:
            if rr.repo.is_local:
                commit, source = cache.head(rr.repo), "work tree"
            elif rr.tag:
                commit, source = cache.tag_commit(rr.repo, rr.tag), "tag"
            elif rr.branch:
                commit, source = cache.branch_head(rr.repo, rr.branch, update=not cache.offline), \
                    "branch head"
        if commit is None:
            continue
        out[name] = Pinned(name, rr.repo, commit, rr.branch, source, [board.name])
    return out


def product_pins(product: Product, boards: list[Board], lock: Lock | None,
                 cache: RepoCache | None) -> list[Pinned]:
    """Every (repository, commit) the boards use, once, in id order."""
    merged: dict[tuple[str, str], Pinned] = {}
    for board in boards:
        for name, p in board_pins(product, board, lock, cache).items():
            have = merged.get((name, p.commit))
            if have:
                have.boards.append(board.name)
            else:
                merged[(name, p.commit)] = p
    out = sorted(merged.values(), key=lambda p: (p.id, p.commit))
    ids = [p.id for p in out]
    for p in out:
        if ids.count(p.id) > 1:  # boards disagree: each commit gets its own directory
            p.suffix = p.commit[:12]
    return out
