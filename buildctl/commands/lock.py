"""Pin every repository of every board to one commit, in one kas-compatible lock file.

`buildctl lock PRODUCT` writes <product>.lock.yml (kas `overrides: repos: <id>: commit:`);
boards pin minimums, the lock takes one commit per repository for the whole matrix.
`--update` moves every branch to its current head and prints what changed (old -> new, commit
count). `--check` exits 1 when the lock is stale or a board bypasses it.
Reference mirrors (--repo-ref-dir, like KAS_REPO_REF_DIR) make it work air-gapped.
"""
from __future__ import annotations

from rich.markup import escape

from buildctl.commands._common import add_json_flag, console, print_json
from buildctl.commands._product import add_product_args, open_product, repo_cache
from buildctl.compose import lockfile
from buildctl.compose.locking import check_lock, resolve_lock
from buildctl.errors import EXIT_PROBLEMS


def register(sub) -> None:
    p = sub.add_parser("lock", help="pin every repo of the matrix in one lock file", description=__doc__)
    add_product_args(p, boards=False, variant=False)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--update", action="store_true", help="move every branch to its current head")
    g.add_argument("--check", action="store_true", help="exit 1 if the lock is stale or bypassed")
    p.add_argument("--offline", action="store_true", help="never fetch; use mirrors and the cache")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    product = open_product(args)
    path = args.lock or lockfile.default_path(product)
    old = lockfile.load(path) if path.exists() else None
    cache = repo_cache(args, offline=args.offline, product=product)
    if args.check:
        items = check_lock(product, old, cache)
        if args.json:
            print_json({"lock": str(path), "stale": [vars(i) for i in items]})
        else:
            con = console()
            for i in items:
                board = f" (board {i.board})" if i.board != "*" else ""
                con.print(f"[red]stale[/] {escape(i.repo)}{escape(board)}: {escape(i.message)}")
            if not items:
                con.print(f"[green]ok[/] {path} matches the manifests")
        return EXIT_PROBLEMS if items else 0
    new, changes = resolve_lock(product, cache, old, path, update=args.update)
    lockfile.save(new)
    if args.json:
        print_json({"lock": str(path), "changes": [vars(c) for c in changes]})
    else:
        con = console()
        for c in changes:
            old_s = c.old[:12] if c.old else "(new)"
            count = f" ({c.commits} commits)" if c.old else ""
            con.print(f"{c.repo}: {old_s} -> {c.new[:12]}{count}")
        con.print(f"[green]wrote[/] {path} ({len(new.repos)} repos, {len(changes)} changed)")
    return 0
