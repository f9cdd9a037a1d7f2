"""What goes where: the files of a verified bundle, with their digests and properties.

Everything comes from the bundle's release.json (files, boards, lock, builder) plus the bundle's
own SHA256SUMS, release.json and provenance envelope. Remote paths are
``<product>/<version>/<path in the bundle>``; board files already sit under
``<board>-<variant>/``. The bundle-level files come last so that a reader who sees SHA256SUMS
knows every file it names is already there.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from buildctl.errors import UserError
from buildctl.release import bundle as B


def last_files(root: Path) -> list[str]:
    """The bundle-level files (release.json, the provenance envelope, SHA256SUMS), uploaded
    after every board file, SHA256SUMS last: its presence marks a complete release."""
    names = sorted(p.name for p in root.iterdir() if p.is_file())
    return [n for n in names if n != B.SUMS] + ([B.SUMS] if B.SUMS in names else [])


@dataclass(frozen=True)
class Digests:
    sha256: str
    sha1: str
    md5: str


def digests(path: Path) -> Digests:
    """All three digests in one streamed pass."""
    s256, s1, m5 = hashlib.sha256(), hashlib.sha1(), hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            s256.update(chunk)
            s1.update(chunk)
            m5.update(chunk)
    return Digests(s256.hexdigest(), s1.hexdigest(), m5.hexdigest())


@dataclass
class Item:
    rel: str  # path inside the bundle
    local: Path
    size: int
    sha256: str
    kind: str
    board: str | None  # board name (None for bundle-level files)
    variant: str | None
    _d: Digests | None = field(default=None, repr=False)

    def digests(self) -> Digests:
        if self._d is None:
            self._d = digests(self.local)
            if self._d.sha256 != self.sha256:
                raise UserError(f"{self.local}: changed since the bundle was verified")
        return self._d


@dataclass
class Plan:
    root: Path
    product: str
    version: str
    items: list[Item]
    properties: dict[str, str]  # release-wide: product, version, git revision, builder digest
    board_properties: dict[str, dict[str, str]]  # dir -> board, variant, sbom digest
    release: dict

    @property
    def prefix(self) -> str:
        return f"{self.product}/{self.version}"

    def remote(self, item: Item) -> str:
        return f"{self.prefix}/{item.rel}"

    def props_for(self, item: Item) -> dict[str, str]:
        out = dict(self.properties)
        if item.board is not None:
            out.update(self.board_properties.get(item.rel.split("/", 1)[0], {}))
        out["kind"] = item.kind
        return out

    @property
    def total_bytes(self) -> int:
        return sum(i.size for i in self.items)


def _git_revision(rel: dict) -> str | None:
    """The product repository's commit if the lock names it, else the first layer commit."""
    lock = rel.get("lock") or {}
    for name in (rel.get("product"), "product", "self"):
        if name in lock and lock[name]:
            return lock[name]
    return next((v for _, v in sorted(lock.items()) if v), None)


def load_plan(root: Path) -> Plan:
    root = Path(root)
    try:
        rel = json.loads((root / B.RELEASE_JSON).read_bytes())
    except FileNotFoundError:
        raise UserError(f"{root}: not a release bundle (no {B.RELEASE_JSON})") from None
    except ValueError as exc:
        raise UserError(f"{root / B.RELEASE_JSON}: not JSON ({exc})") from None
    boards = {b["dir"]: b for b in rel.get("boards", [])}
    sums = B.parse_sums((root / B.SUMS).read_text())
    items: list[Item] = []
    for f in sorted(rel.get("files", []), key=lambda f: f["path"]):
        b = boards.get(f.get("board") or f["path"].split("/", 1)[0])
        items.append(Item(f["path"], root / f["path"], int(f["size"]), f["sha256"],
                          f.get("kind", "other"), b and b["board"], b and b["variant"]))
    for name in last_files(root):
        p = root / name
        items.append(Item(name, p, p.stat().st_size,
                              sums.get(name) or B.sha256_file(p), "release-meta", None, None))
    props = {"product": rel["product"], "version": str(rel["version"])}
    rev = _git_revision(rel)
    if rev:
        props["git.revision"] = rev
    digest = (rel.get("builder") or {}).get("digest")
    if digest:
        props["builder.digest"] = digest
    by_path = {f["path"]: f for f in rel.get("files", [])}
    board_props = {}
    for d, b in boards.items():
        bp = {"board": b["board"], "variant": b["variant"]}
        sbom = by_path.get(f"{d}/sbom.spdx.json") or by_path.get(f"{d}/sbom.cdx.json")
        if sbom:
            bp["sbom.sha256"] = sbom["sha256"]
        board_props[d] = bp
    if not items or items[-1].rel != B.SUMS:
        raise UserError(f"{root}: no {B.SUMS}: not a release bundle")
    return Plan(root, rel["product"], str(rel["version"]), items, props, board_props, rel)
