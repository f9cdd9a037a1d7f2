"""From a product manifest (or a plain kas file) to the per-board jobs the runner executes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from buildctl.builder.runner import BoardJob
from buildctl.errors import UserError
from buildctl.manifest.yamlsrc import load as load_yaml


@dataclass
class Target:
    """What ``buildctl build`` was pointed at, reduced to what the build needs."""

    name: str
    series: str
    root: Path  # repository whose last commit gives SOURCE_DATE_EPOCH
    jobs: list[BoardJob]
    variant: str
    cache: object | None = None  # the manifest's cache section (None: defaults)
    runtime: str | None = None
    image: str | None = None


def is_kas_file(path: Path) -> bool:
    try:
        data, _ = load_yaml(path)  # bounded: binary, deep and alias-bomb files are refused
    except UserError:
        return False
    return isinstance(data, dict) and isinstance(data.get("header"), dict) and "repos" in data


def from_kas_file(path: Path, boards: list[str], variant: str | None) -> Target:
    """A plain kas project as a one-board product (what `kas build FILE` would build)."""
    data, _ = load_yaml(path)
    machine = data.get("machine") or "qemux86-64"
    if boards and boards != [machine]:
        raise UserError(f"--board: {path} builds only {machine}")
    repos = {}
    for name, spec in (data.get("repos") or {}).items():
        spec = spec or {}
        entry = {k: spec[k] for k in ("url", "path", "commit") if spec.get(k)}
        repos[name] = entry
    job = BoardJob(name=machine, machine=machine, variant=variant or "", kas_file=path.resolve(),
                   repos=repos)
    return Target(name=path.stem, series="", root=path.resolve().parent, jobs=[job],
                  variant=variant or "")


def from_product(path: Path, boards: list[str], variant: str | None, compose_dir: Path,
                 series: str | None = None, lock_path: Path | None = None,
                 cache=None, settings=None) -> Target:
    """Compose each selected board (pinned by the product's lock file when there is one).
    ``cache``: the RepoCache the layers' device types are read from when a board's manifest
    leaves them to the layers (default: the environment's, offline)."""
    from buildctl.compose import compose_board, device_types, lockfile
    from buildctl.compose.kasfile import stack_repos
    from buildctl.layers.gitauth import GitAuth
    from buildctl.manifest import load_product

    product = load_product(path)
    if series:
        product = product.with_series(series)
    selected = product.select_boards(boards or None)
    var = product.variant(variant)
    lock = lockfile.find(product, lock_path)
    types = device_types.promised(product, selected, lock, cache)
    jobs = []
    for board in selected:
        composed = compose_board(product, board.name, var.name,
                                 compose_dir / f"{board.name}-{var.name}", lock=lock)
        # the board's private repositories: credentials for its checkout phase only
        auth = GitAuth.for_repos([r for r, _ in stack_repos(product, board).values()],
                                 known_hosts=product.fetch.known_hosts,
                                 agent_socket=getattr(settings, "ssh_auth_sock", None),
                                 credential_helper=getattr(settings, "git_credential_helper", None),
                                 home=getattr(settings, "home", None), base=path.resolve().parent)
        jobs.append(BoardJob(name=board.name, machine=composed.machine, variant=var.name,
                             kas_file=Path(composed.kas_file), repos=dict(composed.repos),
                             tune=board.tune or "", family=board.family or "",
                             device_types=types[board.name],
                             artifact_name=product.artifact_name(board.name, var.name),
                             signing_key=_key_ref(product), require_signed=product.mender.require_signed,
                             tenant_token=_ref(product, product.mender.tenant_token),
                             image_types=promised_types(board), fetch_auth=auth))
    return Target(name=product.name, series=product.series,
                  root=Path(product.root or path.parent), jobs=jobs, variant=var.name,
                  cache=product.cache, runtime=product.runtime, image=product.container_image)


def load_target(path: Path, boards: list[str], variant: str | None, compose_dir: Path,
                series: str | None = None, lock_path: Path | None = None,
                cache=None, settings=None) -> Target:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if is_kas_file(path):
        return from_kas_file(path, boards, variant)
    return from_product(path, boards, variant, compose_dir, series, lock_path, cache=cache,
                        settings=settings)


def promised_types(board) -> tuple[str, ...]:
    """The image types a board's build must deploy: its mender.image_types, and ``mender``
    (the update artifact) unless those types leave it out: every stack buildctl composes holds
    meta-mender, whose defaults build a .mender whether or not the manifest names device types
    (validate warns about image_types without 'mender')."""
    types = list(board.mender.image_types)
    if "mender" not in types and (board.mender.device_types or not types):
        types.append("mender")
    return tuple(types)


def _key_ref(product) -> str | None:
    """The signing key reference, a relative file: path made absolute (from the product's
    directory); the key itself is only read when artifacts are signed."""
    return _ref(product, product.mender.signing_key)


def _ref(product, ref) -> str | None:
    from buildctl.compose.verifykey import absolute_ref

    return None if ref is None else absolute_ref(product, ref)
