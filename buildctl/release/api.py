"""From a product manifest (and a build's outputs, when there are any) to a ReleaseSpec.

Where things come from: the boards, image, image types, device types, artifact name and
signing key from the manifests; layer commits from the product lock (else the build report's
checked-out commits, else the manifest's pinned commits); the builder image and
SOURCE_DATE_EPOCH from the build report (else the product repository's last commit).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from buildctl.errors import UserError
from buildctl.ota.mender.pkcs11 import with_module
from buildctl.release.bundle import sha256_file
from buildctl.release.collect import BoardOutputs
from buildctl.release.cve import CvePolicy
from buildctl.release.gate import BoardRelease
from buildctl.release.pipeline import BoardSpec, ReleaseSpec


@dataclass
class ReleaseArgs:
    product: Path
    boards: list[str] = field(default_factory=list)
    variant: str | None = None
    series: str | None = None
    lock: Path | None = None
    deploy_dir: Path | None = None  # a plain (kas) deploy dir: tmp/deploy/images/<MACHINE>
    build_out: Path | None = None  # a `buildctl build` output dir (default out/<product>)
    out: Path | None = None  # bundles land in <out>/<product>/<version> (default ./release)
    release_key: str | None = None  # default: the product's mender.signing_key
    pkcs11_module: str | None = None  # for pkcs11: keys without module-path (the setting)
    max_cvss: float | None = None
    allow_cves: tuple[str, ...] = ()
    delta_from: Path | None = None  # an older bundle of the product: also write deltas
    untested: bool | frozenset[str] = False  # boards that may ship without passing `buildctl test`


def _key_ref(product) -> str | None:
    ref = product.mender.signing_key
    if ref is None:
        return None
    if ref.kind == "file" and not Path(ref.target).expanduser().is_absolute():
        return f"file:{(product.path.parent / ref.target).resolve()}"
    return str(ref)


def _verify_ref(product) -> str | None:
    ref = product.mender.verify_key
    if ref is None:
        return None
    if ref.kind == "file" and not Path(ref.target).expanduser().is_absolute():
        return f"file:{(product.path.parent / ref.target).resolve()}"
    return str(ref)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def spec_from_product(args: ReleaseArgs) -> ReleaseSpec:
    from buildctl.builder.epoch import source_date_epoch
    from buildctl.compose import lockfile
    from buildctl.manifest import load_product

    product = load_product(args.product)
    if args.series:
        product = product.with_series(args.series)
    boards = product.select_boards(args.boards or None)
    var = product.variant(args.variant)
    if args.deploy_dir and len(boards) != 1:
        raise UserError("--deploy-dir: name the one board it belongs to with --board")
    build_out = args.build_out or Path.cwd() / "out" / product.name
    build_report = _read_json(build_out / "build-report.json") or {}
    root = Path(product.root or product.path.parent)
    specs, reports = [], []
    from buildctl.compose import device_types

    types = device_types.promised(product, boards, lockfile.find(product, args.lock))
    for board in boards:
        key = f"{board.name}-{var.name}"
        deploy = args.deploy_dir or build_out / key / "deploy"
        reports.append(_read_json(build_out / key / "report.json") or {})
        outputs = BoardOutputs(machine=board.machine, image=product.target,
                               image_types=tuple(board.mender.image_types) or ("ext4",),
                               series=product.series, spdx=product.sbom.spdx)
        release = BoardRelease(board=board.name, device_types=types[board.name],
                               artifact_name=product.artifact_name(board.name, var.name),
                               signing_key=with_module(_key_ref(product), args.pkcs11_module),
                               require_signed=product.mender.require_signed)
        # `buildctl test` leaves its report in the board's output dir (beside deploy/); with
        # a plain deploy dir from elsewhere, in that dir (`buildctl test --image ... --report`)
        test_dir = Path(args.deploy_dir) if args.deploy_dir else build_out / key
        specs.append(BoardSpec(board.name, var.name, Path(deploy), outputs, release,
                               verify_key=_verify_ref(product), test_dir=test_dir))
    lock = _lock(product, lockfile.find(product, args.lock), reports)
    manifests = [{"path": _rel(product.path, root), "sha256": sha256_file(product.path)}]
    for board in boards:
        if board.path:
            manifests.append({"path": _rel(board.path, root), "sha256": sha256_file(board.path)})
    sde = next((r.get("source_date_epoch") for r in reports if r.get("source_date_epoch")), None)
    if sde is None:
        sde = source_date_epoch(root)
    builder = {"image": build_report.get("image"), "digest": build_report.get("image_digest"),
               "packages": build_report.get("image_packages")}
    warnings = []
    if args.delta_from is not None and not read_only_rootfs(product, var):
        warnings.append(
            "--delta-from: the product's root filesystem is not read-only (image_features: "
            "read-only-rootfs): a device that writes to it no longer matches the old image's "
            "checksum, and the rootfs-delta module refuses to install a delta onto it")
    formats = tuple(f for f, on in (("spdx", product.sbom.spdx),
                                    ("cyclonedx", product.sbom.cyclonedx)) if on)
    return ReleaseSpec(product=product.name, version=product.release.version,
                       series=product.series, boards=specs,
                       out_root=args.out or Path.cwd() / "release", lock=lock,
                       manifests=manifests, builder=builder, source_date_epoch=sde,
                       release_key=with_module(args.release_key or _key_ref(product), args.pkcs11_module),
                       cve_policy=CvePolicy(
                           args.max_cvss if args.max_cvss is not None else product.sbom.max_cvss,
                           tuple(product.sbom.allow_cves) + tuple(args.allow_cves)),
                       sbom_formats=formats or ("spdx",), delta_from=args.delta_from,
                       warnings=warnings, untested=args.untested)


def read_only_rootfs(product, variant) -> bool:
    """Whether the images are built with IMAGE_FEATURES read-only-rootfs (manifest or
    local_conf), which a delta's source checksum needs to stay true on the device."""
    features = tuple(product.image_features) + tuple(variant.image_features)
    conf = " ".join(str(v) for v in
                    list(product.local_conf.values()) + list(variant.local_conf.values()))
    return "read-only-rootfs" in features or "read-only-rootfs" in conf


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).name


