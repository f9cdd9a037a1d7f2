"""What changes between two products, two lock files or two git revisions of the manifests.

  buildctl diff A.yml B.yml                          two products (each with its lock)
  buildctl diff A.lock.yml B.lock.yml [--product P]  two locks (boards from P; without it
                                                     all the locks' repositories as board "*")
  buildctl diff HEAD~1 HEAD --product products/demo.yml   two git revisions of the manifests

Per board: the repositories whose pin moved, with the subjects of the upstream commits between
the two pins (read with git from the git cache or --repo-ref-dir mirrors; a pin that moved
backwards or to an unrelated history is said so), repositories added or removed, the BitBake
variables the manifests set (as compose writes them, from the manifest -> variable table, not
a text diff), and boards added or removed. --markdown prints a release-note body, --json the
same data for machines. Not the release bundle diff: that is `buildctl release diff`.

Exit codes: 0 compared (whether or not anything changed), 2 usage or unreadable input.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from buildctl.commands._common import add_json_flag, path_arg, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("diff", help="what a manifest or lock change changes, per board",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A", help="product, lock file or git revision (the old side)")
    p.add_argument("b", metavar="B", help="product, lock file or git revision (the new side)")
    p.add_argument("--product", type=path_arg, metavar="FILE",
                   help="the product whose revisions (or locks) are compared")
    p.add_argument("--board", "-b", action="append", metavar="BOARD",
                   help="only this board (repeatable)")
    p.add_argument("--variant", help="variant whose variables are compared (default: the "
                   "product's default_variant)")
    p.add_argument("--series", help="compare for another release series than the manifests say")
    p.add_argument("--repo-ref-dir", type=path_arg, default=None,
                   help="local reference mirrors of the repositories (default: KAS_REPO_REF_DIR)")
    p.add_argument("--offline", action="store_true",
                   help="never fetch: commits missing from the git cache and mirrors are "
                   "not listed")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a release-note body (Markdown)")
    add_json_flag(fmt)
    p.set_defaults(func=run)


def run(args) -> int:
    from buildctl.commands._product import check_series, repo_cache
    from buildctl.review.changes import review
    from buildctl.review.render import render
    from buildctl.review.sources import open_sides

    series = check_series(args.series)
    cache = repo_cache(args, offline=args.offline)
    with tempfile.TemporaryDirectory(prefix="buildctl-diff-") as tmp:
        mode, a, b = open_sides(args.a, args.b, args.product, series, Path(tmp))
        result = review(mode, a, b, boards=args.board, variant=args.variant, cache=cache)
    if args.json:
        print_json(result.to_dict())
    else:
        print(render(result, "markdown" if args.markdown else "text"), end="")
    return 0
