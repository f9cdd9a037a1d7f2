"""What changed between two sides, per board: repositories moved (with the upstream commits
between the pins, from git), BitBake variables the manifests set (from the manifest ->
variable table, as compose writes them), boards added or removed."""
from __future__ import annotations

from dataclasses import dataclass, field

from buildctl.compose import localconf
from buildctl.errors import UserError
from buildctl.layers.gitfs import git
from buildctl.manifest import bitbake_vars
from buildctl.manifest.bitbake_vars import Context
from buildctl.manifest.model import Board, Product, Repo
from buildctl.pinned.pins import board_pins
from buildctl.repos import RepoCache
from buildctl.review.sources import Side

ALL = "*"  # the one "board" of a diff of two locks without a product
MAX_SUBJECTS = 200

FORWARD, BACKWARD, DIVERGED, UNRELATED, UNKNOWN = (
    "forward", "backward", "diverged", "unrelated", "unknown")


@dataclass
class Move:
    """One repository going from one commit to another, with the commits in between."""

    id: str
    url: str
    old: str
    new: str
    relation: str = UNKNOWN  # forward | backward | diverged | unrelated | unknown
    count: int = 0  # commits new has that old has not (dropped ones for backward)
    subjects: list[str] = field(default_factory=list)  # newest first
    dropped: int = 0  # commits of old that new no longer has (backward, diverged)
    dropped_subjects: list[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "url": self.url, "old": self.old, "new": self.new,
                "relation": self.relation, "count": self.count, "subjects": self.subjects,
                "dropped": self.dropped, "dropped_subjects": self.dropped_subjects,
                "note": self.note}


@dataclass
class VarChange:
    var: str
    old: str | None  # None: not set before
    new: str | None  # None: no longer set

    def to_dict(self) -> dict:
        return {"var": self.var, "old": self.old, "new": self.new}


@dataclass
class BoardChanges:
    board: str
    status: str  # changed | unchanged | added | removed
    moved: list[Move] = field(default_factory=list)
    repos_added: dict[str, str] = field(default_factory=dict)  # id -> commit
    repos_removed: dict[str, str] = field(default_factory=dict)
    variables: list[VarChange] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"board": self.board, "status": self.status,
                "repos": {"moved": [m.to_dict() for m in self.moved],
                          "added": self.repos_added, "removed": self.repos_removed},
                "variables": [v.to_dict() for v in self.variables]}


@dataclass
class Review:
    mode: str
    a: str
    b: str
    variant: str | None
    boards: list[BoardChanges] = field(default_factory=list)
    product_commits: Move | None = None  # revisions mode: the manifests' own history

    @property
    def added(self) -> list[str]:
        return [b.board for b in self.boards if b.status == "added"]

    @property
    def removed(self) -> list[str]:
        return [b.board for b in self.boards if b.status == "removed"]

    def moves(self) -> list[tuple[Move, list[str]]]:
        """Each distinct move once, with the boards it concerns."""
        seen: dict[tuple[str, str, str], tuple[Move, list[str]]] = {}
        for b in self.boards:
            for m in b.moved:
                seen.setdefault((m.id, m.old, m.new), (m, []))[1].append(b.board)
        return sorted(seen.values(), key=lambda x: (x[0].id, x[0].old))

    def changed(self) -> bool:
        return any(b.status != "unchanged" for b in self.boards)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "a": self.a, "b": self.b, "variant": self.variant,
                "boards_added": self.added, "boards_removed": self.removed,
                "changed": self.changed(),
                "product_commits": self.product_commits.to_dict() if self.product_commits else None,
                "boards": {b.board: b.to_dict() for b in self.boards}}


# -- variables --------------------------------------------------------------------------------
def _key(var: str, op: str) -> str:
    return var if op == "=" else f"{var} {op}"


def variables(product: Product, board: Board, variant_name: str | None) -> dict[str, str]:
    """The BitBake variables the manifests set for one board, as compose writes them: the
    table's rows (kas keys, local.conf sections, kas env) and the free local_conf of product,
    variant and board, the more specific winning."""
    variant = product.variant(variant_name)
    out: dict[str, str] = {}
    c = Context(product, board, variant)
    for row in bitbake_vars.BINDINGS:
        if row.where == bitbake_vars.KAS_KEY and row.render:
            value = row.render(c)
            if value is not None:
                out[_key(row.var, row.op)] = str(value)
    for name in sorted(secs := localconf.sections(product, board, variant)):
        for a in secs[name]:
            key = _key(a.var, a.op)
            if a.op in ("=", ":=", "?=", "??=") or key not in out:
                out[key] = a.value.strip()
            else:
                out[key] = f"{out[key]} {a.value.strip()}"
    for var, value in localconf.kas_env(product, board, variant).items():
        out.setdefault(var, "(from the build's environment)" if value is None else value)
    return out


