"""Load board and product manifests into the typed model, with file:line errors."""
from __future__ import annotations

import re
import string
import subprocess
from dataclasses import replace
from pathlib import Path

from buildctl.errors import ManifestError
from buildctl.manifest import schema
from buildctl.manifest.model import (Board, BoardMender, Cache, ConfValue, Product, ProductMender, Publish,
                                     Ref, Release, Repo, Sbom, Storage, Variant)
from buildctl.manifest.yamlsrc import SourceMap, load as load_yaml
from buildctl.refs import SecretRef

SECRET_KEYS = ("token", "password", "access_key", "secret_key")  # publish credentials

# Variables that typed fields own: setting them in local_conf would fight the field.
OWNED_VARIABLES = {
    "MACHINE": "the board's machine", "DISTRO": "the product's distro",
    "DL_DIR": "cache.dl_dir", "SSTATE_DIR": "cache.sstate_dir",
    "SSTATE_MIRRORS": "cache.sstate_mirrors", "BB_HASHSERVE": "cache.hashserve",
    "BB_HASHSERVE_UPSTREAM": "cache.hashserve_upstream", "BB_NO_NETWORK": "cache.hermetic",
    "MENDER_DEVICE_TYPE": "mender.device_types", "MENDER_DEVICE_TYPES_COMPATIBLE": "mender.device_types",
    "MENDER_STORAGE_DEVICE": "mender.storage.device",
    "MENDER_STORAGE_TOTAL_SIZE_MB": "mender.storage.total_mb",
    "MENDER_BOOT_PART_SIZE_MB": "mender.storage.boot_mb",
    "MENDER_DATA_PART_SIZE_MB": "mender.storage.data_mb",
    "MENDER_ARTIFACT_NAME": "release.artifact_name", "MENDER_SERVER_URL": "mender.server_url",
    "MENDER_TENANT_TOKEN": "mender.tenant_token",
    "MENDER_ARTIFACT_SIGNING_KEY": "mender.signing_key",
    "MENDER_ARTIFACT_VERIFY_KEY": "mender.verify_key",
    "MENDER_FEATURES": "mender.bootloader / mender.image_types",
    "IMAGE_INSTALL": "packages", "EXTRA_IMAGE_FEATURES": "image_features",
    "SOURCE_DATE_EPOCH": "the product repository's last commit",
}
_SECRETISH = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|PRIVATE_KEY|API_KEY)", re.I)
_TEMPLATE_KEYS = {"product", "version", "board", "variant", "series"}


def _owned_check(local_conf: dict, smap: SourceMap, keypath: tuple) -> dict[str, ConfValue]:
    out: dict[str, ConfValue] = {}
    for var, value in local_conf.items():
        op = "="
        if isinstance(value, dict):
            op, value = value["op"], value["value"]
        base = var.split(":", 1)[0]
        if base in OWNED_VARIABLES:
            raise smap.error(keypath + (var,), f"{base} is set by {OWNED_VARIABLES[base]}; "
                                                "use that field instead of local_conf")
        if isinstance(value, bool):
            value = "1" if value else "0"
        value = str(value)
        if _SECRETISH.search(base) and value and not SecretRef.is_ref(value):
            raise smap.error(keypath + (var,), "looks like a secret: manifests hold references "
                                                "(env:NAME or file:PATH), never values")
        if "\n" in value:
            raise smap.error(keypath + (var,), "values must be one line")
        out[var] = ConfValue(value, op)
    return out


def _repos(data: dict, smap: SourceMap, keypath: tuple, base: Path) -> dict[str, Repo]:
    repos: dict[str, Repo] = {}
    for name, r in data.items():
        refs = {s: Ref(**v) for s, v in (r.get("refs") or {}).items()}
        for series, ref in refs.items():
            if ref.branch and ref.tag:
                raise smap.error(keypath + (name, "refs", series), "give branch or tag, not both")
        path = None
        if "path" in r:
            path = (base / r["path"]).resolve()
        repos[name] = Repo(name=name, url=r.get("url"), path=path, refs=refs,
                           layers=tuple(r["layers"]) if "layers" in r else (".",),
                           patches=tuple(r.get("patches") or ()), source=smap.path,
                           line=smap.line(keypath + (name,)),
                           extends="url" not in r and "path" not in r)
    return repos


