"""Caches shared between CI runners.

  buildctl cache hashserv PRODUCT --database FILE|URL [--port N] [--read-only] [--bitbake DIR]
      run BitBake's own bitbake-hashserv (from the product's pinned bitbake, exported from the
      git cache, or from --bitbake DIR) on 127.0.0.1 until interrupted. SQLite for one host;
      a database URL uses BitBake's SQLAlchemy backend. --read-only for untrusted jobs.
  buildctl cache stats PRODUCT [--out DIR] [--json]
      per board: how much sstate came from the mirror, from the build reports' Sstate summary.
  buildctl cache push SSTATE_DIR URL [--jobs N] [--dry-run] [--json] [--hashserv ADDR [--force]]
      upload the sstate objects a WebDAV/HTTP mirror lacks (one PROPFIND, else HEAD each; PUT
      the missing ones). With --hashserv (or $BB_HASHSERVE) the mirror records the hash server
      that filled it (.buildctl/hashserv.json) and a push under another server is refused.
  buildctl cache prune [SSTATE_DIR|URL] [--downloads DIR] [--product FILE]
                       (--older-than DAYS | --keep-builds N) [--dry-run] [--json]
      remove the sstate objects (archive, .siginfo, .sig together) and downloads (file and
      .done stamp) no build used for DAYS / none of the last N builds used; refuses while a
      build uses the cache. On a WebDAV mirror URL (--older-than only): the objects stored more
      than DAYS ago (PROPFIND + DELETE).

Exit codes: 0 ok, 1 a push or the server failed (or prune refused: a build uses the cache),
2 usage, 130 interrupted.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from buildctl.commands._common import add_json_flag, console, path_arg, print_json
from buildctl.commands._product import add_product_args


def register(subparsers) -> None:
    p = subparsers.add_parser("cache", help="shared caches: hash server, sstate stats, mirror push",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cache_cmd", metavar="ACTION")
    sub.required = True
    h = sub.add_parser("hashserv", help="run bitbake-hashserv for the runners", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_product_args(h, boards=False, variant=False)
    h.add_argument("--database", required=True, metavar="FILE|URL",
                   help="SQLite file, or an SQLAlchemy URL (postgresql+asyncpg://...)")
    h.add_argument("--port", type=int, default=8686, help="TCP port on 127.0.0.1 (default 8686)")
    h.add_argument("--read-only", action="store_true", help="clients may read, never report")
    h.add_argument("--upstream", metavar="HOST:PORT", help="upstream server to pull hashes from")
    h.add_argument("--bitbake", type=path_arg, metavar="DIR",
                   help="a bitbake tree to run (default: the product's pinned bitbake)")
    h.add_argument("--log", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    h.set_defaults(func=run_hashserv)
    s = sub.add_parser("stats", help="sstate from the mirror, per board", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("product", type=path_arg, help="product manifest (products/<name>.yml)")
    s.add_argument("--out", type=path_arg, metavar="DIR",
                   help="the build's output directory (default: ./out/<product>)")
    add_json_flag(s)
    s.set_defaults(func=run_stats)
    u = sub.add_parser("push", help="upload the sstate objects a mirror lacks", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    u.add_argument("sstate_dir", type=path_arg, metavar="SSTATE_DIR")
    u.add_argument("url", metavar="URL", help="WebDAV / HTTP mirror base URL")
    u.add_argument("--jobs", type=int, default=8, metavar="N", help="parallel requests (default 8)")
    u.add_argument("--user", metavar="NAME", help="basic-auth user (with --password)")
    u.add_argument("--password", metavar="REF", help="the user's password: env:NAME or file:PATH")
    u.add_argument("--dry-run", action="store_true", help="ask the mirror, send nothing")
    u.add_argument("--hashserv", metavar="ADDRESS",
                   help="the hash server the objects were made under (BB_HASHSERVE; default: "
                        "$BB_HASHSERVE when it names a server): recorded on the mirror, and a "
                        "mirror filled under another server is refused")
    u.add_argument("--hashserv-db", metavar="FILE|URL",
                   help="that server's database, recorded with it (a URL's password is not)")
    u.add_argument("--force", action="store_true",
                   help="push to a mirror filled under another hash server, and record ours")
    add_json_flag(u)
    u.set_defaults(func=run_push)
    r = sub.add_parser("prune", help="remove sstate objects and downloads no recent build used",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from buildctl.cache.prune_remote import dir_or_url
    r.add_argument("sstate_dir", type=dir_or_url, metavar="SSTATE_DIR|URL", nargs="?",
                   help="the sstate cache (default: the --product's), or a WebDAV mirror's URL "
                        "(objects stored before the window are deleted)")
    r.add_argument("--downloads", type=path_arg, metavar="DIR",
                   help="also prune this DL_DIR (default with --product: the product's)")
    r.add_argument("--product", type=path_arg, metavar="FILE",
                   help="prune the SSTATE_DIR and DL_DIR this product builds with")
    r.add_argument("--older-than", type=float, metavar="DAYS",
                   help="keep every object a build used within this many days")
    r.add_argument("--keep-builds", type=int, metavar="N",
                   help="keep every object the last N builds used (from the cache's ledger)")
    r.add_argument("--dry-run", action="store_true", help="count, remove nothing")
    add_json_flag(r)
    r.set_defaults(func=run_prune)


def run_hashserv(args) -> int:
    from buildctl.cache.hashserv import (
        HashServConfig,
        HashServer,
        check_database_url,
        check_tree,
        pinned_bitbake,
        shown,
    )
    from buildctl.commands._product import open_product, repo_cache
    from buildctl.errors import UserError

    if not 0 < args.port < 65536:
        raise UserError(f"--port: {args.port} is not a TCP port")
    if "://" in args.database:
        check_database_url(args.database)
    if args.bitbake is not None:
        tree = check_tree(args.bitbake)
    else:
        product = open_product(args)
        tree = pinned_bitbake(product, repo_cache(args, offline=False),
                              args.settings.cache_root / "bitbake")
    database = args.database if "://" in args.database else str(Path(args.database).absolute())
    cfg = HashServConfig(bitbake=tree, database=database, port=args.port,
                         read_only=args.read_only, upstream=args.upstream, log_level=args.log)
    server = HashServer(cfg).start(stdout=None)
    mode = "read-only" if cfg.read_only else "read-write"
    print(f"bitbake-hashserv on {cfg.address} ({mode}, database {shown(database)}); "
          f"BB_HASHSERVE = \"{cfg.address}\"", flush=True)
    try:
        code = server.wait()
    finally:
        server.stop()
    if code not in (0, None, -15):
        err = (server.proc.stderr.read() or "").strip().splitlines() if server.proc else []
        raise UserError(f"bitbake-hashserv exited ({code}): {err[-1] if err else 'no output'}")
    return 0


def run_stats(args) -> int:
    from rich.table import Table

    from buildctl.cache.stats import product_stats
    from buildctl.manifest import load_product

    product = load_product(args.product)
    out = args.out or Path("out") / product.name
    rows = product_stats(out)
    if args.json:
        print_json({"product": product.name, "out": str(out),
                    "boards": [r.to_dict() for r in rows]})
        return 0
    con = console()
    if not rows:
        con.print(f"no Sstate summary in {out}/*/report.json (no finished build yet)")
        return 0
    t = Table(title=f"{product.name}: sstate per board", box=None)
    for col in ("board", "variant", "status", "wanted", "from mirror", "local", "built"):
        t.add_column(col)
    for r in rows:
        t.add_row(r.board, r.variant, r.status, str(r.wanted),
                  f"{r.mirrors} ({r.mirror_percent}%)", str(r.local), str(r.missed))
    con.print(t)
    return 0


def run_push(args) -> int:
    import time

    from buildctl.cache.push import push
    from buildctl.errors import EXIT_PROBLEMS, UserError
    from buildctl.secrets import SecretRef

    if args.jobs < 1:
        raise UserError("--jobs: must be at least 1")
    auth = None
    if args.user or args.password:
        if not (args.user and args.password):
            raise UserError("--user and --password go together")
        try:
            ref = SecretRef.parse(args.password)
        except ValueError as exc:
            raise UserError(f"--password: {exc}") from None
        auth = (args.user, ref.resolve_bytes().decode().strip())
    import os

    from buildctl.cache.marker import HashServIdentity

    address = args.hashserv or os.environ.get("BB_HASHSERVE", "")
    if address in ("", "auto", "none") and args.hashserv_db:
        raise UserError("--hashserv-db needs --hashserv (the server the database belongs to)")
    ident = HashServIdentity.of(address, args.hashserv_db) \
        if address not in ("", "auto", "none") else None
    t0 = time.monotonic()
    result = push(args.sstate_dir, args.url, jobs=args.jobs, dry_run=args.dry_run, auth=auth,
                  hashserv=ident, force=args.force)
    seconds = round(time.monotonic() - t0, 2)
    if args.json:
        print_json({**result.to_dict(), "seconds": seconds, "dry_run": args.dry_run})
    else:
        verb = "would send" if args.dry_run else "sent"
        print(f"{result.objects} objects: {result.present} on the mirror, {verb} {result.sent} "
              f"({result.sent_bytes} bytes), {len(result.failed)} failed, {seconds}s")
        if ident is not None:
            print(f"hash server {ident.describe()}: {result.hashserv} on the mirror")
        for f in result.failed[:20]:
            print(f"failed {f}")
    return EXIT_PROBLEMS if result.failed else 0


def run_prune(args) -> int:
    from buildctl.cache.prune import prune_targets, run
    from buildctl.errors import UserError

    if isinstance(args.sstate_dir, str):  # a mirror URL (cache/prune_remote.py)
        from buildctl.cache.prune_remote import prune_remote

        if args.keep_builds is not None or args.downloads or args.product:
            raise UserError("cache prune URL: a mirror knows when objects were stored, not which "
                            "builds used them: only --older-than applies")
        if args.older_than is None:
            raise UserError("cache prune URL: --older-than DAYS is required")
        result = prune_remote(args.sstate_dir, args.older_than, dry_run=args.dry_run)
        result.root = args.sstate_dir
        return _report_prune(args, [result])
    targets = prune_targets(args.sstate_dir, args.downloads, args.product, args.settings.cache_root)
    results = run(targets, args.older_than, args.keep_builds, dry_run=args.dry_run)
    return _report_prune(args, results)


def _report_prune(args, results) -> int:
    from buildctl.errors import EXIT_PROBLEMS

    if args.json:
        print_json({**results[0].to_dict(), "dry_run": args.dry_run,
                    "targets": [r.to_dict() for r in results]})
    for r in results if not args.json else ():
        verb = "would remove" if args.dry_run else "removed"
        for note in r.notes:
            print(note)
        print(f"{r.root}: {r.objects} {r.kind} objects: {verb} {r.removed} "
              f"({r.removed_bytes} bytes), kept {r.kept}, {len(r.failed)} failed")
        for f in r.failed[:20]:
            print(f"failed {f}")
    return EXIT_PROBLEMS if any(r.failed for r in results) else 0
