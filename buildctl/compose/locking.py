"""Resolve every repository of every board to one commit (the product lock)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from buildctl.compose.kasfile import stack_repos
from buildctl.compose.lockfile import Lock, LockEntry
from buildctl.errors import UserError
from buildctl.manifest.model import Board, Product, Repo
from buildctl.repos import RepoCache


@dataclass
class Change:
    repo: str
    old: str | None
    new: str
    commits: int  # commits between old and new (0 when unknown or new repo)
    branch: str | None


@dataclass
class StaleItem:
    repo: str
    message: str
    board: str = "*"


def matrix_repos(product: Product) -> dict[str, tuple[Repo, dict[str, str | None]]]:
    """Every repo of the matrix with the commit each board pins (None: floating)."""
    out: dict[str, tuple[Repo, dict[str, str | None]]] = {}
    first: dict[str, tuple[str, Repo]] = {}  # repo -> (board, repo entry) that named it first
    for board in product.boards.values():
        for name, (repo, _layers) in stack_repos(product, board).items():
            ref = repo.ref(product.series)
            pins = out.setdefault(name, (repo, {}))[1]
            first.setdefault(name, (board.name, repo))
            if (out[name][0].url or out[name][0].path) != (repo.url or repo.path):
                other_board, other = first[name]
                raise UserError(
                    f"{_where(repo)}: repo {name!r} comes from {repo.url or repo.path} for board "
                    f"{board.name} but from {other.url or other.path} for board {other_board} "
                    f"({_where(other)}): one id, one repository")
            pins[board.name] = ref.commit if ref else None
    return out


def _where(repo: Repo) -> str:
    src = _shown(repo.source)
    return f"{src}:{repo.line}" if repo.line else src


def pin_sites(product: Product) -> dict[str, dict[str, str]]:
    """Where each board's pin of each repo is written: repo -> board -> "file:line"."""
    out: dict[str, dict[str, str]] = {}
    for board in product.boards.values():
        for name, (repo, _layers) in stack_repos(product, board).items():
            src = _shown(repo.source)
            line = repo.line
            if repo.ref(product.series) is not None:
                line = _ref_line(product, board, name, repo) or line
            out.setdefault(name, {})[board.name] = f"{src}:{line}" if line else src
    return out


def _ref_line(product: Product, board: Board, name: str, repo: Repo) -> int | None:
    owner = board if name in board.repos and not board.repos[name].extends else product
    try:
        return owner.line("repos", name, "refs", product.series, "commit") or \
            owner.line("repos", name, "refs", product.series)
    except Exception:  # noqa: BLE001 - a location is a courtesy, never a reason to fail
        return None


def _shown(path) -> str:
    """A manifest path as the user can open it from here."""
    if not path:
        return "?"
    p = os.fspath(path)
    return os.path.relpath(p) if os.path.isabs(p) else p


def resolve_lock(product: Product, cache: RepoCache, old: Lock | None, path, *,
                 update: bool = False) -> tuple[Lock, list[Change]]:
    """The lock for the product's series; with update, every branch moves to its head."""
    new = Lock(path=path, series=product.series)
    changes: list[Change] = []
    for name, (repo, pins) in sorted(matrix_repos(product).items()):
        if repo.is_local:
            continue  # the product's own repo: its commit is the checkout's
        ref = repo.ref(product.series)
        if ref is None:
            continue  # boards that cannot follow the series are reported by validate
        prev = old.repos.get(name) if old else None
        same_source = prev is not None and prev.url == repo.url and prev.branch == ref.branch
        if update and ref.branch:
            commit = cache.branch_head(repo, ref.branch, update=True)
        elif same_source and all(p is None or cache_has_ancestor(cache, repo, p, prev.commit)
                                 for p in pins.values()):
            commit = prev.commit
        else:
            commit = _newest_pin(cache, repo, name, pins, pin_sites(product).get(name, {}))
            if commit is None:
                if ref.tag:
                    commit = cache.tag_commit(repo, ref.tag)
                elif ref.branch:
                    commit = cache.branch_head(repo, ref.branch, update=not cache.offline)
                else:
                    raise UserError(f"repo {name}: nothing to resolve (no branch, tag or commit)")
        new.repos[name] = LockEntry(commit=commit, url=repo.url, branch=ref.branch)
        old_commit = prev.commit if prev else None
        if old_commit != commit:
            n = cache.count_between(repo, old_commit, commit) if old_commit else 0
            changes.append(Change(name, old_commit, commit, n, ref.branch))
    return new, changes