def _var_changes(old: dict[str, str], new: dict[str, str]) -> list[VarChange]:
    return [VarChange(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]


# -- repositories -----------------------------------------------------------------------------
def _subjects(g, rng: str) -> tuple[int, list[str]]:
    r = git(g, "log", "--format=%s", rng, check=False)
    if r.returncode != 0:
        return 0, []
    lines = r.stdout.splitlines()
    return len(lines), lines[:MAX_SUBJECTS]


def describe_move(cache: RepoCache | None, repo: Repo | None, m: Move) -> Move:
    """The relation of the two pins and the commits between them, from git."""
    if cache is None or repo is None:
        m.note = "no repository to read the commits from"
        return m
    try:
        g = cache.ensure_commit(repo, m.old)
        if cache.ensure_commit(repo, m.new) != g:
            raise UserError("the two commits are in different repositories")
    except UserError as exc:
        m.note = f"commits not readable: {exc}"
        return m
    return relate(g, m)


def _is_ancestor(g, old: str, new: str) -> bool:
    return git(g, "merge-base", "--is-ancestor", old, new, check=False).returncode == 0


def relate(g, m: Move) -> Move:
    """Fill in how m.new relates to m.old in the git directory g, and the commits between."""
    fwd = _is_ancestor(g, m.old, m.new)
    back = not fwd and _is_ancestor(g, m.new, m.old)
    base = git(g, "merge-base", m.old, m.new, check=False)
    shallow = (g / "shallow").is_file()
    if fwd:
        m.relation = FORWARD
        m.count, m.subjects = _subjects(g, f"{m.old}..{m.new}")
    elif back:
        m.relation = BACKWARD
        m.dropped, m.dropped_subjects = _subjects(g, f"{m.new}..{m.old}")
        m.note = f"moved backwards: {m.dropped} commit(s) of the old pin are no longer included"
    elif base.returncode == 0 and base.stdout.strip():
        m.relation = DIVERGED
        m.count, m.subjects = _subjects(g, f"{m.old}..{m.new}")
        m.dropped, m.dropped_subjects = _subjects(g, f"{m.new}..{m.old}")
        m.note = (f"histories diverged at {base.stdout.strip()[:12]}: {m.dropped} commit(s) of "
                  "the old pin are not in the new one")
    else:
        m.relation = UNRELATED
        m.note = "unrelated history: the two pins share no commit" + (
            f" within the shallow history of {g}" if shallow else "")
    return m


def _pins(side: Side, board: Board | None,
          cache: RepoCache | None) -> dict[str, tuple[str, Repo | None, str]]:
    """id -> (commit, repo, url) of one board (local path: repos left out: their commit is
    the product's own revision)."""
    if side.product is None or board is None:
        entries = side.lock.repos if side.lock else {}
        return {k: (e.commit, None, e.url or "") for k, e in entries.items()}
    pins = board_pins(side.product, board, side.lock, cache, local=False)
    return {k: (p.commit, p.repo, p.url) for k, p in pins.items()}


def _repo_for(cache_repo: Repo | None, url: str, name: str) -> Repo | None:
    if cache_repo is not None:
        return cache_repo
    if not url:
        return None
    return Repo(name=name, url=url, path=None, refs={}, layers=())


def review(mode: str, a: Side, b: Side, *, boards: list[str] | None, variant: str | None,
           cache: RepoCache | None) -> Review:
    pa, pb = a.product, b.product
    names_a = list(pa.boards) if pa else [ALL]
    names_b = list(pb.boards) if pb else [ALL]
    universe = names_a + [n for n in names_b if n not in names_a]
    if boards:
        unknown = [n for n in boards if n not in universe]
        if unknown:
            raise UserError(f"--board: {unknown[0]!r} is a board of neither side "
                            f"(boards: {', '.join(universe)})")
        universe = [n for n in universe if n in boards]
    for side in (a, b):
        if variant and side.product and variant not in side.product.variants:
            raise UserError(f"--variant: {variant!r} is not a variant of {side.label} "
                            f"({', '.join(side.product.variants)})")
    out = Review(mode, a.label, b.label, variant or (pb.default_variant if pb else None))
    if a.top is not None and a.revision and b.revision and a.revision != b.revision:
        out.product_commits = relate(a.top, Move(a.top.name, str(a.top), a.revision, b.revision))
    described: dict[tuple[str, str, str], Move] = {}
    for name in universe:
        ba = pa.boards.get(name) if pa else None
        bb = pb.boards.get(name) if pb else None
        if name != ALL and ba is None:
            out.boards.append(BoardChanges(name, "added"))
            continue
        if name != ALL and bb is None:
            out.boards.append(BoardChanges(name, "removed"))
            continue
        ch = BoardChanges(name, "unchanged")
        old, new = _pins(a, ba, cache), _pins(b, bb, cache)
        for rid in sorted(set(old) | set(new)):
            if rid not in old:
                ch.repos_added[rid] = new[rid][0]
            elif rid not in new:
                ch.repos_removed[rid] = old[rid][0]
            elif old[rid][0] != new[rid][0]:
                key = (rid, old[rid][0], new[rid][0])
                if key not in described:
                    repo = _repo_for(new[rid][1], new[rid][2], rid)
                    described[key] = describe_move(cache, repo,
                                                   Move(rid, new[rid][2], key[1], key[2]))
                ch.moved.append(described[key])
        if ba is not None and bb is not None:
            old_variant = out.variant if out.variant in pa.variants else None
            ch.variables = _var_changes(variables(pa, ba, old_variant),
                                        variables(pb, bb, out.variant))
        if ch.moved or ch.repos_added or ch.repos_removed or ch.variables:
            ch.status = "changed"
        out.boards.append(ch)
    return out
