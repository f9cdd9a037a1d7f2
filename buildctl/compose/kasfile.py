"""Per-board kas project files: every repo pinned, layers listed, local.conf from typed fields."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from buildctl.compose import localconf, verifykey
from buildctl.compose.lockfile import KAS_FILE_VERSION, Lock
from buildctl.fsutil import write_atomic
from buildctl.errors import ManifestError
from buildctl.manifest.model import Board, Product, Repo, Variant


@dataclass(frozen=True)
class ResolvedRepo:
    repo: Repo
    commit: str | None  # None: floating (branch without commit and not locked)
    branch: str | None
    tag: str | None
    layers: tuple[str, ...]


@dataclass
class ComposedBoard:
    board: str
    machine: str
    variant: str
    kas_file: Path
    repos: dict[str, dict] = field(default_factory=dict)  # name -> {url|path, commit, branch}


def stack_repos(product: Product, board: Board) -> dict[str, tuple[Repo, tuple[str, ...]]]:
    """Core repos + the board's repos; a board may add layers of a core repo (same url)."""
    out: dict[str, tuple[Repo, tuple[str, ...]]] = {n: (r, r.layers) for n, r in product.repos.items()}
    for name, r in board.repos.items():
        if name in out:
            core, layers = out[name]
            if (core.url or core.path) != (r.url or r.path):
                raise ManifestError(board.path, f"repo {name!r} is also a core repo of the product "
                                    f"with another source ({core.url or core.path})",
                                    line=r.line, field=f"repos.{name}")
            out[name] = (core, layers + tuple(x for x in r.layers if x not in layers))
        else:
            out[name] = (r, r.layers)
    return out


def resolve(product: Product, board: Board, lock: Lock | None = None,
            head_of=None) -> dict[str, ResolvedRepo]:
    """Commit for each repo: the lock's, else the manifest's pin (None if floating).

    ``head_of(repo)`` may give the commit of a local (path:) repo.
    """
    out: dict[str, ResolvedRepo] = {}
    for name, (repo, layers) in stack_repos(product, board).items():
        ref = repo.ref(product.series)
        commit = lock.commit(name) if lock else None
        if commit is None and ref is not None:
            commit = ref.commit
        if commit is None and repo.is_local and head_of is not None:
            commit = head_of(repo)
        out[name] = ResolvedRepo(repo=repo, commit=commit, branch=ref.branch if ref else None,
                                 tag=ref.tag if ref else None, layers=layers)
    return out


def _patches(rr: ResolvedRepo, resolved: dict[str, ResolvedRepo]) -> dict[str, dict]:
    """kas ``patches`` for one repo: kas applies patch files kept in a repository of the
    project, so each must lie inside one of the stack's local (path:) repositories."""
    out: dict[str, dict] = {}
    for i, patch in enumerate(rr.repo.patches):
        p = Path(patch)
        holder = next((n for n, r in sorted(resolved.items()) if r.repo.is_local and r.repo.path
                       and p.is_relative_to(r.repo.path)), None)
        if holder is None:
            raise ManifestError(rr.repo.source or "", f"patch {p} is not inside one of the product's "
                                "path: repositories (kas applies patches kept in a repository)",
                                line=rr.repo.line, field=f"repos.{rr.repo.name}.patches")
        out[f"{i + 1:03d}-{p.name}"] = {"repo": holder,
                                        "path": str(p.relative_to(resolved[holder].repo.path))}
    return out


def kas_document(product: Product, board: Board, variant: Variant,
                 resolved: dict[str, ResolvedRepo], verify_key: Path | None = None) -> dict:
    repos: dict[str, dict | None] = {}
    for name in sorted(resolved):
        rr = resolved[name]
        entry: dict = {}
        if rr.repo.is_local:
            entry["path"] = str(rr.repo.path)
        else:
            entry["url"] = rr.repo.url
            if rr.branch:
                entry["branch"] = rr.branch
            if rr.tag and not rr.commit:
                entry["tag"] = rr.tag
            if rr.commit:
                entry["commit"] = rr.commit
        patches = _patches(rr, resolved)
        if patches:
            entry["patches"] = patches
        if not rr.layers:  # a repo without layers (bitbake): kas must not add its root
            entry["layers"] = {".": "disabled"}
        elif rr.layers != (".",):
            entry["layers"] = {layer: None for layer in rr.layers}
        repos[name] = entry
    if verify_key is not None:
        # the verification key's directory, as a repo without layers: kas leaves it alone and
        # `buildctl build` mounts it (read-only) like any local repository
        repos[verifykey.KEY_DIR] = {"path": str(verify_key.parent), "layers": {".": "disabled"}}
    secs = localconf.sections(product, board, variant,
                              str(verify_key) if verify_key is not None else None)
    header = ("# Generated by buildctl from " + ", ".join(
        str(p.name) for p in (product.path, board.path) if p) + f"; board {board.name}, variant "
        f"{variant.name}, series {product.series}.\n")
    doc = {
        "header": {"version": KAS_FILE_VERSION},
        "machine": board.machine,
        "distro": product.distro,
        "target": list(product.targets) if len(product.targets) > 1 else product.targets[0],
        "repos": repos,
        "local_conf_header": {"00-buildctl": header, **{k: localconf.render(v) for k, v in secs.items()}},
    }
    env = localconf.kas_env(product, board, variant)
    if env:
        doc = {**{k: v for k, v in doc.items() if k != "local_conf_header"}, "env": env,
               "local_conf_header": doc["local_conf_header"]}
    return doc


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so the local.conf text reads as it will be."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000,
                     allow_unicode=True)


def compose_board(product: Product, board_name: str, variant: str | None, out_dir: Path,
                  lock: Lock | None = None, head_of=None) -> ComposedBoard:
    board = product.boards[board_name]
    var = product.variant(variant)
    resolved = resolve(product, board, lock, head_of)
    pem = verifykey.public_pem(product)  # read (and refused) before anything is written
    key = verifykey.write(pem, out_dir) if pem is not None else None
    doc = kas_document(product, board, var, resolved, key)
    kas_file = Path(out_dir) / f"{board.name}.yml"
    write_atomic(kas_file, dump(doc))
    repos = {n: {("path" if r.repo.is_local else "url"): str(r.repo.path) if r.repo.is_local
                 else r.repo.url, "commit": r.commit, "branch": r.branch,
                 "layers": list(r.layers)} for n, r in resolved.items()}
    if key is not None:
        repos[verifykey.KEY_DIR] = {"path": str(key.parent), "commit": None, "branch": None, "layers": []}
    return ComposedBoard(board=board.name, machine=board.machine, variant=var.name,
                         kas_file=kas_file, repos=repos)
