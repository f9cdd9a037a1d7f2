"""Application updates: one module-image artifact per application package, from the build's
package feed, without rebuilding the image.

Where things come from:
- the packages: the product's, the board's and the variant's ``packages:`` (what the image
  installs besides the image recipe's own set: the app layers' services such as
  ``hello-buildctl``), or the ``--package`` names among them;
- the package files: OE's package feed, ``<DEPLOY_DIR>/{ipk,deb,rpm}/<arch>/`` (under a
  ``buildctl build`` that is ``<build out>/<board>-<variant>/work/build/tmp/deploy``), in the
  format PACKAGE_CLASSES gave the build (the feed that exists; ``--format`` when several do);
- the image each artifact is for: ``rootfs-image.version`` of the board's image, which
  meta-mender sets to MENDER_ARTIFACT_NAME (the product's ``release.artifact_name``), read from
  the release bundle's ``.mender`` instead when one is given; device types from the board.

What is written, per package (``<out>/<product>/<version>/<board>-<variant>/``):
``<package>-<version>.mender``, type ``ipk``/``deb``/``rpm`` (the name of the package update
module: the payload is the package file itself, as Mender's published modules take it),
``depends`` ``rootfs-image.version: <image>`` (and the board's device types), ``provides``
``rootfs-image.<package>.version: <package version>`` and clears ``rootfs-image.<package>.*``:
the package lives in the root filesystem, so a full image update (which clears
``rootfs-image.*``) must also drop what the device says about the package; ``data-partition.*``
is Mender's name for software that survives image updates, which a package is not. Signed with
the product's ``mender.signing_key`` when it has one. Plus ``apps.json`` (what was written).
The directory is written whole or not at all.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from buildctl.errors import UserError
from buildctl.ota.mender import (ArtifactError, ArtifactSpec, DataSource, load_private_key,
                                 load_public_key, module_payload, read_artifact, write_artifact)
from buildctl.release.bundle import sha256_file

# feed directory (OE's DEPLOY_DIR_<FMT> under DEPLOY_DIR) -> (PACKAGE_CLASSES entry, file suffix)
FORMATS: dict[str, tuple[str, str]] = {
    "ipk": ("package_ipk", ".ipk"),
    "deb": ("package_deb", ".deb"),
    "rpm": ("package_rpm", ".rpm"),
}
# what a package file starts with: ipk and deb are ar archives (opkg-build can also write a
# gzipped tar ipk), rpm has its lead's magic
MAGIC: dict[str, tuple[tuple[bytes, ...], str]] = {
    "ipk": ((b"!<arch>\n", b"\x1f\x8b"), "an ipk package (an ar archive or a gzipped tar)"),
    "deb": ((b"!<arch>\n",), "a deb package (an ar archive)"),
    "rpm": ((b"\xed\xab\xee\xdb",), "an rpm package (no rpm lead)"),
}
# OE's package file names: <pkg>_<ver>_<arch>.ipk|deb (package names hold no "_": OE's
# package QA allows [a-z0-9.+-] only), <pkg>-<ver>-<rel>.<arch>.rpm
_DEBLIKE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9.+-]*)_(?P<version>[^_]+)_(?P<arch>[^_]+)$")
_RPM = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+-[^-]+)\.(?P<arch>[^.]+)$")
SOFTWARE_FS = "rootfs-image"  # where the packages live (see the module docstring)


@dataclass(frozen=True)
class FeedPackage:
    name: str
    version: str
    arch: str
    format: str
    path: Path


@dataclass
class AppsArgs:
    product: Path
    boards: list[str] = field(default_factory=list)
    variant: str | None = None
    build_out: Path | None = None  # a `buildctl build` output dir (default ./out/<product>)
    feed: Path | None = None  # OE's DEPLOY_DIR of a plain kas build (holding ipk/, deb/, rpm/)
    bundle: Path | None = None  # a release bundle: the image each artifact depends on
    out: Path | None = None  # artifacts land in <out>/<product>/<version>/<board>-<variant>
    packages: list[str] = field(default_factory=list)  # only these (default: every app package)
    format: str | None = None  # ipk | deb | rpm, when the feed holds several


@dataclass
class AppArtifact:
    package: str
    version: str
    arch: str
    type: str
    file: str  # relative to the board's output directory
    artifact_name: str
    device_types: list[str]
    depends: dict[str, str]
    provides: dict[str, str]
    clears_provides: list[str]
    signed: bool
    size: int = 0
    sha256: str = ""


@dataclass
class BoardApps:
    board: str
    variant: str
    dir: Path
    format: str
    feed: Path
    image_version: str
    artifacts: list[AppArtifact]

    def to_dict(self) -> dict:
        return {"board": self.board, "variant": self.variant, "dir": str(self.dir),
                "format": self.format, "feed": str(self.feed),
                "image": {"rootfs-image.version": self.image_version},
                "artifacts": [asdict(a) for a in self.artifacts]}


def parse_name(fmt: str, filename: str) -> tuple[str, str, str] | None:
    """(package, version, arch) from an OE package file name, or None."""
    suffix = FORMATS[fmt][1]
    if not filename.endswith(suffix):
        return None
    m = (_RPM if fmt == "rpm" else _DEBLIKE).match(filename[: -len(suffix)])
    return (m["name"], m["version"], m["arch"]) if m else None


def find_feed(deploy: Path, fmt: str | None, board: str) -> tuple[str, Path]:
    """The feed's format and directory under DEPLOY_DIR (one clear line when there is none)."""
    have = [f for f in FORMATS if (deploy / f).is_dir()]
    if fmt is not None:
        if fmt not in have:
            raise UserError(f"{board}: no {fmt} package feed in {deploy} "
                            f"(found: {', '.join(have) or 'none'})")
        return fmt, deploy / fmt
    if not have:
        raise UserError(f"{board}: no package feed in {deploy} (OE writes "
                        "ipk/, deb/ or rpm/ there when the image is built; --feed names "
                        "another DEPLOY_DIR)")
    if len(have) > 1:
        raise UserError(f"{board}: {deploy} holds {' and '.join(have)} feeds: say which one the "
                        "image installs with --format (the first of PACKAGE_CLASSES)")
    return have[0], deploy / have[0]


