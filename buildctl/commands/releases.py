"""Published releases, found on Artifactory by their properties (AQL).

  buildctl releases list --product FILE [--to NAME] [--board B] [--version V] [--json]

Searches the target's release repository (else its deploy repository) for files whose
properties say product=<the product's name> (and board/version when given), and lists each
version with its boards. Credentials come from the manifest's env:/file: references.
Exit codes: 0 (also when nothing is found), 1 the server failed, 2 usage.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from buildctl.commands._common import add_json_flag, console, print_json
from buildctl.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser("releases", help="list releases published to Artifactory",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["list"])
    p.add_argument("--product", type=Path, required=True, metavar="FILE")
    p.add_argument("--to", metavar="NAME", help="the Artifactory target (default: the only one)")
    p.add_argument("--board", metavar="B", help="only releases with this board")
    p.add_argument("--version", metavar="V", help="only this version")
    add_json_flag(p)
    p.set_defaults(func=run)


def aql_query(repo: str, product: str, board: str | None, version: str | None) -> str:
    crit = {"repo": repo, "type": "file", "@product": product}
    if board:
        crit["@board"] = board
    if version:
        crit["@version"] = version
    return (f"items.find({json.dumps(crit, sort_keys=True)})"
            '.include("repo","path","name","sha256","created","property")')


def run(args) -> int:
    from buildctl.manifest import load_product
    from buildctl.publish.artifactory import Artifactory
    from buildctl.publish.http import Client
    from buildctl.publish.targets import targets_of

    product = load_product(args.product)
    arts = {n: t for n, t in targets_of(product).items() if t.type == "artifactory"}
    if args.to:
        if args.to not in arts:
            raise UserError(f"--to {args.to}: no artifactory target in {args.product}")
        target = arts[args.to]
    elif len(arts) == 1:
        target = next(iter(arts.values()))
    elif arts:
        raise UserError(f"{args.product}: several artifactory targets in publish:; "
                        "name one with --to")
    else:
        raise UserError(f"{args.product}: publish: has no artifactory target")
    repo = target.options.get("release_repository") or target.options["repository"]
    client = Client()
    try:
        r = Artifactory(target, client).call(
            "POST", "api/search/aql", headers={"Content-Type": "text/plain"},
            body=aql_query(repo, product.name, args.board, args.version).encode())
    finally:
        client.close()
    releases: dict[str, dict] = {}
    for row in r.json().get("results", []):
        props: dict[str, list[str]] = {}
        for p in row.get("properties", []):
            props.setdefault(p["key"], []).append(p.get("value"))
        version = (props.get("version") or ["?"])[0]
        rel = releases.setdefault(version, {"product": product.name, "version": version,
                                            "repository": row["repo"], "boards": set(),
                                            "files": 0, "git_revision": None})
        rel["files"] += 1
        rel["boards"].update(props.get("board", []))
        rel["git_revision"] = rel["git_revision"] or (props.get("git.revision") or [None])[0]
    rows = [{**v, "boards": sorted(v["boards"])} for _, v in sorted(releases.items())]
    if args.json:
        print_json(rows)
    else:
        con = console()
        if not rows:
            con.print(f"no published releases of {product.name} in {repo}")
        for v in rows:
            con.print(f"{v['product']} {v['version']}: {', '.join(v['boards'])} "
                      f"({v['files']} files in {v['repository']})")
    return 0
