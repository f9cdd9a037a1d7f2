"""Read create-spdx-3.0's image SBOM (``<IMAGE_NAME>.spdx.json``, SPDX 3.0.1 JSON-LD).

One ``@graph``: the ``SpdxDocument`` whose root is a ``software_Sbom``; installed packages are
``software_Package`` elements with purpose ``install`` that the rootfs build
(``build_buildType .../do_create_rootfs_spdx/rootfs``) ``hasInput``; runtime dependencies are
``dependsOn`` between packages; licences hang off ``hasDeclaredLicense`` as
``simplelicensing_LicenseExpression`` elements; ``software_packageUrl`` and ``cpe23``
external identifiers are kept as they are.
"""
from __future__ import annotations

import json
from pathlib import Path

from buildctl.release.errors import ReleaseError
from buildctl.release.sbom.model import Component, ImageSbom


def load_graph(path: Path) -> list[dict]:
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"{path}: not a JSON document ({exc})") from None
    graph = data.get("@graph") if isinstance(data, dict) else None
    if not isinstance(graph, list):
        raise ReleaseError(f"{path}: not SPDX 3 JSON-LD (no @graph)")
    ctx = str(data.get("@context", ""))
    if "spdx.org/rdf/3.0" not in ctx:
        raise ReleaseError(f"{path}: @context {ctx!r} is not SPDX 3.0")
    return graph


def read_spdx3(path: Path) -> ImageSbom:
    graph = load_graph(path)
    by_id = {o.get("spdxId"): o for o in graph if isinstance(o, dict) and o.get("spdxId")}
    docs = [o for o in graph if o.get("type") == "SpdxDocument"]
    if not docs:
        raise ReleaseError(f"{path}: no SpdxDocument element")
    rels = [o for o in graph if "relationshipType" in o]
    sbom = next((by_id.get(r) for r in docs[0].get("rootElement", [])
                 if by_id.get(r, {}).get("type") == "software_Sbom"), None)
    image_name = docs[0].get("name", Path(path).name)
    image = (sbom or {}).get("name") or image_name
    installed: list[str] = []
    for r in rels:
        src = by_id.get(r.get("from"), {})
        if (r.get("relationshipType") == "hasInput" and src.get("type") == "build_Build"
                and str(src.get("build_buildType", "")).endswith("/rootfs")):
            installed += r.get("to", [])
    if not installed:
        installed = [i for i, o in by_id.items() if o.get("type") == "software_Package"
                     and o.get("software_primaryPurpose") == "install"]
    sb = ImageSbom(image=image, image_version="", image_name=image_name,
                   source_format="spdx-3.0.1")
    names: dict[str, str] = {}
    for pid in dict.fromkeys(installed):
        o = by_id.get(pid)
        if o is None:
            raise ReleaseError(f"{path}: the rootfs lists {pid}, which is not in the document")
        comp = Component(name=o.get("name", pid), version=o.get("software_packageVersion", ""),
                         purl=o.get("software_packageUrl"),
                         cpes=tuple(x.get("identifier") for x in o.get("externalIdentifier", [])
                                    if x.get("externalIdentifierType") == "cpe23"),
                         homepage=o.get("software_homePage"), summary=o.get("summary"))
        if comp.purl and comp.purl.startswith("pkg:yocto/"):
            comp.recipe = comp.purl.split("/")[-1].split("@")[0]
        sb.components[comp.name] = comp
        names[pid] = comp.name
    depends: dict[str, set[str]] = {n: set() for n in sb.components}
    for r in rels:
        frm, typ = r.get("from"), r.get("relationshipType")
        if frm not in names:
            continue
        if typ == "hasDeclaredLicense":
            lic = by_id.get((r.get("to") or [None])[0], {})
            expr = lic.get("simplelicensing_licenseExpression")
            if expr:
                sb.components[names[frm]].license = expr
        elif typ == "dependsOn":
            depends[names[frm]].update(names[t] for t in r.get("to", []) if t in names)
    for n, deps in depends.items():
        sb.components[n].depends = tuple(sorted(deps))
    return sb
