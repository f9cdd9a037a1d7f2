"""Collect: the outputs a board promises, found under Yocto's stable names in its deploy dir.

OE-core deploys ``<IMAGE_NAME>.<suffix>`` and a symlink ``<IMAGE_LINK_NAME>.<suffix>`` to it
(IMAGE_LINK_NAME = ``<image>-<MACHINE>.rootfs`` from nanbield on; ``<image>-<MACHINE>``
before). Collect follows the link to the real file and copies (hard-links) it into the bundle
under the stable name. A promised output that is missing fails the release with its name;
optional ones (bmap, CVE reports, VEX) are taken when present.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from buildctl.release.errors import ReleaseError

# image type (IMAGE_FSTYPES / the board's image_types) -> file suffixes it may deploy as
IMAGE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "tegraflash": ("tegraflash.tar", "tegraflash.tar.gz", "tegraflash.zip"),
    "wic": ("wic", "wic.gz", "wic.bz2", "wic.zst", "wic.xz"),
}
# suffix -> kind, for everything collect may pick up
KINDS: dict[str, str] = {
    "mender": "mender", "manifest": "manifest", "bmap": "bmap", "wic.bmap": "bmap",
    "spdx.tar.zst": "oe-sbom", "spdx.json": "oe-sbom",
    "json": "oe-cve", "sbom-cve-check.yocto.json": "oe-cve",
    "sbom-cve-check.spdx.json": "oe-sbom-cve", "vex.json": "oe-vex", "cve.txt": "oe-cve-text",
}
OPTIONAL = ("bmap", "wic.bmap", "sbom-cve-check.yocto.json", "sbom-cve-check.spdx.json",
            "vex.json", "json")
SPDX2_SERIES = ("kirkstone", "langdale", "mickledore", "nanbield", "scarthgap")


@dataclass(frozen=True)
class BoardOutputs:
    """What a board's manifest promises to deploy."""

    machine: str
    image: str  # image recipe, e.g. core-image-minimal
    image_types: tuple[str, ...]
    series: str
    spdx: bool = True


@dataclass(frozen=True)
class Collected:
    name: str  # stable name in the bundle (<IMAGE_LINK_NAME>.<suffix>)
    kind: str
    source: Path  # the real file in the deploy dir
    suffix: str


def link_names(out: BoardOutputs) -> tuple[str, ...]:
    return (f"{out.image}-{out.machine}.rootfs", f"{out.image}-{out.machine}")


def _find(deploy: Path, stems: tuple[str, ...], suffix: str) -> tuple[Path | None, str | None]:
    """(real file, stable name) or (None, why-not)."""
    for stem in stems:
        link = deploy / f"{stem}.{suffix}"
        if link.is_symlink() and not link.exists():
            return None, f"{link.name} is a link to {os.readlink(link)}, which does not exist"
        if link.is_file():
            return link.resolve(), link.name
    return None, None


def collect(deploy: Path, out: BoardOutputs, board: str) -> list[Collected]:
    deploy = Path(deploy)
    if not deploy.is_dir():
        raise ReleaseError(f"{board}: deploy directory {deploy} does not exist")
    stems = link_names(out)
    found: list[Collected] = []

    def want(suffixes: tuple[str, ...], kind: str, what: str) -> None:
        why = None
        for suffix in suffixes:
            real, name = _find(deploy, stems, suffix)
            if real is not None:
                found.append(Collected(name, kind, real, suffix))
                return
            why = why or name
        expected = " or ".join(f"{stems[0]}.{s}" for s in suffixes)
        raise ReleaseError(f"{board}: promised output missing: {expected} ({what}) in {deploy}"
                           + (f": {why}" if why else ""))

    for t in out.image_types:
        suffixes = IMAGE_SUFFIXES.get(t, (t,))
        want(suffixes, KINDS.get(t, "image"), f"image type {t}")
    want(("manifest",), "manifest", "the image manifest")
    if out.spdx:
        order = (("spdx.tar.zst", "spdx.json") if out.series in SPDX2_SERIES
                 else ("spdx.json",))
        want(order, "oe-sbom", "create-spdx output")
    have = {c.suffix for c in found}
    for suffix in OPTIONAL:
        if suffix in have:
            continue
        real, name = _find(deploy, stems, suffix)
        if real is None:
            continue
        if suffix == "json":
            from buildctl.release.cve import is_cve_check_json
            if not is_cve_check_json(real):
                continue
        found.append(Collected(name, KINDS[suffix], real, suffix))
    return found


def place(files: list[Collected], dest: Path) -> None:
    """Copy each collected file into dest under its stable name (a copy, not a hard link: the
    bundle must not change when the deploy dir does, nor the other way round)."""
    dest.mkdir(parents=True, exist_ok=True)
    for c in files:
        shutil.copyfile(c.source, dest / c.name)