def _lock(product, lock, reports: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in reports:  # what the build really checked out
        for name, info in (r.get("layers") or {}).items():
            commit = info.get("checked_out") or info.get("commit")
            if commit:
                out[name] = {"commit": commit, "url": info.get("url")}
    if lock is not None:
        for name, e in lock.repos.items():
            out.setdefault(name, {"commit": e.commit, "url": e.url})
    for name, repo in product.repos.items():
        ref = repo.ref(product.series)
        if ref and ref.commit:
            out.setdefault(name, {"commit": ref.commit, "url": repo.url})
    return dict(sorted(out.items()))


def release_after_build(product: Path, build: dict, *, series: str | None = None,
                        lock: Path | None = None, on_step=None,
                        pkcs11_module: str | None = None) -> dict:
    """`buildctl build`'s last step: release the boards that succeeded, from the build's
    outputs into ``<build out>/release/<product>/<version>``. Returns what the build report
    shows: {"status": succeeded|failed|skipped, "bundle"|"message", ...}.

    This release comes before any device test could run: its bundle records the boards as
    untested, and publish and rollout refuse it until `buildctl test` passed and
    `buildctl release` made the bundle again (or they are told --untested)."""
    from buildctl.builder.jobs import is_kas_file
    from buildctl.release.pipeline import run_release

    if is_kas_file(product):
        return {"status": "skipped", "message": "a plain kas file has no release manifest"}
    boards = [b["board"] for b in build.get("boards", []) if b.get("status") == "succeeded"]
    if not boards:
        return {"status": "skipped", "message": "no board succeeded"}
    out = Path(build["out_dir"])
    try:
        spec = spec_from_product(ReleaseArgs(product=product, boards=boards,
                                             variant=build.get("variant") or None, series=series,
                                             lock=lock, build_out=out, out=out / "release",
                                             pkcs11_module=pkcs11_module, untested=True))
        result = run_release(spec, on_step)
    except UserError as exc:
        return {"status": "failed", "message": str(exc)}
    from buildctl.builder.runtime import resolve_owner
    from buildctl.builder.workspace import chown_tree
    chown_tree(out / "release", resolve_owner())  # like every build output: the user's, not root's
    return {"status": "succeeded", "bundle": str(result.bundle_dir), "files": result.files,
            "signed": result.signed, "boards": [b["dir"] for b in result.boards]}
