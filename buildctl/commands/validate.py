"""Check the whole layer stack of every board before anyone waits for bitbake.

Reads each layer's configuration straight from git objects at the pinned commits (a local
`path:` repository without a pinned commit from its work tree, as the build uses it) and
reports, for every board at once: layers not compatible with the series, unmet LAYERDEPENDS,
a MACHINE or DISTRO no layer defines, bbappends that match no recipe, floating refs, Mender
settings that cannot work and variables assigned twice with different values, and pins of
signed repositories that no allowed signer signed (verified by git against the product's keys). Mender values
the manifest leaves out are the ones the board's layers set. A repository that cannot be read
is reported once with the boards it affects. Exit 1 when an error was found, 0 otherwise
(warnings alone do not fail). `buildctl build` runs the same checks first.
"""
from __future__ import annotations

import time

from rich.markup import escape

from buildctl.commands._common import add_json_flag, console, print_json
from buildctl.commands._product import add_product_args, open_lock, open_product, repo_cache
from buildctl.compose import device_types
from buildctl.errors import EXIT_PROBLEMS
from buildctl.preflight.run import relative_to_cwd, validate_product, with_import_origins


def register(sub) -> None:
    p = sub.add_parser("validate", help="pre-flight checks of every board's layer stack",
                       description=__doc__)
    add_product_args(p, variant=False)
    p.add_argument("--offline", action="store_true", help="never fetch; use mirrors and the cache")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    t0 = time.perf_counter()
    product = open_product(args)
    lock = open_lock(args, product)
    cache = repo_cache(args, offline=args.offline, product=product)
    boards = product.select_boards(args.board)
    findings = with_import_origins(relative_to_cwd(validate_product(product, boards, lock, cache)))
    types = device_types.explain(product, boards, lock, cache)
    errors = [f for f in findings if f.severity == "error"]
    elapsed = time.perf_counter() - t0
    if args.json:
        print_json({"product": product.name, "series": product.series,
                    "boards": [b.name for b in boards], "ok": not errors,
                    "seconds": round(elapsed, 3), "findings": [f.to_dict() for f in findings],
                    "device_types": [t.as_dict() for t in types]})
    else:
        con = console()
        for f in findings:
            colour = "red" if f.severity == "error" else "yellow"
            loc = f.location()
            con.print(f"[{colour}]{f.severity}[/] [bold]{escape(f.board)}[/] "
                      f"{escape(loc + ': ' if loc else '')}{escape(f.message)} [dim]({f.code})[/]")
        for t in types:
            con.print(f"[dim]{escape(device_types.describe(t))}[/]")
        warn = len(findings) - len(errors)
        summary = (f"{len(boards)} boards, series {product.series}: {len(errors)} errors, "
                   f"{warn} warnings ({elapsed:.2f} s)")
        con.print(("[red]" if errors else "[green]") + summary + "[/]")
    return EXIT_PROBLEMS if errors else 0
