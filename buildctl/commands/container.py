"""Build or name the builder image (kas + BitBake host tools, non-root build user).

`buildctl container build` works without any registry: it makes a Debian base with
debootstrap from the mirror in this host's apt sources, imports it with `docker import` and
builds buildctl/data/containers/Dockerfile on top. The tag is a hash of the inputs, so a second run with
unchanged inputs does nothing. `buildctl container tag` prints the tag a build would use.
"""
from __future__ import annotations

from buildctl.commands._common import add_json_flag, console, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("container", help="build or name the builder image",
                              description=__doc__)
    sub = p.add_subparsers(dest="container_cmd", metavar="ACTION")
    sub.required = True
    b = sub.add_parser("build", help="build the builder image (registry-less)", description=__doc__)
    t = sub.add_parser("tag", help="print the builder image tag for the current inputs",
                       description=__doc__)
    for q in (b, t):
        q.add_argument("--profile", default="scarthgap", choices=("scarthgap", "minimal"),
                       help="package profile (minimal: what tests need)")
        add_json_flag(q)
    b.add_argument("--mirror", metavar="URL", help="Debian mirror (default: from apt's sources)")
    b.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    b.set_defaults(func=run_build)
    t.set_defaults(func=run_tag)


def run_tag(args) -> int:
    from buildctl.builder.image import ImageSpec

    spec = ImageSpec(profile=args.profile)
    if args.json:
        print_json({"tag": spec.tag(), "inputs": spec.inputs_hash(), "profile": args.profile})
    else:
        print(spec.tag())
    return 0


def run_build(args) -> int:
    import sys

    from buildctl.builder.image import ImageSpec, ensure_image
    from buildctl.builder.runtime.docker import docker_client

    con = console(stderr=True)
    spec = ImageSpec(profile=args.profile)
    client = docker_client(timeout=1800)
    result = ensure_image(client, spec, mirror=args.mirror, force=args.force,
                          log=lambda m: con.print(f"[dim]{m}[/]"))
    data = {"tag": result.tag, "image_id": result.image_id, "built": result.built,
            "seconds": result.seconds, "profile": args.profile}
    if args.json:
        print_json(data)
    else:
        state = "built" if result.built else "up to date"
        print(f"{result.tag} {state} ({result.image_id[:19]})", file=sys.stdout)
    return 0
