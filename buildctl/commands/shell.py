"""Open a shell in a board's build environment, the way `buildctl build` runs it.

Same builder image, mounts, caches, user and environment as the build, in the board's build
directory (`<out>/<board>-<variant>/work/build`) with the OE build environment sourced (`kas
shell`: the repositories are checked out first when they are not yet, as kas does). Without
-c: an interactive shell ($SHELL on the host runtime, bash in the builder image); with -c CMD:
runs CMD there (bitbake, devtool, runqemu, bitbake-getvar ...) and exits with its exit code.
Nothing is built unless CMD builds it.
"""
from __future__ import annotations

import sys

from buildctl.commands._common import path_arg
from buildctl.commands._product import add_product_args, repo_ref_dir


def add_session_args(p) -> None:
    """What `shell` and `getvar` share with `build`: where the board lives and runs."""
    add_product_args(p, boards=False)
    p.add_argument("--runtime", choices=("docker", "podman", "host"),
                   help="where to run (default: the product's runtime, else docker)")
    p.add_argument("--image", metavar="TAG", help="builder image (default: as for build)")
    p.add_argument("--out", type=path_arg, metavar="DIR",
                   help="the build's output directory (default: ./out/<product>)")


def session_args(args, boards: list[str]):
    from buildctl.builder.api import BuildArgs
    from buildctl.builder.runtime import check_image
    from buildctl.commands._product import check_series

    return BuildArgs(product=args.product, boards=boards, variant=args.variant, mode="session",
                     runtime=args.runtime, image=check_image(args.image), out=args.out,
                     series=check_series(args.series),
                     lock=args.lock, repo_ref_dir=repo_ref_dir(args),
                     cache_root=args.settings.cache_root)


def register(subparsers) -> None:
    p = subparsers.add_parser("shell", help="a shell in a board's build environment (kas shell)",
                              description=__doc__)
    add_session_args(p)
    p.add_argument("--board", "-b", required=True, metavar="B", help="the board")
    p.add_argument("-c", "--command", metavar="CMD",
                   help="run CMD in the build environment instead of an interactive shell")
    p.set_defaults(func=run)


def run(args) -> int:
    from buildctl.builder.session import Session
    from buildctl.errors import UserError

    if args.command is not None and not args.command.strip():
        raise UserError("-c: empty command")
    session = Session(session_args(args, [args.board]))
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    return session.shell(session.jobs[0], args.command, tty)
