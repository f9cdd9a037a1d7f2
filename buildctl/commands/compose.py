"""Write one plain kas project file per board (every repo pinned; builds with `kas build` too).

The product's lock file (<product>.lock.yml, see `buildctl lock`) wins over commits pinned in
the manifests, so every board of the matrix gets the same commit of a shared repository.
"""
from __future__ import annotations

from pathlib import Path

from buildctl.commands._common import add_json_flag, console, print_json
from buildctl.commands._product import add_product_args, open_lock, open_product
from buildctl.compose import compose_board, device_types
from buildctl.errors import UserError
from buildctl.repos import RepoCache


def register(sub) -> None:
    p = sub.add_parser("compose", help="write per-board kas project files", description=__doc__)
    add_product_args(p)
    p.add_argument("--out", type=Path, help="output directory (required unless --explain)")
    p.add_argument("--explain", action="store_true",
                   help="write nothing; print what each board's devices will get (device types)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    product = open_product(args)
    lock = open_lock(args, product)
    boards = product.select_boards(args.board)
    variant = product.variant(args.variant)
    cache = RepoCache(ref_dir=args.repo_ref_dir, offline=True)
    if args.explain:
        types = device_types.explain(product, boards, lock, cache)
        if args.json:
            print_json([t.as_dict() for t in types])
        else:
            for t in types:
                print(device_types.describe(t))
        return 0
    if args.out is None:
        raise UserError("compose: --out is required (or give --explain)")
    results = [compose_board(product, b.name, variant.name, args.out, lock=lock, head_of=cache.head)
               for b in boards]
    if args.json:
        print_json([{"board": c.board, "machine": c.machine, "variant": c.variant,
                     "kas_file": str(c.kas_file), "repos": c.repos} for c in results])
    else:
        con = console()
        for c in results:
            con.print(f"[green]wrote[/] {c.kas_file}  ({c.machine}, {c.variant})")
    return 0
