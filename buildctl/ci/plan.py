"""A product's CI pipeline as data: build jobs (board x variant), device tests, release,
publish, rollout.

Build jobs are ordered the way a local build orders boards (``builder.plan.order_boards``): the
first job of every CPU tune starts at once, the others wait for it so they start from its sstate.
The later stages run for the product's default variant only (the one that ships).

Device tests (`buildctl test`) sit between a board's build and the release: emulated boards
boot in QEMU on the runner; real boards run in a LAVA lab when the pipeline is given one (the
lab fetches the image from where the out dir is served). A board neither can test is released,
published and rolled out with --untested-board, named in the pipeline for reviewers to see.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

from buildctl.builder.plan import order_boards
from buildctl.errors import UserError
from buildctl.manifest.model import Product
from buildctl.secrets import SecretRef

PROVIDERS = ("jenkins", "github", "gitlab")
DEFAULT_ROLLOUT_TOKEN = "env:MENDER_PAT"  # a Mender personal access token (management API)
CANARY_GROUP = "canary"
FIELD_GROUP = "field"


@dataclass(frozen=True)
class Secret:
    """One secret a stage needs, by the name the CI system stores it under."""

    name: str  # CI credential / secret / variable name (an environment variable name)
    kind: str  # "env": exported as $name | "file": written to ``path`` before the step runs
    path: str = ""  # file secrets: where the manifest expects the file (relative to the repo)


@dataclass(frozen=True)
class BuildJob:
    id: str  # CI job id: build-<board>-<variant>
    board: str
    variant: str
    tune: str
    after: str | None  # id of the job this one waits for (first of its tune), or None
    report: str  # the board report, relative to the repository root
    out_dir: str  # out/<product>/<board>-<variant>


@dataclass(frozen=True)
class TestJob:
    id: str  # CI job id: test-<board>-<variant>
    board: str
    variant: str
    build: str  # the build job whose outputs it boots
    runner: str  # "qemu" (on the CI runner) | "lava" (in a lab)
    out_dir: str  # out/<product>/<board>-<variant>: the report lands here
    report: str  # <out_dir>/devtest-report.json, what the release gate reads
    junit: str  # <out_dir>/devtest-junit.xml
    packages: tuple[str, ...] = ()  # Debian packages the runner needs (QEMU and firmware)


@dataclass(frozen=True)
class Pipeline:
    product: str
    manifest: str  # the product manifest, relative to the repository root
    version: str
    image: str  # builder image, pinned (content tag or registry digest)
    variant: str  # the variant released, published and rolled out
    builds: list[BuildJob]
    build_secrets: list[Secret]
    release_secrets: list[Secret]
    publish_secrets: list[Secret]
    rollout_secrets: list[Secret]
    release_dir: str  # release/<product>/<version>
    rollout: dict | None = None  # {server, token_ref, canary, field}
    dl_dir: str = "~/.cache/buildctl/downloads"  # the product's DL_DIR, as the manifest says
    sstate_dir: str = "~/.cache/buildctl/sstate"  # the product's SSTATE_DIR, as written
    push_mirror: str | None = None  # http(s) sstate mirror the main branch pushes to
    tests: list[TestJob] = field(default_factory=list)
    untested: list[str] = field(default_factory=list)  # released boards no test job covers
    test_secrets: list[Secret] = field(default_factory=list)
    lava: dict | None = None  # {url, images, token_ref}
    push_hashserv: str | None = None  # the hash server the push records on the mirror


def secret_for(ref: SecretRef, product: Product, repo_root: Path) -> Secret:
    """How CI provides a manifest's secret reference: env:NAME as the variable NAME; file:PATH
    as a file secret named after the file, written where the manifest looks for it; a pkcs11:
    key as the PIN it names (the token itself is the runner's)."""
    if ref.kind == "pkcs11":
        pin = ref.pin_ref()
        if pin is None:
            raise UserError(f"{product.path}: mender.signing_key: a pkcs11: key used in CI needs "
                            "pin-source=env:NAME or file:PATH")
        ref = pin
    if ref.kind == "env":
        return Secret(name=ref.target, kind="env")
    path = Path(ref.target).expanduser()
    if not path.is_absolute() and product.path is not None:
        path = (product.path.parent / path).resolve()
    try:
        rel = path.resolve().relative_to(repo_root.resolve()).as_posix()
    except ValueError:
        raise UserError(f"{product.path}: secret reference file:{ref.target} lies outside the "
                        f"repository ({repo_root}); CI can only write it inside the checkout") \
            from None
    name = re.sub(r"[^A-Za-z0-9]+", "_", Path(rel).name).strip("_").upper()
    if not name or name[0].isdigit():
        name = "FILE_" + name
    return Secret(name=name, kind="file", path=rel)


def _refs(obj) -> list[SecretRef]:
    """Every secret reference inside a manifest section (dataclasses, dicts, lists)."""
    if isinstance(obj, SecretRef):
        return [obj]
    if is_dataclass(obj):
        return [r for f in fields(obj) for r in _refs(getattr(obj, f.name))]
    if isinstance(obj, dict):
        return [r for k in sorted(obj, key=str) for r in _refs(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [r for v in obj for r in _refs(v)]
    return []


def _secrets(refs: list[SecretRef], product: Product, root: Path) -> list[Secret]:
    out: dict[str, Secret] = {}
    for ref in refs:
        s = secret_for(ref, product, root)
        if s.name in out and out[s.name] != s:
            raise UserError(f"{product.path}: two secret references map to the CI name {s.name}")
        out[s.name] = s
    return [out[k] for k in sorted(out)]


DEFAULT_LAVA_TOKEN = "env:LAVA_TOKEN"


def test_jobs(product: Product, variant: str, builds: list[BuildJob], *,
              lava: bool) -> tuple[list[TestJob], list[str]]:
    """The device test jobs of the released variant, and the boards none applies to."""
    from buildctl.devtest.qemu import MACHINES

    by_board = {b.board: b for b in builds if b.variant == variant}
    jobs, untested = [], []
    for name in product.boards:
        build = by_board.get(name)
        if build is None:
            continue
        m = MACHINES.get(name)
        if m is None and not lava:
            untested.append(name)
            continue
        jobs.append(TestJob(id=f"test-{name}-{variant}", board=name, variant=variant,
                            build=build.id, runner="qemu" if m else "lava", out_dir=build.out_dir,
                            report=f"{build.out_dir}/devtest-report.json",
                            junit=f"{build.out_dir}/devtest-junit.xml",
                            packages=(m.debian_package, m.firmware_package) if m else ()))
    return jobs, untested


def plan_pipeline(product: Product, image: str, *, variants: list[str] | None = None,
                  rollout_token: str | None = None, lava_url: str | None = None,
                  lava_images: str | None = None, lava_token: str | None = None) -> Pipeline:
    root = Path(product.root or product.path.parent)
    try:
        manifest = product.path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise UserError(f"{product.path}: not inside its repository {root}") from None
    names = variants or sorted(product.variants, key=lambda v: (v != product.default_variant, v))
    for v in names:
        product.variant(v)  # unknown names fail here, naming the variants there are
    entries, boards = [], {}
    for variant in names:
        for board in product.boards.values():
            job_id = f"build-{board.name}-{variant}"
            boards[job_id] = (board.name, variant)
            entries.append((job_id, board.machine, board.tune, board.family))
    plans = order_boards(entries)
    leader = {p.tune: p.name for p in plans if p.warm_up}
    builds = []
    for p in plans:
        board, variant = boards[p.name]
        out = f"out/{product.name}/{board}-{variant}"
        builds.append(BuildJob(id=p.name, board=board, variant=variant, tune=p.tune,
                               after=None if p.warm_up else leader[p.tune],
                               report=f"{out}/report.json", out_dir=out))
    m = product.mender
    build_refs = [r for r in (m.tenant_token, m.signing_key) if r is not None]
    release_refs = [r for r in (m.signing_key,) if r is not None]
    rollout = None
    rollout_refs: list[SecretRef] = []
    if m.server_url:
        token = rollout_token or DEFAULT_ROLLOUT_TOKEN
        try:
            ref = SecretRef.parse(token)
        except ValueError as exc:
            raise UserError(f"--rollout-token: {exc}") from None
        rollout_refs = [ref]
        rollout = {"server": m.server_url, "token_ref": str(ref), "canary": CANARY_GROUP,
                   "field": FIELD_GROUP}
    if bool(lava_url) != bool(lava_images):
        raise UserError("--lava and --lava-images go together: the lab's URL, and the base URL "
                        "the lab fetches the out dir's images from")
    lava = None
    test_refs: list[SecretRef] = []
    if lava_url:
        for flag, url in (("--lava", lava_url), ("--lava-images", lava_images)):
            if not url.startswith(("http://", "https://")):
                raise UserError(f"{flag}: {url!r} is not an http(s) URL")
        try:
            ref = SecretRef.parse(lava_token or DEFAULT_LAVA_TOKEN)
        except ValueError as exc:
            raise UserError(f"--lava-token: {exc}") from None
        test_refs = [ref]
        lava = {"url": lava_url, "images": lava_images.rstrip("/") + "/", "token_ref": str(ref)}
    test_secrets = _secrets(test_refs, product, root)
    if lava and test_secrets and test_secrets[0].kind == "file":
        # the job runs at the repository root, where the file secret is written
        lava["token_ref"] = f"file:{test_secrets[0].path}"
    variant = product.default_variant if product.default_variant in names else names[0]
    tests, untested = test_jobs(product, variant, builds, lava=lava is not None)
    return Pipeline(
        product=product.name, manifest=manifest, version=product.release.version, image=image,
        variant=variant,
        builds=builds,
        build_secrets=_secrets(build_refs, product, root),
        release_secrets=_secrets(release_refs, product, root),
        publish_secrets=_secrets(_refs(product.publish), product, root),
        rollout_secrets=_secrets(rollout_refs, product, root),
        release_dir=f"release/{product.name}/{product.release.version}",
        rollout=rollout,
        dl_dir=product.cache.dl_dir,
        sstate_dir=product.cache.sstate_dir,
        push_mirror=push_mirror(product.cache.sstate_mirrors),
        tests=tests, untested=untested, test_secrets=test_secrets,
        lava=lava, push_hashserv=_push_hashserv(product.cache))


def _push_hashserv(cache) -> str | None:
    """The server a main-branch push records on the mirror (cache/marker.py): cache.hashserve,
    or with auto its upstream; nothing for none or a private server."""
    from buildctl.cache.marker import build_identity

    ident = build_identity(str(cache.hashserve or "auto"), cache.hashserve_upstream)
    return ident.address if ident is not None and ident.address != "none" else None


def push_mirror(mirrors) -> str | None:
    """The first http(s) SSTATE_MIRRORS entry as a base URL (``regex URL/PATH;...``): where the
    main branch's builds push new objects. Pull requests only read it."""
    for entry in mirrors:
        url = entry.split()[-1].split(";", 1)[0]
        if url.startswith(("http://", "https://")):
            return url[: -len("/PATH")] if url.endswith("/PATH") else url.rstrip("/")
    return None


def builder_image(product: Product, override: str | None = None) -> str:
    """The image every job runs its builds in: --image, else the product's, else the tag
    `buildctl container build` makes from the image inputs in this checkout (a hash of them;
    host-specific CA files are left out so every machine writes the same pipeline)."""
    if override:
        return override
    if product.container_image:
        return product.container_image
    from buildctl.builder.image import ImageSpec

    return ImageSpec(site_ca_dir=None).tag()
