"""Write one plain kas project file per board (every repo pinned; builds with `kas build` too).

The product's lock file (<product>.lock.yml, see `buildctl lock`) wins over commits pinned in
the manifests, so every board of the matrix gets the same commit of a shared repository.
"""
from __future__ import annotations


from buildctl.commands._common import add_json_flag, console, path_arg, print_json
from buildctl.commands._product import add_product_args, open_lock, open_product, repo_cache
from buildctl.compose import device_types, render_board, write_board
from buildctl.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("compose", help="write per-board kas project files", description=__doc__)
    add_product_args(p)
    p.add_argument("--out", type=path_arg, help="output directory (required unless --explain)")
    p.add_argument("--explain", action="store_true",
                   help="write nothing; print the device types each board's artifacts will carry "
                        "(the manifest's, else what its layers compute)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    product = open_product(args)
    lock = open_lock(args, product)
    boards = product.select_boards(args.board)
    variant = product.variant(args.variant)
    cache = repo_cache(args, offline=True)
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
    # every board is rendered before anything is written under --out: a board that fails
    # leaves no half-composed output behind
    rendered = [render_board(product, b.name, variant.name, args.out, lock=lock, head_of=cache.head)
                for b in boards]
    results = [write_board(r) for r in rendered]
    if args.json:
        print_json([{"board": c.board, "machine": c.machine, "variant": c.variant,
                     "kas_file": str(c.kas_file), "repos": c.repos} for c in results])
    else:
        con = console()
        for c in results:
            con.print(f"[green]wrote[/] {c.kas_file}  ({c.machine}, {c.variant})")
    return 0
