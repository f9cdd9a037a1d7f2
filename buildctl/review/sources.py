"""The two sides of a review: two products, two lock files, or two git revisions of a product
(its manifests read with git at each revision, into a temporary directory)."""
from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from buildctl.compose import lockfile
from buildctl.compose.lockfile import Lock
from buildctl.errors import UserError
from buildctl.layers.gitfs import GitError, git
from buildctl.manifest import yamlsrc
from buildctl.manifest.model import Product

PRODUCTS, LOCKS, REVISIONS = "products", "locks", "revisions"


@dataclass
class Side:
    label: str  # what the user named: a file or a revision
    product: Product | None  # None: two locks without --product (repositories only)
    lock: Lock | None
    revision: str | None = None  # the commit, in revisions mode
    top: Path | None = None  # the repository holding the manifests, in revisions mode


def _kind(path: Path) -> str:
    # the bounded reader the manifests and locks are read with: a deep or exploding document
    # is named here, not a RecursionError in a plain safe_load
    data, _ = yamlsrc.load(path)
    return "lock" if isinstance(data, dict) and "overrides" in data else "product"


def _load(path: Path, series: str | None) -> Product:
    from buildctl.manifest import load_product

    product = load_product(path)
    return product.with_series(series) if series else product


def open_sides(a: str, b: str, product: Path | None, series: str | None,
               tmp: Path) -> tuple[str, Side, Side]:
    """(mode, side A, side B); tmp: where revisions are exported (the caller removes it)."""
    pa, pb = Path(a), Path(b)
    if pa.is_file() and pb.is_file():
        ka, kb = _kind(pa), _kind(pb)
        if ka != kb:
            raise UserError(f"diff: {a} is a {ka} and {b} a {kb}: compare two products or two "
                            "lock files")
        if ka == "product":
            if product is not None:
                raise UserError("--product: only with two lock files or two git revisions")
            sides = []
            for p in (pa, pb):
                prod = _load(p, series)
                sides.append(Side(str(p), prod, lockfile.find(prod)))
            return PRODUCTS, sides[0], sides[1]
        prod = _load(product, series) if product is not None else None
        return LOCKS, Side(a, prod, lockfile.load(pa)), Side(b, prod, lockfile.load(pb))
    for name, p in ((a, pa), (b, pb)):
        if p.exists() and not p.is_file():
            raise UserError(f"diff: {name} is a directory, not a manifest or a lock file")
    if product is None:
        missing = a if not pa.is_file() else b
        raise UserError(f"diff: {missing}: no such file (for git revisions, name the product: "
                        "--product products/<name>.yml)")
    return REVISIONS, _at_revision(product, a, tmp / "a", series), \
        _at_revision(product, b, tmp / "b", series)


def _top(product: Path) -> Path:
    try:
        out = git(product.resolve().parent, "rev-parse", "--show-toplevel")
    except GitError as exc:
        raise UserError(f"--product {product}: not in a git repository ({exc.reason})") from None
    return Path(out.stdout.strip())


def _at_revision(product: Path, rev: str, dest: Path, series: str | None) -> Side:
    if not product.is_file():
        raise UserError(f"--product {product}: no such file")
    top = _top(product)
    if rev.startswith("-"):
        raise UserError(f"diff: {rev!r} is not a git revision")
    r = git(top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}",
            check=False)
    if r.returncode != 0:
        raise UserError(f"diff: {rev} is not a revision of {top}")
    commit = r.stdout.strip()
    rel = PurePosixPath(product.resolve().relative_to(top).as_posix())
    shown = git(top, "show", f"{commit}:{rel}", check=False)
    if shown.returncode != 0:
        raise UserError(f"diff: {rel} does not exist at {rev}")
    data, _ = yamlsrc.loads(shown.stdout, Path(f"{rev}:{rel}"))  # bounded, as the manifests
    boards_dir = data.get("boards_dir", "../machines") if isinstance(data, dict) else "../machines"
    wanted = [str(rel.parent)]
    bdir = os.path.normpath(str(rel.parent / str(boards_dir)))
    if not bdir.startswith(".."):
        wanted.append(bdir)
    archive = git(top, "archive", "--format=tar", commit, "--", *wanted, text=False, check=False)
    if archive.returncode != 0:
        raise UserError(f"diff: cannot read {', '.join(wanted)} at {rev}")
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    try:
        prod = _load(dest / rel, series)
        lock = lockfile.find(prod)
    except UserError as exc:  # named as git names a file at a revision: REV:path
        raise UserError(str(exc).replace(f"{dest.resolve()}/", f"{rev}:")
                        .replace(f"{dest}/", f"{rev}:")) from None
    return Side(f"{rev} ({commit[:12]})", prod, lock, revision=commit, top=top)
