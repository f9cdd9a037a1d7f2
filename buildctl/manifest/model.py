"""Typed manifests: what the rest of buildctl works with (never the raw YAML dicts)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from buildctl.errors import UserError
from buildctl.manifest.yamlsrc import SourceMap
from buildctl.secrets import SecretRef


class ConfValue(str):
    """A local_conf value; ``op`` is the BitBake operator (``=`` unless the manifest says)."""

    op: str

    def __new__(cls, value: str, op: str = "=") -> "ConfValue":
        obj = super().__new__(cls, value)
        obj.op = op
        return obj


@dataclass(frozen=True)
class Ref:
    branch: str | None = None
    tag: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class Repo:
    name: str
    url: str | None  # remote repos
    path: Path | None  # local repos (absolute, resolved against the manifest's directory)
    refs: dict[str, Ref]  # series -> ref
    layers: tuple[str, ...]  # layer dirs inside the repo ("." = the repo root)
    patches: tuple[str, ...] = ()  # absolute paths of patch files, applied in this order
    source: Path | None = None  # manifest that declared it
    line: int | None = None
    extends: bool = False  # board only: more layers of the product's core repo of this id
    signed: bool | None = None  # pins must be signed (None: as the product says)
    allowed_signers: tuple[str, ...] = ()  # signer ids (the product's signers); () = the product's
    credentials: SecretRef | None = None  # HTTPS: token (or user:token) for the fetch only

    def ref(self, series: str) -> Ref | None:
        return self.refs.get(series)

    @property
    def is_local(self) -> bool:
        return self.url is None


@dataclass(frozen=True)
class Signer:
    """A key whose signatures a product accepts on pinned commits and tags (kas's signers)."""

    name: str
    type: str  # "gpg" | "ssh"
    path: Path  # armored GPG public key, SSH public key or allowed_signers file (absolute)
    fingerprint: str | None = None  # accept only this key of the file


@dataclass(frozen=True)
class Fetch:
    """How private repositories are reached (the checkout phase only)."""

    known_hosts: Path | None = None  # None: the user's ~/.ssh/known_hosts


@dataclass(frozen=True)
class Storage:
    device: str | None = None
    total_mb: int | None = None
    boot_mb: int | None = None
    data_mb: int | None = None
    alignment_kb: int | None = None


@dataclass(frozen=True)
class BoardMender:
    device_types: tuple[str, ...] = ()
    bootloader: str | None = None
    image_types: tuple[str, ...] = ()
    storage: Storage = field(default_factory=Storage)


@dataclass(frozen=True)
class Board:
    name: str
    machine: str
    series: tuple[str, ...]
    repos: dict[str, Repo]
    mender: BoardMender
    local_conf: dict[str, str]
    packages: tuple[str, ...] = ()  # board-specific packages (e.g. kernel-devicetree)
    description: str = ""
    family: str = ""
    tune: str = ""
    machine_name_differs: bool = False
    path: Path | None = None
    smap: SourceMap | None = field(default=None, compare=False, repr=False)

    def line(self, *keypath) -> int | None:
        return self.smap.line(keypath) if self.smap else None


@dataclass(frozen=True)
class Variant:
    name: str
    packages: tuple[str, ...] = ()
    image_features: tuple[str, ...] = ()
    local_conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Release:
    version: str
    artifact_name: str = "{product}-{version}"


@dataclass(frozen=True)
class ProductMender:
    server_url: str | None = None
    tenant_token: SecretRef | None = None
    signing_key: SecretRef | None = None
    verify_key: SecretRef | None = None
    require_signed: bool = False
    update_poll_interval_s: int | None = None
    inventory_poll_interval_s: int | None = None


@dataclass(frozen=True)
class Cache:
    sstate_dir: str = "~/.cache/buildctl/sstate"
    dl_dir: str = "~/.cache/buildctl/downloads"
    sstate_mirrors: tuple[str, ...] = ()
    hashserve: str | None = None  # None: the distro's default (poky: auto); build treats it as auto
    hashserve_upstream: str | None = None
    hermetic: bool = False


@dataclass(frozen=True)
class Sbom:
    spdx: bool = True
    cyclonedx: bool = False
    include_sources: bool = False
    max_cvss: float | None = None  # cve_policy: a release fails on unpatched CVEs above this
    allow_cves: tuple[str, ...] = ()  # cve_policy.allow: accepted anyway


@dataclass(frozen=True)
class Publish:
    artifactory: dict | None = None  # {url, repository, token: SecretRef}
    mender: dict | None = None  # {url, token: SecretRef}
    # name -> {type: artifactory|webdav|http|s3, url, ...}; credentials as SecretRef
    targets: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class Product:
    name: str
    series: str
    distro: str
    targets: tuple[str, ...]
    repos: dict[str, Repo]
    boards: dict[str, Board]  # effective boards (board_overrides applied)
    release: Release
    variants: dict[str, Variant]
    default_variant: str
    packages: tuple[str, ...] = ()
    image_features: tuple[str, ...] = ()
    local_conf: dict[str, str] = field(default_factory=dict)
    mender: ProductMender = field(default_factory=ProductMender)
    cache: Cache = field(default_factory=Cache)
    sbom: Sbom = field(default_factory=Sbom)
    publish: Publish = field(default_factory=Publish)
    signers: dict[str, Signer] = field(default_factory=dict)
    signed: bool = False  # every pinned repository must be signed by allowed_signers
    allowed_signers: tuple[str, ...] = ()
    fetch: Fetch = field(default_factory=Fetch)
    runtime: str = "docker"
    container_image: str | None = None
    description: str = ""
    path: Path | None = None
    root: Path | None = None  # the product repository's top directory
    smap: SourceMap | None = field(default=None, compare=False, repr=False)

    @property
    def target(self) -> str:
        return self.targets[0]

    def line(self, *keypath) -> int | None:
        return self.smap.line(keypath) if self.smap else None

    def variant(self, name: str | None) -> Variant:
        name = name or self.default_variant
        if name not in self.variants:
            known = ", ".join(sorted(self.variants))
            raise UserError(f"{self.path}: unknown variant {name!r} (variants: {known})")
        return self.variants[name]

    def select_boards(self, names: list[str] | None) -> list[Board]:
        if not names:
            return list(self.boards.values())
        unknown = [n for n in names if n not in self.boards]
        if unknown:
            known = ", ".join(self.boards)
            raise UserError(f"{self.path}: board {unknown[0]!r} is not in this product (boards: {known})")
        return [self.boards[n] for n in names]

    def artifact_name(self, board: str, variant: str | None = None) -> str:
        return self.release.artifact_name.format(
            product=self.name, version=self.release.version, board=board,
            variant=variant or self.default_variant, series=self.series)

    def signature_policy(self, repo: Repo) -> tuple[Signer, ...] | None:
        """The signers a repository's pins must be signed by; None when it need not be signed.
        (A local ``path:`` repository used as its work tree has no commit: the product-wide
        ``signed`` leaves it out, a ``signed: true`` on it is refused at load time.)"""
        signed = (self.signed and not repo.is_local) if repo.signed is None else repo.signed
        if not signed:
            return None
        names = repo.allowed_signers or self.allowed_signers
        return tuple(self.signers[n] for n in names)

    def with_series(self, series: str) -> "Product":
        return replace(self, series=series)