def scan_feed(fmt: str, feed: Path) -> dict[str, list[FeedPackage]]:
    """Every package file of the feed (all architecture directories), by package name."""
    out: dict[str, list[FeedPackage]] = {}
    for path in sorted(feed.glob(f"*/*{FORMATS[fmt][1]}")):
        parsed = parse_name(fmt, path.name)
        if parsed and path.is_file():
            name, version, arch = parsed
            out.setdefault(name, []).append(FeedPackage(name, version, arch, fmt, path))
    return out


def app_packages(product, board, variant) -> list[str]:
    """The application packages of one board and variant, in manifest order, once each."""
    out: list[str] = []
    for p in (*product.packages, *board.packages, *variant.packages):
        if p not in out:
            out.append(p)
    return out


def _key_ref(product) -> str | None:
    from buildctl.release.api import _key_ref as ref

    return ref(product)


def image_version_from_bundle(bundle: Path, key: str, board: str,
                              public_pem: bytes | None = None) -> tuple[str, list[str]]:
    """rootfs-image.version and device types of the board's image artifact in a bundle (its
    signature checked with public_pem when the product signs: the artifacts must depend on
    an image that was really released)."""
    menders = sorted((bundle / key).glob("*.mender")) if (bundle / key).is_dir() else []
    if not menders:
        raise UserError(f"--bundle: no {key}/*.mender in {bundle}")
    pub = load_public_key(public_pem, "the product's signing key") if public_pem else None
    try:
        info = read_artifact(menders[0], public_key=pub)
    except ArtifactError as exc:
        text = str(exc)  # the reader's errors name the file already
        raise UserError(f"--bundle: {text if str(menders[0]) in text else f'{menders[0]}: {text}'}"
                        ) from None
    for p in info.payloads:
        if p.type == "rootfs-image" and "rootfs-image.version" in p.provides:
            return p.provides["rootfs-image.version"], list(info.device_types)
    raise UserError(f"--bundle: {menders[0]} provides no rootfs-image.version ({board}'s image)")


def _pick(name: str, feed: dict[str, list[FeedPackage]], where: Path, board: str) -> FeedPackage:
    found = feed.get(name, [])
    if not found:
        raise UserError(f"{board}: package {name} is not in the feed {where}")
    if len(found) > 1:
        listed = ", ".join(p.path.name for p in found)
        raise UserError(f"{board}: package {name} has {len(found)} files in {where} ({listed}): "
                        "remove the stale one")
    return found[0]


