"""Remove a product's build directories, reporting the bytes freed.

  buildctl clean PRODUCT [--board B ...] [--out DIR] [--all] [--dry-run] [--json]

By default each board's BitBake TMPDIR (`<out>/<board>-<variant>/work/build/tmp`: workdirs,
sysroots, unpacked sources) for every variant of the product; with --all the whole board
directories (checkouts, logs, collected deploy outputs, reports). A board directory that a
running build uses, or that is a symbolic link, is skipped with a line saying why (exit 1).
The shared sstate cache and downloads are left alone: see `buildctl cache prune`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from buildctl.commands._common import add_json_flag, path_arg, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("clean", help="remove a product's build directories",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("product", type=path_arg, help="product manifest (products/<name>.yml)")
    p.add_argument("--board", "-b", action="append", metavar="BOARD",
                   help="only this board (repeatable; default: every board of the product)")
    p.add_argument("--out", type=path_arg, metavar="DIR",
                   help="the build's output directory (default: ./out/<product>)")
    p.add_argument("--all", action="store_true",
                   help="remove the whole board directories, not only BitBake's TMPDIR")
    p.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from buildctl.builder.clean import clean
    from buildctl.errors import EXIT_PROBLEMS, UserError
    from buildctl.manifest import load_product

    product = load_product(args.product)
    boards = product.select_boards(args.board)
    out = (args.out or Path.cwd() / "out" / args.product.stem)
    if out.exists() and not out.is_dir():  # a mistyped --out: not "freed 0 bytes"
        raise UserError(f"--out {out}: exists and is not a directory (the build's output "
                        "directory)")
    dirs = [out / f"{b.name}-{v}" for b in boards for v in sorted(product.variants)]
    items = clean(dirs, everything=args.all, dry_run=args.dry_run)
    total = sum(i.bytes for i in items)
    skipped = [i for i in items if i.skipped]
    if args.json:
        print_json({"product": product.name, "out": str(out), "dry_run": args.dry_run,
                    "all": args.all, "freed_bytes": total,
                    "items": [i.to_dict() for i in items if i.paths or i.skipped]})
    else:
        verb = "would free" if args.dry_run else "freed"
        for i in items:
            if i.skipped:
                print(f"skipped {i.skipped}")
            for p in i.paths:
                print(f"{'would remove' if args.dry_run else 'removed'} {p}")
        print(f"{product.name}: {verb} {total} bytes ({_human(total)}) in "
              f"{sum(1 for i in items if i.paths)} board directories"
              + (f", {len(skipped)} skipped" + (" (in use)" if any("in use" in i.skipped
                                                               for i in skipped) else "")
                 if skipped else ""))
    return EXIT_PROBLEMS if skipped else 0


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)