def _storage(d: dict | None) -> Storage:
    return Storage(**(d or {}))


def _board_mender(d: dict | None, base: BoardMender | None = None) -> BoardMender:
    d = d or {}
    base = base or BoardMender()
    storage = base.storage
    if "storage" in d:
        merged = {k: v for k, v in vars(base.storage).items() if v is not None}
        merged.update(d["storage"])
        storage = Storage(**merged)
    return BoardMender(device_types=tuple(d.get("device_types", base.device_types)),
                       bootloader=d.get("bootloader", base.bootloader),
                       image_types=tuple(d.get("image_types", base.image_types)),
                       storage=storage)


def load_board(path: Path, name: str | None = None) -> Board:
    path = Path(path)
    data, smap = load_yaml(path)
    schema.validate(data, "board", smap)
    return Board(
        name=name or path.stem,
        machine=data["machine"],
        series=tuple(data["series"]),
        repos=_repos(data["repos"], smap, ("repos",), path.parent),
        mender=_board_mender(data.get("mender")),
        local_conf=_owned_check(data.get("local_conf") or {}, smap, ("local_conf",)),
        packages=tuple(data.get("packages", ())),
        description=data.get("description", ""),
        family=data.get("family", ""),
        tune=data.get("tune", ""),
        machine_name_differs=bool(data.get("machine_name_differs", False)),
        path=path,
        smap=smap,
    )


def _with_core(board: Board, core: dict[str, Repo]) -> Board:
    """Resolve a board's `repo: {layers: [...]}` entries against the product's core repos."""
    repos = {}
    for name, r in board.repos.items():
        if r.extends:
            if name not in core:
                raise ManifestError(board.path, f"adds layers to core repo {name!r}, but the product "
                                    "has no repo of that id (give url and refs)", line=r.line,
                                    field=f"repos.{name}")
            r = replace(core[name], layers=r.layers, source=r.source, line=r.line, extends=True)
        repos[name] = r
    return replace(board, repos=repos)


