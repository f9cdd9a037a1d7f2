"""Load board and product manifests into the typed model, with file:line errors."""
from __future__ import annotations

import re
import string
import subprocess
from dataclasses import replace
from pathlib import Path

from buildctl.errors import ManifestError
from buildctl.manifest import bitbake_vars, schema
from buildctl.manifest.model import (Board, BoardMender, Cache, ConfValue, Fetch, Product, ProductMender,
                                     Publish, Ref, Release, Repo, Sbom, Signer, Storage, Variant)
from buildctl.manifest.yamlsrc import SourceMap, dotted, load as load_yaml
from buildctl.secrets import SecretRef

SECRET_KEYS = ("token", "password", "access_key", "secret_key")  # publish credentials

# Variables that typed fields own: setting them in local_conf would fight the field.
OWNED_VARIABLES = bitbake_vars.owned_variables()
_FREE_TEXT = {"description"}  # top-level fields that never reach a BitBake or kas file
# Fields the schema accepts that nothing consumes yet, refused until their issue lands (then
# delete the entry): keypath -> (is the value a request?, what to say)
_SECRETISH = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|PRIVATE_KEY|API_KEY)", re.I)
_TEMPLATE_KEYS = {"product", "version", "board", "variant", "series"}


def _one_line(data, smap: SourceMap, keypath: tuple = ()) -> None:
    """Every name and string that can reach a BitBake or kas file is one printable line.

    (A schema pattern's ``$`` also matches before a final newline: this check is the guard.)
    """
    if isinstance(data, dict):
        for key, value in data.items():
            if not keypath and key in _FREE_TEXT:
                continue
            if not key.isprintable():  # the field is its parent: the name itself is not printable
                raise ManifestError(smap.path, f"name {_show(key)} is not one line of printable text",
                                    line=smap.line(keypath + (key,)), field=dotted(keypath) or None)
            _one_line(value, smap, keypath + (key,))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            _one_line(item, smap, keypath + (i,))
    elif isinstance(data, str) and not data.isprintable():
        raise smap.error(keypath, f"{_show(data)} is not one line of printable text "
                                  "(no newlines, tabs or control characters)")
    elif isinstance(data, str) and bitbake_vars.quote(data) is None:
        raise smap.error(keypath, "BitBake cannot read a value holding exactly one \" and exactly "
                                  "one ' (drop or double one of them)")


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _artifact_template(text: str, smap: SourceMap) -> None:
    """Only the documented placeholders, bare: no format specs, conversions, attributes or
    indexes (``{board:>99999999}`` would build a huge name, ``{board.__class__}`` leak)."""
    keypath = ("release", "artifact_name")
    known = ", ".join("{" + k + "}" for k in sorted(_TEMPLATE_KEYS))
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise smap.error(keypath, f"bad template: {exc} (placeholders: {known})") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in _TEMPLATE_KEYS:
            raise smap.error(keypath, f"unknown placeholder {{{name[:40]}}} (known: {known})")
        if spec or conversion:
            raise smap.error(keypath, f"placeholder {{{name}}} takes no format spec or conversion "
                                      f"(known: {known})")


def _owned_check(local_conf: dict, smap: SourceMap, keypath: tuple) -> dict[str, ConfValue]:
    out: dict[str, ConfValue] = {}
    for var, value in local_conf.items():
        op = "="
        if isinstance(value, dict):
            op, value = value["op"], value["value"]
        base = var.split(":", 1)[0]
        if base in OWNED_VARIABLES:
            raise smap.error(keypath + (var,), f"{base} is set by the field {OWNED_VARIABLES[base]}; "
                                                "use that field instead of local_conf")
        if isinstance(value, bool):
            value = "1" if value else "0"
        value = str(value)
        if _SECRETISH.search(base) and value and not SecretRef.is_ref(value):
            raise smap.error(keypath + (var,), "looks like a secret: manifests hold references "
                                                "(env:NAME or file:PATH), never values")
        if bitbake_vars.quote(value) is None:
            raise smap.error(keypath + (var,), "BitBake cannot read a value holding exactly one \" "
                                                "and exactly one ' (drop or double one of them)")
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
        extends = "url" not in r and "path" not in r
        if extends and r.get("patches"):
            raise smap.error(keypath + (name, "patches"), "patches of a core repo go with the repo in "
                                                          "the product manifest")
        patches = []
        for i, patch in enumerate(r.get("patches") or ()):
            p = (base / patch).resolve()
            if not p.is_file():
                raise smap.error(keypath + (name, "patches", i), f"no patch file {p}")
            patches.append(str(p))
        if extends and any(k in r for k in ("signed", "allowed_signers", "credentials")):
            raise smap.error(keypath + (name,), "signed, allowed_signers and credentials of a core "
                                                "repo go with the repo in the product manifest")
        if r.get("signed") and path is not None and not any(ref.commit for ref in refs.values()):
            raise smap.error(keypath + (name, "signed"), "a path: repository used as its work tree "
                                                         "has no commit to verify (pin refs.<series>.commit)")
        if r.get("url") and _url_password(r["url"]):
            raise smap.error(keypath + (name, "url"), "holds a password or token: give the URL "
                             "without it and the secret as credentials: env:NAME (or file:PATH)")
        credentials = None
        if "credentials" in r:
            if not str(r.get("url", "")).startswith("https://"):
                raise smap.error(keypath + (name, "credentials"), "credentials are for https:// URLs "
                                 "(SSH repositories use the SSH agent)")
            credentials = SecretRef.parse(r["credentials"])
        repos[name] = Repo(name=name, url=r.get("url"), path=path, refs=refs,
                           layers=tuple(r["layers"]) if "layers" in r else (".",),
                           patches=tuple(patches), source=smap.path,
                           line=smap.line(keypath + (name,)),
                           extends=extends, signed=r.get("signed"),
                           allowed_signers=tuple(r.get("allowed_signers") or ()),
                           credentials=credentials)
    return repos


