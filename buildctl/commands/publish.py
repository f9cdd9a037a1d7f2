"""Publish a verified release bundle to the product's targets.

  buildctl publish RELEASE_DIR [--product FILE] [--to NAME ...] [--dry-run] [--json]

RELEASE_DIR is a bundle written by `buildctl release` (release/<product>/<version>). It is
verified first (as `release verify` does); a bundle that fails sends nothing, and so does one
with a board whose image did not pass `buildctl test` (its report in the bundle names the very
image), unless --untested (or --untested-board B for that board). Targets come from
the product manifest's `publish:` (`targets: {NAME: {type: artifactory|webdav|http|s3, ...}}`);
credentials are env:/file: references, resolved only when a request needs them and never
printed. Files already on a target with the right checksum are not sent again, so a rerun
after an interruption finishes the job. --dry-run prints what would be sent.
Exit codes: 0 published everywhere, 1 a target failed or the bundle did not verify, 2 usage.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from buildctl.commands._common import add_json_flag, console, print_json
from buildctl.commands.test import add_untested_flags, untested_of
from buildctl.errors import EXIT_PROBLEMS, UserError


def register(subparsers) -> None:
    p = subparsers.add_parser("publish", help="publish a release bundle (Artifactory, WebDAV, S3)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, metavar="RELEASE_DIR")
    p.add_argument("--product", type=Path, metavar="FILE",
                   help="product manifest (default: the one named in the bundle's release.json)")
    p.add_argument("--to", action="append", default=[], metavar="NAME",
                   help="only this target (repeatable; default: every target)")
    p.add_argument("--key", metavar="PUB", help="public key the provenance must be signed with")
    p.add_argument("--dry-run", action="store_true", help="show what would be sent, send nothing")
    add_untested_flags(p, "publish")
    add_json_flag(p)
    p.set_defaults(func=run)


def product_path(bundle: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    try:
        rel = json.loads((bundle / "release.json").read_text())
        cand = Path(rel["manifests"][0]["path"])
    except (OSError, ValueError, KeyError, IndexError):
        raise UserError(f"{bundle}: cannot tell the product manifest; give --product") from None
    if not cand.is_file():
        raise UserError(f"{bundle}: product manifest {cand} (from release.json) not found; "
                        "give --product")
    return cand


def run(args) -> int:
    from buildctl.manifest import load_product
    from buildctl.publish.api import publish
    from buildctl.publish.targets import choose, targets_of

    if not args.bundle.is_dir():
        raise UserError(f"{args.bundle}: not a directory")
    ppath = product_path(args.bundle, args.product)
    product = load_product(ppath)
    targets = choose(targets_of(product), args.to, str(ppath))
    result = publish(args.bundle, targets, dry_run=args.dry_run, public_key=args.key,
                     untested=untested_of(args))
    if args.json:
        print_json(result.to_dict())
    else:
        con = console()
        for t in result.targets:
            if args.dry_run:
                for r in t.requests:
                    extra = f" ({r['bytes']} bytes)" if "bytes" in r else ""
                    con.print(f"{t.name}: would {r['method']} {r['url']}{extra}")
                continue
            counts: dict[str, int] = {}
            for f in t.files:
                counts[f.action] = counts.get(f.action, 0) + 1
            status = "ok" if t.ok else f"FAILED: {t.error}"
            con.print(f"{t.name} ({t.type} {t.url}): {status}; "
                      + ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
                      + f"; {t.bytes_sent} bytes sent, {t.retries} retries"
                      + (f"; promoted to {t.promoted}" if t.promoted else ""))
    return 0 if result.ok else EXIT_PROBLEMS