def cache_has_ancestor(cache: RepoCache, repo: Repo, older: str, newer: str) -> bool:
    if older == newer:
        return True
    try:
        cache.ensure_commit(repo, older)
        cache.ensure_commit(repo, newer)
    except UserError:
        return False
    return cache.is_ancestor(repo, older, newer)


def _newest_pin(cache: RepoCache, repo: Repo, name: str, pins: dict[str, str | None],
                sites: dict[str, str] | None = None) -> str | None:
    """The pin that contains every other pin (boards pin minimums; the lock takes the newest)."""
    uniq = sorted({p for p in pins.values() if p})
    if not uniq:
        return None
    if len(uniq) == 1:
        return uniq[0]
    for cand in uniq:
        if all(cache_has_ancestor(cache, repo, p, cand) for p in uniq):
            return cand
    sites = sites or {}
    who = []
    for c in uniq:
        boards = sorted(b for b, p in pins.items() if p == c)
        files = sorted({sites[b] for b in boards if b in sites})
        who.append(f"{c[:12]} by {', '.join(boards)}" + (f" ({', '.join(files)})" if files else ""))
    raise UserError(f"repo {name}: boards pin commits on diverging histories: {'; '.join(who)}; "
                    "pin one commit that contains the others")


def check_lock(product: Product, lock: Lock | None, cache: RepoCache | None) -> list[StaleItem]:
    """Why the lock does not describe the manifests (empty list: it does)."""
    if lock is None:
        return [StaleItem("*", "no lock file: run `buildctl lock`")]
    items: list[StaleItem] = []
    if lock.series and lock.series != product.series:
        items.append(StaleItem("*", f"lock is for series {lock.series}, product says {product.series}"))
    matrix = matrix_repos(product)
    for name, (repo, pins) in sorted(matrix.items()):
        if repo.is_local or repo.ref(product.series) is None:
            continue
        ref = repo.ref(product.series)
        entry = lock.repos.get(name)
        if entry is None:
            items.append(StaleItem(name, "not in the lock"))
            continue
        if entry.url != repo.url:
            items.append(StaleItem(name, f"lock has url {entry.url}, manifests say {repo.url}"))
        if entry.branch != ref.branch:
            items.append(StaleItem(name, f"lock has branch {entry.branch}, manifests say {ref.branch}"))
        for board, pin in sorted(pins.items()):
            if pin and pin != entry.commit and not (cache and cache_has_ancestor(cache, repo, pin, entry.commit)):
                site = pin_sites(product).get(name, {}).get(board)
                items.append(StaleItem(name, f"board pins {pin[:12]}"
                                             + (f" ({site})" if site else "")
                                             + f", which the locked {entry.commit[:12]} does not "
                                             "contain: the board bypasses the lock", board=board))
        if cache and ref.branch:
            try:
                cache.ensure_commit(repo, entry.commit)
                on = cache.branch_contains(repo, ref.branch, entry.commit)
            except UserError:
                on = None
            if on is False:
                items.append(StaleItem(name, f"locked {entry.commit[:12]} is not on branch {ref.branch}"))
    for name in sorted(set(lock.repos) - set(matrix)):
        items.append(StaleItem(name, "locked but no board uses it"))
    return items
