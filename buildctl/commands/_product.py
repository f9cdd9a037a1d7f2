"""Arguments and loading shared by the verbs that take a PRODUCT manifest."""
from __future__ import annotations

import re
from pathlib import Path

from buildctl.commands._common import path_arg
from buildctl.errors import UserError

SERIES = re.compile(r"[a-z][a-z0-9_-]{0,40}")  # Yocto release code names: scarthgap, wrynose


def add_product_args(p, *, boards: bool = True, variant: bool = True) -> None:
    p.add_argument("product", type=path_arg, help="product manifest (products/<name>.yml)")
    if boards:
        p.add_argument("--board", "-b", action="append", metavar="BOARD",
                       help="only this board (repeatable; default: every board of the product)")
    if variant:
        p.add_argument("--variant", help="variant (default: the product's default_variant)")
    p.add_argument("--series", help="build for another release series than the manifest says")
    p.add_argument("--lock", type=path_arg,
                   help="lock file (default: <product>.lock.yml if present)")
    p.add_argument("--repo-ref-dir", type=path_arg, default=None,
                   help="local reference mirrors of the repositories (default: KAS_REPO_REF_DIR)")


def repo_ref_dir(args) -> Path | None:
    """--repo-ref-dir, else the KAS_REPO_REF_DIR the command line read at start."""
    settings = getattr(args, "settings", None)
    return args.repo_ref_dir or (settings.repo_ref_dir if settings else None)


def repo_cache(args, *, offline: bool, product=None):
    """The git access for a verb, with the cache and mirrors the command line was given (and,
    with the product, the credentials its private repositories need)."""
    from buildctl.repos import RepoCache

    settings = getattr(args, "settings", None)
    kw = {"cache_dir": settings.git_cache} if settings else {}
    if product is not None:
        kw["auth"] = git_auth(product, settings)
    return RepoCache(ref_dir=repo_ref_dir(args), offline=offline, **kw)


def git_auth(product, settings):
    """How the product's private repositories are reached with the caller's agent and helper."""
    from buildctl.layers.gitauth import GitAuth

    return GitAuth.for_product(product, agent_socket=getattr(settings, "ssh_auth_sock", None),
                               credential_helper=getattr(settings, "git_credential_helper", None),
                               home=getattr(settings, "home", None))


def check_series(series: str | None) -> str | None:
    if series is not None and not SERIES.fullmatch(series):
        raise UserError(f"--series: {series!r} is not a release series name (e.g. scarthgap)")
    return series


def open_product(args):
    from buildctl.manifest import load_product

    series = check_series(getattr(args, "series", None))
    product = load_product(args.product)
    if series:
        product = product.with_series(series)
    return product


def open_lock(args, product):
    from buildctl.compose import lockfile

    return lockfile.find(product, args.lock)
