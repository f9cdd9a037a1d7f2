"""The product lock: one commit per repository for the whole board matrix.

A kas-compatible file (``header`` + ``overrides: repos: <id>: {url, branch, commit}``), so it
also works as a kas include. Default location: ``<product>.lock.yml`` beside the product.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from buildctl.errors import ManifestError, UserError
from buildctl.fsutil import write_atomic
from buildctl.manifest.model import Product
from buildctl.manifest.yamlsrc import load as load_yaml

KAS_FILE_VERSION = 23  # the current kas project-file format (kas 5.5)


@dataclass
class LockEntry:
    commit: str
    url: str | None = None
    branch: str | None = None


@dataclass
class Lock:
    path: Path
    repos: dict[str, LockEntry] = field(default_factory=dict)
    series: str | None = None

    def commit(self, name: str) -> str | None:
        e = self.repos.get(name)
        return e.commit if e else None


def default_path(product: Product) -> Path:
    return product.path.with_name(product.path.stem + ".lock.yml")


def find(product: Product, explicit: Path | None = None) -> Lock | None:
    """The lock that applies to the product: the explicit one (which must exist) or
    <product>.lock.yml when present; a lock written for another series does not apply."""
    path = explicit or default_path(product)
    if not path.exists():
        if explicit:
            raise UserError(f"{path}: lock file not found")
        return None
    lock = load(path)
    if lock.series and lock.series != product.series:
        return None
    return lock


def load(path: Path) -> Lock:
    data, smap = load_yaml(path)
    if not isinstance(data, dict) or "overrides" not in data:
        raise ManifestError(path, "not a lock file (no overrides: repos:)")
    repos = (data.get("overrides") or {}).get("repos") or {}
    if not isinstance(repos, dict):
        raise smap.error(("overrides", "repos"), "must be a mapping of repo ids")
    out = Lock(path=path)
    for name, e in repos.items():
        if not isinstance(e, dict) or not isinstance(e.get("commit"), str) or len(e["commit"]) != 40:
            raise smap.error(("overrides", "repos", name, "commit"), "needs a 40-character commit id")
        out.repos[name] = LockEntry(commit=e["commit"], url=e.get("url"), branch=e.get("branch"))
    # kas rejects unknown keys, so the series lives in the file's first comment line
    first = path.read_text().splitlines()[0] if path.exists() else ""
    if first.startswith("# buildctl lock for series "):
        out.series = first.split()[-1]
    return out


def dump(lock: Lock) -> str:
    repos = {}
    for name in sorted(lock.repos):
        e = lock.repos[name]
        entry = {}
        if e.url:
            entry["url"] = e.url
        if e.branch:
            entry["branch"] = e.branch
        entry["commit"] = e.commit
        repos[name] = entry
    body = yaml.safe_dump({"header": {"version": KAS_FILE_VERSION}, "overrides": {"repos": repos}},
                          sort_keys=False, default_flow_style=False)
    head = f"# buildctl lock for series {lock.series}\n" if lock.series else ""
    return head + "# Written by `buildctl lock`; one commit per repository for every board.\n" + body


def save(lock: Lock) -> None:
    write_atomic(lock.path, dump(lock))