def _repo_root(directory: Path) -> Path:
    try:
        out = subprocess.run(["git", "-C", str(directory), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())
    except (subprocess.CalledProcessError, FileNotFoundError):
        return directory.parent if directory.name == "products" else directory


def load_product(path: Path, *, boards_dir: Path | None = None) -> Product:
    path = Path(path)
    data, smap = load_yaml(path)
    if not isinstance(data, dict):
        raise ManifestError(path, "a product manifest is a mapping of fields")
    schema.validate(data, "product", smap)
    here = path.parent.resolve()

    release = Release(version=str(data["release"]["version"]),
                      artifact_name=data["release"].get("artifact_name", "{product}-{version}-{board}"))
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(release.artifact_name) if f is not None}
    except ValueError as exc:
        raise smap.error(("release", "artifact_name"), f"bad template: {exc}") from None
    bad = sorted(fields - _TEMPLATE_KEYS)
    if bad:
        raise smap.error(("release", "artifact_name"),
                         f"unknown placeholder {{{bad[0]}}} (known: "
                         + ", ".join("{" + k + "}" for k in sorted(_TEMPLATE_KEYS)) + ")")

    variants = {name: Variant(name=name, packages=tuple((v or {}).get("packages", ())),
                              image_features=tuple((v or {}).get("image_features", ())),
                              local_conf=_owned_check((v or {}).get("local_conf") or {}, smap,
                                                      ("variants", name, "local_conf")))
                for name, v in (data.get("variants") or {"release": {}}).items()}
    default_variant = data.get("default_variant") or next(iter(variants))
    if default_variant not in variants:
        raise smap.error(("default_variant",), f"{default_variant!r} is not one of the variants "
                                               f"({', '.join(variants)})")

    core_repos = _repos(data["repos"], smap, ("repos",), here)
    for name, repo in core_repos.items():
        if repo.extends:
            raise smap.error(("repos", name), "a core repo needs url (with refs) or path")
    bdir = Path(boards_dir) if boards_dir else (here / data.get("boards_dir", "../machines")).resolve()
    overrides = data.get("board_overrides") or {}
    for name in overrides:
        if name not in data["boards"]:
            raise smap.error(("board_overrides", name), f"board {name!r} is not in boards")
    boards: dict[str, Board] = {}
    for i, name in enumerate(data["boards"]):
        bpath = bdir / f"{name}.yml"
        if not bpath.is_file():
            raise smap.error(("boards", i), f"no board manifest {bpath}")
        board = _with_core(load_board(bpath, name), core_repos)
        if name in overrides:
            o = overrides[name]
            lc = dict(board.local_conf)
            lc.update(_owned_check(o.get("local_conf") or {}, smap, ("board_overrides", name, "local_conf")))
            board = replace(board, local_conf=lc, mender=_board_mender(o.get("mender"), board.mender))
        boards[name] = board

    m = data.get("mender") or {}
    mender = ProductMender(
        server_url=m.get("server_url"),
        tenant_token=SecretRef.parse(m["tenant_token"]) if m.get("tenant_token") else None,
        signing_key=SecretRef.parse(m["signing_key"]) if m.get("signing_key") else None,
        verify_key=SecretRef.parse(m["verify_key"]) if m.get("verify_key") else None,
        require_signed=bool(m.get("require_signed", False)),
        update_poll_interval_s=m.get("update_poll_interval_s"),
        inventory_poll_interval_s=m.get("inventory_poll_interval_s"),
    )
    if mender.require_signed and not mender.signing_key:
        raise smap.error(("mender", "require_signed"), "require_signed needs mender.signing_key")
    c = data.get("cache") or {}
    cache = Cache(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in c.items()})
    if cache.hashserve not in (None, "auto", "none") and cache.hashserve_upstream:
        raise smap.error(("cache", "hashserve_upstream"),
                         "hashserve_upstream only applies with hashserve: auto (a local server)")
    pub = data.get("publish") or {}

    def _with_ref(d: dict | None) -> dict | None:
        if d is None:
            return None
        return {k: (SecretRef.parse(v) if k in SECRET_KEYS else v) for k, v in d.items()}

    targets = data["target"] if isinstance(data["target"], list) else [data["target"]]
    return Product(
        name=data["name"], series=data["series"], distro=data["distro"], targets=tuple(targets),
        repos=core_repos, boards=boards, release=release,
        variants=variants, default_variant=default_variant,
        packages=tuple(data.get("packages", ())), image_features=tuple(data.get("image_features", ())),
        local_conf=_owned_check(data.get("local_conf") or {}, smap, ("local_conf",)),
        mender=mender, cache=cache, sbom=_sbom(data.get("sbom") or {}),
        publish=Publish(artifactory=_with_ref(pub.get("artifactory")), mender=_with_ref(pub.get("mender")),
                        targets={n: _with_ref(t) for n, t in (pub.get("targets") or {}).items()}),
        runtime=data.get("runtime", "docker"),
        container_image=(data.get("container") or {}).get("image"),
        description=data.get("description", ""), path=path.resolve(), root=_repo_root(here),
        smap=smap,
    )


def _sbom(d: dict) -> Sbom:
    d = dict(d)
    policy = d.pop("cve_policy", None) or {}
    return Sbom(**d, max_cvss=policy.get("max_cvss"), allow_cves=tuple(policy.get("allow", ())))
