"""Build every board of a product in the pinned builder container, with shared caches.

Runs kas + bitbake per board (several at once with --jobs, CPU threads split between them),
a fetch phase with network and the build without it when the product is hermetic, and writes
a JSON report per board and per build under --out. PRODUCT is a product manifest or a plain
kas project file. Exit code: 0 all boards succeeded, 1 some failed, 130 interrupted.
"""
from __future__ import annotations

import os
from pathlib import Path

from buildctl.commands._common import add_json_flag, console, path_arg, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("build", help="build a product's boards (kas + bitbake in a container)",
                              description=__doc__)
    p.add_argument("product", type=Path, help="product manifest (products/<name>.yml) or kas file")
    p.add_argument("--board", "-b", action="append", default=[], metavar="B",
                   help="build only this board (repeatable); default: all boards")
    p.add_argument("--variant", metavar="V", help="variant to build (default: the product's)")
    p.add_argument("--series", help="build for another release series than the manifest says")
    p.add_argument("--lock", type=Path, help="lock file (default: <product>.lock.yml if present)")
    p.add_argument("--repo-ref-dir", type=path_arg, default=None,
                   help="git reference mirrors for checkouts (default: KAS_REPO_REF_DIR, else "
                   "beside the downloads)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="jobs run at the same time, one job being one board's kas + bitbake "
                   "run (default 1); the CPUs (--cpus) are split between them, each job's "
                   "BitBake getting its share as BB_NUMBER_THREADS and PARALLEL_MAKE")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="run `bitbake -n` (no tasks run)")
    mode.add_argument("--parse-only", action="store_true", help="run `bitbake -p` (parse only)")
    p.add_argument("--runtime", choices=("docker", "podman", "host"),
                   help="where to run (default: the product's runtime, else docker)")
    p.add_argument("--image", metavar="TAG", help="builder image (default: the product's, else "
                   "the one `buildctl container build` makes)")
    p.add_argument("--fail-fast", action="store_true", help="stop all boards after the first failure")
    p.add_argument("--out", type=path_arg, metavar="DIR",
                   help="output directory (default: ./out/<product>)")
    p.add_argument("--cpus", type=int, metavar="N", help="CPUs to split (default: all)")
    p.add_argument("--no-preflight", action="store_true",
                   help="skip the pre-flight checks (`buildctl validate`) run before the build")
    p.add_argument("--force-mirror", action="store_true",
                   help="read sstate mirrors filled under another hash server (see cache push)")
    p.add_argument("--no-release", action="store_true",
                   help="do not make a release bundle of the boards that succeeded")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from buildctl.builder.api import BuildArgs, build
    from buildctl.builder.runtime import check_image
    from buildctl.errors import UserError

    if args.jobs < 1:
        raise UserError("--jobs: must be at least 1")
    if args.cpus is not None and args.cpus < 1:
        raise UserError("--cpus: must be at least 1")
    mode = "dry-run" if args.dry_run else "parse-only" if args.parse_only else "build"
    check_image(args.image)  # before pre-flight, compose or any cache directory
    if not args.no_preflight:
        _preflight(args, signs=mode == "build")
    report = build(BuildArgs(product=args.product, boards=args.board, variant=args.variant,
                             jobs=args.jobs, mode=mode, runtime=args.runtime, image=args.image,
                             fail_fast=args.fail_fast, out=args.out, cpus=args.cpus,
                             json=args.json, series=args.series, lock=args.lock,
                             repo_ref_dir=args.repo_ref_dir or args.settings.repo_ref_dir,
                             cache_root=args.settings.cache_root, settings=args.settings,
                             pkcs11_module=args.settings.pkcs11_module,
                             force_mirror=args.force_mirror))
    data = report.to_dict()
    if mode == "build" and not args.no_release:  # the release steps (buildctl/release)
        from buildctl.release.api import release_after_build
        data["release"] = release_after_build(args.product, data, series=args.series,
                                              lock=args.lock,
                                              pkcs11_module=args.settings.pkcs11_module)
    if args.json:
        print_json(data)
    else:
        _summary(data)
    if report.status == "interrupted":
        return 130
    failed_release = data.get("release", {}).get("status") == "failed"
    return 0 if report.status == "succeeded" and not failed_release else 1


def _preflight(args, signs: bool) -> None:
    """Pre-flight first: errors stop the build before any container starts."""
    from rich.markup import escape

    from buildctl.errors import ProblemsFound
    from buildctl.preflight.run import preflight_for_build

    findings = preflight_for_build(args.product, boards=args.board, series=args.series,
                                   lock_path=args.lock,
                                   repo_ref_dir=args.repo_ref_dir or args.settings.repo_ref_dir,
                                   git_cache=args.settings.git_cache, signs=signs,
                                   settings=args.settings,
                                   pkcs11_module=args.settings.pkcs11_module)
    errors = [f for f in findings if f.severity == "error"]
    con = console(stderr=True) if args.json else console()
    for f in findings:
        con.print(f"{f.severity} [bold]{escape(f.board)}[/] "
                  f"{escape(f.location() + ': ' if f.location() else '')}{escape(f.message)} ({f.code})")
    if errors:
        raise ProblemsFound(f"pre-flight found {len(errors)} error(s): nothing was built "
                            "(fix them, or skip the checks with --no-preflight)")


def _summary(data: dict) -> None:
    from rich.table import Table

    con = console()
    t = Table(title=f"{data['product']} ({data['mode']}): {data['status']}", box=None)
    for col in ("board", "status", "time", "tasks run", "sstate match", "message"):
        t.add_column(col)
    for b in data["boards"]:
        bb = b.get("bitbake") or {}
        ss = bb.get("sstate") or {}
        t.add_row(b["board"], b["status"], f"{b['seconds']:.1f}s",
                  str(bb.get("tasks_run") if bb.get("tasks_run") is not None else ""),
                  f"{ss['match_percent']}%" if ss else "", b.get("message", ""))
    con.print(t)
    for b in data["boards"]:  # the failing tool's own words, not only a pointer to a log
        if b["status"] == "failed" and b.get("root_cause"):
            con.print(f"{b['board']}: {b['root_cause']}", markup=False, highlight=False,
                      soft_wrap=True)
    con.print(f"report: {os.path.join(data['out_dir'], 'build-report.json')}; per board: "
              f"{os.path.join(data['out_dir'], '<board>-<variant>', 'report.json')}")
    rel = data.get("release")
    if rel:
        con.print(f"release: {rel['status']}: {rel.get('bundle') or rel.get('message')}")
