"""`buildctl release apps PRODUCT --board B [--variant V] [--build-out DIR | --feed DIR]
[--bundle DIR] [--package P ...] [--format ipk|deb|rpm] [--out DIR] [--json]`

Application updates without an image rebuild: one Mender module-image artifact per application
package (the product's, board's and variant's ``packages:``, e.g. the app layer's
``hello-buildctl``), taken from the build's package feed (OE's ``tmp/deploy/{ipk,deb,rpm}``:
``<build out>/<board>-<variant>/work/build/tmp/deploy`` after ``buildctl build``, or ``--feed``
naming the DEPLOY_DIR of a plain kas build). Each artifact has the package module's type
(``ipk``/``deb``/``rpm``: the package file is the payload, as Mender's published modules take
it; buildctl's distro installs a module of that name that also rolls back), depends on the
image it was built with (``rootfs-image.version`` = the board's artifact name, or the one the
image artifact in ``--bundle`` provides; the board's device types) and provides
``rootfs-image.<package>.version``: a package lives in the root filesystem, so an image update
clears it with ``rootfs-image.*`` (``data-partition.*`` is for what survives image updates).
Signed with ``mender.signing_key`` when the product signs. Output:
``<out>/<product>/<version>/<board>-<variant>/<package>-<version>.mender`` and ``apps.json``
(default out: ./apps), written whole or not at all.
"""
from __future__ import annotations

from pathlib import Path

from buildctl.commands._common import console, print_json
from buildctl.errors import UserError


def add_args(p) -> None:
    p.add_argument("--package", action="append", default=[], metavar="P",
                   help="apps: only this application package (repeatable)")
    p.add_argument("--feed", type=Path, metavar="DIR",
                   help="apps: OE's DEPLOY_DIR holding ipk/, deb/ or rpm/ (one --board)")
    p.add_argument("--bundle", type=Path, metavar="DIR",
                   help="apps: the release bundle whose image the artifacts depend on")
    p.add_argument("--format", choices=("ipk", "deb", "rpm"),
                   help="apps: the feed to use when the build wrote several")


OPTIONS = {"package": "--package", "feed": "--feed", "bundle": "--bundle", "format": "--format"}


def refuse_options(args, subverbs: tuple[str, ...]) -> None:
    """The apps options mean nothing to the other release verbs: say so instead of ignoring."""
    verb = args.target if args.target in subverbs else "PRODUCT"
    for attr, flag in OPTIONS.items():
        if getattr(args, attr, None):
            raise UserError(f"{flag} is an option of `release apps`, not of `release {verb}`")


def run(args) -> int:
    from buildctl.release.apps import AppsArgs, write_board_apps

    if len(args.paths) != 1:
        raise UserError("release apps PRODUCT: expected one product manifest")
    results = write_board_apps(AppsArgs(
        product=args.paths[0], boards=args.board, variant=args.variant,
        build_out=args.build_out, feed=args.feed, bundle=args.bundle, out=args.out,
        packages=args.package, format=args.format))
    if args.json:
        print_json({"boards": [r.to_dict() for r in results]})
        return 0
    out = console()
    for r in results:
        for a in r.artifacts:
            out.print(f"{r.board}-{r.variant}: {a.file} ({a.type}, depends rootfs-image.version "
                      f"{r.image_version}, {'signed' if a.signed else 'unsigned'})")
        out.print(f"{r.board}-{r.variant}: {len(r.artifacts)} artifact(s) in {r.dir}")
    return 0
