"""The entry point other parts call: ``build(BuildArgs) -> BuildReport``."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from buildctl.builder.caches import CacheSettings, settings_from_manifest
from buildctl.builder.epoch import source_date_epoch
from buildctl.builder.image import ImageSpec
from buildctl.builder.jobs import Target, load_target
from buildctl.builder.orchestrate import Build, BuildRequest, SignalsToInterrupt
from buildctl.builder.progress import make_view
from buildctl.builder.report import BuildReport
from buildctl.builder.workspace import own
from buildctl.builder.runtime import Runtime, get_runtime, resolve_owner
from buildctl.errors import UserError
from buildctl.ota.mender.pkcs11 import with_module


@dataclass
class BuildArgs:
    product: Path
    boards: list[str] = field(default_factory=list)
    variant: str | None = None
    jobs: int = 1
    mode: str = "build"  # build | dry-run | parse-only
    runtime: str | None = None
    image: str | None = None
    fail_fast: bool = False
    out: Path | None = None
    cpus: int | None = None
    json: bool = False
    series: str | None = None
    lock: Path | None = None
    repo_ref_dir: Path | None = None
    cache_root: Path | None = None  # BUILDCTL_CACHE_DIR, read by the command line
    settings: object | None = None  # the command line's Settings: SSH agent, credential helper, git cache
    pkcs11_module: str | None = None  # BUILDCTL_PKCS11_MODULE: for pkcs11: signing keys
    force_mirror: bool = False  # read sstate mirrors filled under another hash server


def default_image() -> str:
    return ImageSpec().tag()


def _layer_cache(args: BuildArgs):
    """Offline access to the layer repositories pre-flight fetched (the gate's device types)."""
    from buildctl.repos import RepoCache

    git_cache = getattr(args.settings, "git_cache", None)
    kw = {"cache_dir": git_cache} if git_cache else {}
    return RepoCache(ref_dir=args.repo_ref_dir, offline=True, **kw)


@dataclass
class Opened:
    """A product opened the way ``build`` opens it: composed boards, caches, runtime, where."""

    target: Target
    caches: CacheSettings
    runtime: Runtime
    out: Path
    owner: tuple[int, int]


def open_target(args: BuildArgs) -> Opened:
    """Compose the selected boards into ``<out>/.compose`` and pick caches and runtime (what
    ``build``, ``shell`` and ``getvar`` share); bad inputs leave no new directory behind."""
    out = (args.out or Path.cwd() / "out" / args.product.stem).resolve()
    owner = resolve_owner()
    created = next((p for p in reversed((out, *out.parents)) if not p.exists()), None)
    if not out.exists():  # before compose writes into it: the directory is the user's
        out.mkdir(parents=True)
        own(out, owner)
    try:
        target = load_target(args.product.resolve(), args.boards, args.variant, out / ".compose",
                             args.series, args.lock, cache=_layer_cache(args),
                             settings=args.settings)
        target.jobs = [replace(j, signing_key=with_module(j.signing_key, args.pkcs11_module))
                       for j in target.jobs]
        if args.mode == "build":
            _check_signing_keys(target.jobs)
    except BaseException:  # invalid inputs leave nothing behind (no out/<name>)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    caches = settings_from_manifest(target.cache, base=args.product.resolve().parent,
                                    root=args.cache_root)
    if args.repo_ref_dir:
        caches = replace(caches, repo_ref_dir=args.repo_ref_dir.resolve())
    if args.mode == "build":  # cache/marker.py: never a mirror filled under another server
        from buildctl.cache.marker import check_build_mirrors
        try:
            check_build_mirrors(caches.sstate_mirrors, caches.hashserve,
                                caches.hashserve_upstream, force=args.force_mirror)
        except BaseException:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            raise
    runtime_name = args.runtime or target.runtime or "docker"
    image = args.image or target.image or (default_image() if runtime_name != "host" else None)
    return Opened(target=target, caches=caches, runtime=get_runtime(runtime_name, image),
                  out=out, owner=owner)


def build(args: BuildArgs) -> BuildReport:
    o = open_target(args)
    target = o.target
    req = BuildRequest(product=target.name, variant=target.variant, jobs=target.jobs,
                       out_dir=o.out, owner=o.owner, mode=args.mode,
                       concurrency=args.jobs, cpus=args.cpus, fail_fast=args.fail_fast,
                       source_date_epoch=source_date_epoch(target.root), series=target.series)
    view = make_view([j.name for j in target.jobs], args.json)
    b = Build(req, o.runtime, o.caches, view)
    with SignalsToInterrupt(b), view:
        return b.run()


def _check_signing_keys(jobs) -> None:
    """A signing key that cannot be read fails now, not after hours of building."""
    from buildctl.ota.mender import load_private_key

    for ref in sorted({j.signing_key for j in jobs if j.signing_key}):
        try:
            load_private_key(ref, "mender.signing_key")
        except UserError as exc:
            raise UserError(f"{exc} (artifacts are signed on this host after the build)") from None