def _url_password(url: str) -> bool:
    from urllib.parse import urlparse

    try:
        return bool(urlparse(url).password)
    except ValueError:
        return False


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
    if isinstance(data, dict):
        _one_line(data, smap)
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
    _one_line(data, smap)
    schema.validate(data, "product", smap)
    here = path.parent.resolve()

    release = Release(version=str(data["release"]["version"]),
                      artifact_name=data["release"].get("artifact_name", "{product}-{version}-{board}"))
    _artifact_template(release.artifact_name, smap)
    if bitbake_vars.quote(release.artifact_name) is None:
        raise smap.error(("release", "artifact_name"), "BitBake cannot read a name holding exactly "
                                                       "one \" and exactly one '")

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
    try:
        signing_key = SecretRef.parse_key(m["signing_key"]) if m.get("signing_key") else None
    except ValueError as exc:
        raise smap.error(("mender", "signing_key"), str(exc)) from None
    mender = ProductMender(
        server_url=m.get("server_url"),
        tenant_token=SecretRef.parse(m["tenant_token"]) if m.get("tenant_token") else None,
        signing_key=signing_key,
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

    signers, signed, allowed = _signers(data, smap, here, core_repos, boards)
    fetch = Fetch(known_hosts=(here / data["fetch"]["known_hosts"]).resolve()
                  if (data.get("fetch") or {}).get("known_hosts") else None)
    if fetch.known_hosts is not None and not fetch.known_hosts.is_file():
        raise smap.error(("fetch", "known_hosts"), f"no known_hosts file {fetch.known_hosts}")
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
        signers=signers, signed=signed, allowed_signers=allowed, fetch=fetch,
        runtime=data.get("runtime", "docker"),
        container_image=(data.get("container") or {}).get("image"),
        description=data.get("description", ""), path=path.resolve(), root=_repo_root(here),
        smap=smap,
    )


def _signers(data: dict, smap: SourceMap, here: Path, core: dict[str, Repo],
             boards: dict[str, Board]) -> tuple[dict[str, Signer], bool, tuple[str, ...]]:
    """The product's signers (key files relative to the manifest) and its signing policy; every
    allowed_signers entry, of the product or of any repository, names one of them."""
    signers = {}
    for name, d in (data.get("signers") or {}).items():
        p = (here / d["path"]).resolve()
        if not p.is_file():
            raise smap.error(("signers", name, "path"), f"no key file {p}")
        kind = d.get("type", "gpg")
        fpr = d.get("fingerprint")
        if fpr and (kind == "gpg") != (not fpr.startswith("SHA256:")):
            raise smap.error(("signers", name, "fingerprint"),
                             "a gpg fingerprint is 40 hex digits, an ssh one SHA256:...")
        signers[name] = Signer(name=name, type=kind, path=p, fingerprint=fpr)
    signed = bool(data.get("signed", False))
    allowed = tuple(data.get("allowed_signers") or ())
    known = ", ".join(sorted(signers)) or "none"

    def check(names, where: tuple, file_smap: SourceMap | None = None) -> None:
        for i, n in enumerate(names):
            if n not in signers:
                err_map = file_smap or smap
                raise err_map.error(where + (i,), f"unknown signer {n!r} (the product's signers: {known})")

    check(allowed, ("allowed_signers",))
    if signed and not allowed:
        raise smap.error(("signed",), "signed needs allowed_signers (the ids of signers whose "
                                      "signatures are accepted)")
    repo_sets = [(r, ("repos", r.name), smap) for r in core.values()]
    repo_sets += [(r, ("repos", r.name), b.smap) for b in boards.values() for r in b.repos.values()
                  if not r.extends and b.smap is not None]
    for repo, where, m in repo_sets:
        check(repo.allowed_signers, where + ("allowed_signers",), m)
        if repo.signed and not (repo.allowed_signers or allowed):
            raise m.error(where + ("signed",), "signed needs allowed_signers (here or in the product)")
    return signers, signed, allowed


def _sbom(d: dict) -> Sbom:
    d = dict(d)
    policy = d.pop("cve_policy", None) or {}
    return Sbom(**d, max_cvss=policy.get("max_cvss"), allow_cves=tuple(policy.get("allow", ())))