def write_board_apps(args: AppsArgs) -> list[BoardApps]:
    from buildctl.manifest import load_product

    product = load_product(args.product)
    if not args.boards:
        raise UserError("release apps: name the board with --board")
    boards = product.select_boards(args.boards)
    var = product.variant(args.variant)
    if args.feed and len(boards) != 1:
        raise UserError("--feed: name the one board it belongs to with --board")
    if args.format and args.format not in FORMATS:
        raise UserError(f"--format: {args.format!r} is not one of {', '.join(FORMATS)}")
    build_out = args.build_out or Path.cwd() / "out" / product.name
    out_root = (args.out or Path.cwd() / "apps") / product.name / product.release.version
    key_ref = _key_ref(product)
    plans = []  # everything is checked before anything is written
    for board in boards:
        bkey = f"{board.name}-{var.name}"
        deploy = args.feed or build_out / bkey / "work" / "build" / "tmp" / "deploy"
        fmt, feed_dir = find_feed(Path(deploy), args.format, board.name)
        feed = scan_feed(fmt, feed_dir)
        wanted = app_packages(product, board, var)
        for name in args.packages:
            if name not in wanted:
                raise UserError(f"--package {name}: not an application package of "
                                f"{product.path} for {board.name} ({', '.join(wanted) or 'none'})")
        names = [n for n in wanted if not args.packages or n in args.packages]
        if not names:
            raise UserError(f"{product.path}: packages: {board.name} has no application "
                            "packages to release")
        pkgs = [_pick(n, feed, feed_dir, board.name) for n in names]
        if args.bundle:
            pem = (load_private_key(key_ref, "mender.signing_key").public_pem()
                   if key_ref else None)
            image_version, types = image_version_from_bundle(Path(args.bundle), bkey,
                                                             board.name, pem)
        else:
            image_version = product.artifact_name(board.name, var.name)
            types = list(board.mender.device_types)
        if not types:
            raise UserError(f"{board.path}: mender.device_types: {board.name} has none")
        plans.append((board, bkey, fmt, feed_dir, image_version, types, pkgs))

    for _board, _bkey, fmt, _feed, _version, _types, pkgs in plans:
        for p in pkgs:  # every board's packages checked before anything is written
            check_package(p, fmt)
    key = load_private_key(key_ref, "mender.signing_key") if key_ref else None
    results = []
    for board, bkey, fmt, feed_dir, image_version, types, pkgs in plans:
        final = out_root / bkey
        made = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{bkey}.partial-", dir=final.parent))
        try:
            arts = [_write_one(p, fmt, image_version, types, staging, key) for p in pkgs]
            res = BoardApps(board.name, var.name, final, fmt, feed_dir, image_version, arts)
            (staging / "apps.json").write_text(json.dumps(res.to_dict(), indent=2,
                                                          sort_keys=True) + "\n")
            for p in staging.iterdir():
                p.chmod(0o644)
            staging.chmod(0o755)
            if final.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{bkey}.old-", dir=final.parent))
                final.replace(old / "d")
                staging.replace(final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staging.replace(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            for p in made:  # the directories made for it, when still empty: not half-written
                try:
                    p.rmdir()
                except OSError:
                    break
            raise
        results.append(res)
    return results


def check_package(pkg: FeedPackage, fmt: str) -> None:
    """A file named like a package must look like one: an empty or foreign file in the feed
    would become an artifact every device fails to install."""
    try:
        with open(pkg.path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise UserError(f"{pkg.path}: cannot read ({exc.strerror or exc})") from None
    starts, what = MAGIC[fmt]
    if not head.startswith(starts):
        raise UserError(f"{pkg.path}: {'an empty file' if not head else 'not ' + what}")


def _write_one(pkg: FeedPackage, fmt: str, image_version: str, types: list[str],
               out: Path, key) -> AppArtifact:
    name = f"{image_version}-{pkg.name}-{pkg.version}"
    payload = module_payload(fmt, [DataSource.from_path(pkg.path)], name,
                             depends={"rootfs-image.version": image_version},
                             software_filesystem=SOFTWARE_FS, software_name=pkg.name,
                             software_version=pkg.version)
    fname = f"{pkg.name}-{pkg.version}.mender"
    try:
        path = write_artifact(ArtifactSpec(name=name, device_types=types, payload=payload),
                              out / fname, key=key)
    except ArtifactError as exc:
        raise UserError(f"{pkg.path}: {exc}") from None
    return AppArtifact(pkg.name, pkg.version, pkg.arch, fmt, fname, name, list(types),
                       dict(payload.depends), dict(payload.provides),
                       list(payload.clears_provides), key is not None,
                       path.stat().st_size, sha256_file(path))
