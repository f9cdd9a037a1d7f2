"""Release bundles: turn a build's outputs into one verifiable unit, check it, compare two.

  buildctl release PRODUCT [--board B] [--deploy-dir DIR] [--out DIR]
      collect -> sign -> gate -> sbom -> cve/vex -> bundle -> provenance, for every board (or
      the ones named) from out/<product>/<board>-<variant>/deploy, or from a plain kas deploy
      dir (tmp/deploy/images/<MACHINE>) with --deploy-dir and one --board. The bundle lands in
      <out>/<product>/<version>/ (default ./release), complete or not at all.
      Every board's disk image must have passed `buildctl test` (its devtest-report.json
      beside deploy/, for this very image); the report goes into the bundle. A board whose
      test is missing or failed is named and nothing is written (exit 1) unless --untested
      (or --untested-board B for that board).
  buildctl release verify DIR [--key PUB]
      sums, provenance signature and subjects, gate verdicts, SBOM validity; names the first
      inconsistency (exit 1).
  buildctl release diff A B      changed files, package and licence changes, new CVEs,
                                 reproducibility of two bundles.
  buildctl release cves DIR      CVE counts per status and unpatched CVEs per package, of a
                                 bundle or a deploy dir.
  buildctl release apps PRODUCT --board B [--variant V] [--build-out DIR | --feed DIR]
      [--bundle DIR] [--package P] [--format ipk|deb|rpm] [--out DIR]
      one module-image artifact per application package from the build's package feed (no
      image rebuild): type ipk/deb/rpm, depends on the board's image (rootfs-image.version,
      device type), provides rootfs-image.<package>.version; see buildctl/commands/_release_apps.py.
  buildctl release delta --from OLD --to NEW [--board B] [--out DIR] [--signing-key REF]
      per board in both bundles, a rootfs-delta artifact (xdelta3 VCDIFF of the new root
      filesystem against the old one; depends on the old rootfs-image.checksum) into
      <out>/<board>-<variant>/ (default <NEW>-deltas), with sizes and apply time in
      <out>/delta.json. `release PRODUCT --delta-from OLD` puts them into the new bundle.
All take --json. Exit codes: 0 ok, 1 a check failed or a promised output is missing, 2 usage.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from buildctl.commands import _release_apps as release_apps
from buildctl.commands._common import add_json_flag, console, print_json
from buildctl.commands.test import add_untested_flags, untested_of
from buildctl.errors import EXIT_PROBLEMS, UserError

SUBVERBS = ("verify", "diff", "cves", "apps", "delta")


def register(subparsers) -> None:
    p = subparsers.add_parser("release", help="release bundles: make, verify, diff, cves",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="PRODUCT|verify|diff|cves|apps",
                   help="product manifest, or one of: verify DIR, diff A B, cves DIR, apps PRODUCT")
    p.add_argument("paths", nargs="*", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--board", "-b", action="append", default=[], metavar="B",
                   help="only this board (repeatable; default: every board)")
    p.add_argument("--variant", help="variant (default: the product's default_variant)")
    p.add_argument("--series", help="release for another series than the manifest says")
    p.add_argument("--lock", type=Path, help="lock file (default: <product>.lock.yml if present)")
    p.add_argument("--deploy-dir", type=Path, metavar="DIR",
                   help="a deploy dir from elsewhere (tmp/deploy/images/<MACHINE>; one --board)")
    p.add_argument("--build-out", type=Path, metavar="DIR",
                   help="the build's output dir (default: ./out/<product>)")
    p.add_argument("--out", type=Path, metavar="DIR", help="where bundles go (default: ./release)")
    p.add_argument("--release-key", metavar="REF",
                   help="env:/file: reference or pkcs11: URI of the key that signs the provenance "
                        "(default: the product's mender.signing_key)")
    p.add_argument("--max-cvss", type=float, metavar="SCORE",
                   help="fail on unpatched CVEs scoring above SCORE")
    p.add_argument("--allow-cve", action="append", default=[], metavar="CVE",
                   help="accept this unpatched CVE despite --max-cvss (repeatable)")
    add_untested_flags(p, "release")
    p.add_argument("--key", metavar="PUB", help="verify: public key (PEM path or env:/file:)")
    p.add_argument("--no-validators", action="store_true",
                   help="verify: skip the SBOM validators (minutes for images of thousands of "
                        "packages, see docs/benchmarks.md); sums, provenance and gate still run")
    release_apps.add_args(p)
    p.add_argument("--from", dest="delta_old", type=Path, metavar="OLD",
                   help="delta: the bundle devices run now")
    p.add_argument("--to", dest="delta_new", type=Path, metavar="NEW",
                   help="delta: the bundle to update them to")
    p.add_argument("--delta-from", type=Path, metavar="OLD",
                   help="release: also write each board's delta artifact against bundle OLD")
    p.add_argument("--signing-key", metavar="REF",
                   help="delta: env:/file: reference of the key that signed NEW's artifacts "
                        "(the product's mender.signing_key); needed when they are signed")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.target == "apps":
        return release_apps.run(args)
    release_apps.refuse_options(args, SUBVERBS)
    if args.target == "delta":
        from buildctl.commands._release_delta import run_delta_cmd
        return run_delta_cmd(args)
    if args.target in SUBVERBS:
        want = 2 if args.target == "diff" else 1
        if len(args.paths) != want:
            usage = "diff A B" if want == 2 else f"{args.target} DIR"
            raise UserError(f"release {usage}: expected {want} director{'ies' if want == 2 else 'y'}")
        return {"verify": _verify, "diff": _diff, "cves": _cves}[args.target](args)
    if args.paths:
        raise UserError(f"release PRODUCT: unexpected argument {args.paths[0]}")
    return _release(args)


def _release(args) -> int:
    from buildctl.release.api import ReleaseArgs, spec_from_product
    from buildctl.release.pipeline import run_release

    spec = spec_from_product(ReleaseArgs(
        product=Path(args.target), boards=args.board, variant=args.variant, series=args.series,
        lock=args.lock, deploy_dir=args.deploy_dir, build_out=args.build_out, out=args.out,
        release_key=args.release_key, pkcs11_module=args.settings.pkcs11_module,
        max_cvss=args.max_cvss, allow_cves=tuple(args.allow_cve), delta_from=args.delta_from,
        untested=untested_of(args)))
    con = console(stderr=True)
    show = (lambda board, step: None) if args.json else \
        (lambda board, step: con.print(f"release {board + ': ' if board else ''}{step}"))
    result = run_release(spec, show)
    data = {"bundle": str(result.bundle_dir), "files": result.files, "signed": result.signed,
            "boards": result.boards, "warnings": result.warnings}
    for w in result.warnings:
        con.print(f"warning: {w}")
    if args.json:
        print_json(data)
    else:
        out = console()
        for b in result.boards:
            cves = b["cves"]["counts"] if b["cves"] else {}
            sbom = b["sbom"] or {}
            out.print(f"{b['dir']}: gate {b['gate']['verdict']}, "
                      f"device test {b['test']['verdict']}, "
                      f"{sbom.get('components', 0)} packages ({sbom.get('source', 'no SBOM')}), "
                      f"CVEs {cves or 'not checked'}")
            if b.get("delta"):
                from buildctl.commands._release_delta import delta_line
                out.print(f"  {delta_line(b['delta'])}")
        out.print(f"bundle: {result.bundle_dir} ({result.files} files, provenance "
                  f"{'signed' if result.signed else 'NOT signed'})")
    return 0


def _verify(args) -> int:
    from buildctl.release.verify import verify_bundle

    res = verify_bundle(args.paths[0], args.key, sboms=not args.no_validators)
    if args.json:
        print_json(res.to_dict())
    else:
        con = console()
        for c in res.checks:
            con.print(f"ok: {c}")
        for w in res.warnings:
            con.print(f"warning: {w}")
        if not res.ok:
            con.print(f"FAIL: {res.problem}")
    return 0 if res.ok else EXIT_PROBLEMS


def _diff(args) -> int:
    from buildctl.release.diff import diff_bundles

    d = diff_bundles(args.paths[0], args.paths[1])
    if args.json:
        print_json(d)
        return 0
    con = console()
    for b in d["boards"]:
        f, p = b["files"], b["packages"]
        con.print(f"[bold]{b['board']}[/bold]")
        for k in ("changed", "added", "removed"):
            if f[k]:
                con.print(f"  files {k}: {', '.join(f[k])}")
        for k in ("added", "removed"):
            if p[k]:
                con.print(f"  packages {k}: {', '.join(p[k])}")
        for u in p["upgraded"]:
            con.print(f"  upgraded: {u['name']} {u['from']} -> {u['to']}")
        for u in p["licence_changed"]:
            con.print(f"  licence: {u['name']} {u['from']} -> {u['to']}")
        if b["new_unpatched_cves"]:
            con.print(f"  new unpatched CVEs: {', '.join(b['new_unpatched_cves'])}")
    r = d["reproducibility"]
    con.print(f"reproducibility: {r['verdict']}"
              + (f" (differing: {', '.join(r['differing_files'])})" if r["differing_files"] else ""))
    return 0


def _cves(args) -> int:
    from buildctl.release.cves_report import cves_of

    data = cves_of(args.paths[0])
    if args.json:
        print_json(data)
        return 0
    con = console()
    for b in data["boards"]:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(b["counts"].items()))
        con.print(f"[bold]{b['board']}[/bold] ({b['source']}): {counts}")
        for pkg, ids in b["unpatched"].items():
            con.print(f"  {pkg}: {', '.join(ids)}")
    return 0
