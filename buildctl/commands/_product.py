"""Arguments and loading shared by the verbs that take a PRODUCT manifest."""
from __future__ import annotations

import os
from pathlib import Path

from buildctl.compose import lockfile
from buildctl.manifest import load_product
from buildctl.manifest.model import Product


def add_product_args(p, *, boards: bool = True, variant: bool = True) -> None:
    p.add_argument("product", type=Path, help="product manifest (products/<name>.yml)")
    if boards:
        p.add_argument("--board", "-b", action="append", metavar="BOARD",
                       help="only this board (repeatable; default: every board of the product)")
    if variant:
        p.add_argument("--variant", help="variant (default: the product's default_variant)")
    p.add_argument("--series", help="build for another release series than the manifest says")
    p.add_argument("--lock", type=Path, help="lock file (default: <product>.lock.yml if present)")
    p.add_argument("--repo-ref-dir", type=Path, default=os.environ.get("KAS_REPO_REF_DIR") or None,
                   help="local reference mirrors of the repositories (like KAS_REPO_REF_DIR)")


def open_product(args) -> Product:
    product = load_product(args.product)
    if getattr(args, "series", None):
        product = product.with_series(args.series)
    return product


def open_lock(args, product: Product) -> lockfile.Lock | None:
    return lockfile.find(product, args.lock)
