"""`buildctl release delta --from OLD --to NEW`: the delta artifacts of two bundles (the
`release` verb's `delta` sub-verb; the job is buildctl/release/delta.py)."""
from __future__ import annotations

from pathlib import Path

from buildctl.commands._common import console, print_json
from buildctl.errors import UserError


def run_delta_cmd(args) -> int:
    from buildctl.release.delta import DeltaRun, run_delta

    if args.paths:
        raise UserError(f"release delta: unexpected argument {args.paths[0]} "
                        "(use --from OLD --to NEW)")
    if args.delta_old is None or args.delta_new is None:
        raise UserError("release delta: give both --from OLD_BUNDLE and --to NEW_BUNDLE")
    new = Path(args.delta_new)
    out = args.out or new.parent / f"{new.name}-deltas"
    con = console(stderr=True)
    show = (lambda b: None) if args.json else (lambda b: con.print(f"release delta {b}"))
    report = run_delta(DeltaRun(old=Path(args.delta_old), new=new, out=Path(out),
                                boards=list(args.board), signing_key=args.signing_key), show)
    if args.json:
        print_json(report)
        return 0
    out_con = console()
    for f in report["boards"]:
        out_con.print(f"{f['dir']}: {delta_line(f)}")
    for b in report["skipped"]:
        out_con.print(f"{b}: in only one of the two bundles, no delta")
    out_con.print(f"deltas {report['from']} -> {report['to']}: {report['out']}")
    return 0


def delta_line(f: dict) -> str:
    """One line of a delta's figures (release.delta.DeltaFigures as a dict)."""
    return (f"{f['artifact']}: delta {_size(f['delta_size'])} vs full {_size(f['full_size'])} "
            f"({f['ratio']:.1%}), written in {f['write_seconds']:.1f} s, applies in "
            f"{f['apply_seconds']:.1f} s{'' if f['signed'] else ' (unsigned)'}")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
