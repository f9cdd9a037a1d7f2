"""Report what this host lacks for `buildctl build`: container engine, builder image, disk
space and filesystem of the caches, user namespaces, host tools. Exit 1 when an error-level
check fails (warnings alone exit 0).
"""
from __future__ import annotations

from pathlib import Path

from buildctl.commands._common import add_json_flag, console, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="check this host for building", description=__doc__)
    p.add_argument("--runtime", choices=("docker", "podman", "host"), default="docker")
    p.add_argument("--product", type=Path, help="take cache paths and runtime from this product")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from buildctl.builder.api import default_image
    from buildctl.builder.caches import settings_from_manifest
    from buildctl.builder.doctor import run_checks

    cache, runtime, image = None, args.runtime, default_image()
    if args.product:
        from buildctl.builder.jobs import load_target

        target = load_target(args.product.resolve(), [], None, Path("/nonexistent"))
        cache, image = target.cache, target.image or image
        runtime = target.runtime or runtime
    caches = settings_from_manifest(cache, base=args.product.resolve().parent if args.product else None)
    checks = run_checks(caches, runtime, image)
    failed = [c for c in checks if not c.ok and c.severity == "error"]
    if args.json:
        print_json({"ok": not failed, "checks": [c.to_dict() for c in checks]})
    else:
        con = console()
        for c in checks:
            mark = "[green]ok[/]" if c.ok else ("[red]FAIL[/]" if c.severity == "error"
                                                 else "[yellow]warn[/]")
            con.print(f"{mark:>14} {c.name:<18} {c.detail}")
    return 1 if failed else 0
