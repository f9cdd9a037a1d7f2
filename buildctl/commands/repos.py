"""Run a command in every repository of a product, each at its pinned commit.

  buildctl repos PRODUCT [--board B ...] [--lock FILE] [--out DIR] [--keep-going] -- CMD [ARG...]

The commit is the lock's (<product>.lock.yml when present), else the manifest's pin, else the
branch head or tag. Each repository is checked out afresh under <out>/repos/<id> (default
./out/<product>/repos), borrowing the git cache's objects: the user's work trees and the
build's checkouts are never touched. CMD runs there (no shell: use `sh -c '...'` for one) with
BUILDCTL_REPO_ID, BUILDCTL_REPO_COMMIT, BUILDCTL_REPO_PATH, BUILDCTL_REPO_URL,
BUILDCTL_REPO_BRANCH and BUILDCTL_REPO_BOARDS in its environment; its output lines are
prefixed with the repository id. A repository pinned at two commits by different boards (no
lock) is run once per commit (<id>@<commit>).

Exit codes: 0 the command succeeded everywhere, 1 it failed somewhere (the summary names
where; without --keep-going the remaining repositories are not run), 2 usage.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from buildctl.commands._common import path_arg
from buildctl.commands._product import add_product_args


def register(subparsers) -> None:
    p = subparsers.add_parser("repos", help="run a command in every pinned repository",
                              description=__doc__,
                              usage="buildctl repos PRODUCT [options] -- CMD [ARG...]",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_product_args(p, variant=False)
    p.add_argument("--out", type=path_arg, metavar="DIR",
                   help="output directory; checkouts go to DIR/repos (default: ./out/<product>)")
    p.add_argument("--keep-going", "-k", action="store_true",
                   help="run in every repository even after a failure")
    p.add_argument("--offline", action="store_true",
                   help="never fetch: use the git cache and reference mirrors as they are")
    p.set_defaults(func=run, cmd=[])
    p.parse_known_args = _command_after_dashes(p.parse_known_args)


def _command_after_dashes(parse):
    """Everything after the first `--` is the command, options included (argparse alone would
    take a `-c` of the command for an option of ours, or refuse arguments after options)."""
    def parse_known_args(args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        cmd: list[str] = []
        if "--" in args:
            i = args.index("--")
            args, cmd = args[:i], args[i + 1:]
        ns, extra = parse(args, namespace)
        ns.cmd = cmd
        return ns, extra
    return parse_known_args


def run(args) -> int:
    from buildctl.commands._product import open_lock, open_product, repo_cache
    from buildctl.errors import EXIT_PROBLEMS, UserError
    from buildctl.pinned.foreach import foreach
    from buildctl.pinned.pins import product_pins

    argv = args.cmd
    if not argv or not argv[0].strip():  # `-- ""` too: not a command to run everywhere
        raise UserError("repos: no command given (buildctl repos PRODUCT -- CMD ...)")
    product = open_product(args)
    boards = product.select_boards(args.board)
    cache = repo_cache(args, offline=args.offline)
    pins = product_pins(product, boards, open_lock(args, product), cache)
    scratch = (args.out or Path.cwd() / "out" / args.product.stem) / "repos"
    results = foreach(pins, lambda p: cache.ensure_commit(p.repo, p.commit), argv, scratch,
                      keep_going=args.keep_going)
    failed = [r for r in results if r.exit_code is not None and not r.ok or r.error]
    skipped = [r for r in results if r.exit_code is None and not r.error]
    if not failed:
        print(f"repos: {argv[0]} succeeded in {len(results)} repositories", file=sys.stderr)
        return 0
    what = ", ".join(f"{r.key} ({r.error or f'exit {r.exit_code}'})" for r in failed)
    rest = f"; {len(skipped)} not run (--keep-going runs them)" if skipped else ""
    print(f"repos: {argv[0]} failed in {len(failed)} of {len(results)} repositories: "
          f"{what}{rest}", file=sys.stderr)
    return EXIT_PROBLEMS
