"""The SPDX 3.0.1 JSON-LD document per board, produced from the merged view.

Same shape as OE-core's image SBOM (an ``SpdxDocument`` whose root is a ``software_Sbom``,
``software_Package`` elements with purpose ``install``, ``contains``/``dependsOn``/
``hasDeclaredLicense`` relationships) plus buildctl's inputs: layer repositories (purpose
``source``), the builder image (``container``) and buildctl (``application``), each an input
of one ``build_Build`` that produced the image.
"""
from __future__ import annotations

import hashlib

from buildctl.release.sbom.model import ImageSbom, SbomContext
from buildctl.release.sbom.write_spdx23 import namespace


def build_spdx3(sb: ImageSbom, ctx: SbomContext) -> dict:
    base = namespace(ctx, "spdx3")
    ci = "_:CreationInfo0"
    tool = f"{base}/tool/buildctl"
    org = f"{base}/agent/buildctl"
    graph: list[dict] = [
        {"type": "CreationInfo", "@id": ci, "specVersion": "3.0.1", "created": ctx.created,
         "createdBy": [org], "createdUsing": [tool]},
        {"type": "Organization", "spdxId": org, "creationInfo": ci, "name": "buildctl"},
        {"type": "Tool", "spdxId": tool, "creationInfo": ci, "name": f"buildctl {ctx.tool_version}"},
    ]
    elements: list[str] = []
    n = [0]

    def add(obj: dict) -> str:
        obj["creationInfo"] = ci
        graph.append(obj)
        elements.append(obj["spdxId"])
        return obj["spdxId"]

    def rel(frm: str, typ: str, to: list[str], scope: str | None = None) -> None:
        n[0] += 1
        o = {"type": "LifecycleScopedRelationship" if scope else "Relationship",
             "spdxId": f"{base}/relationship/{n[0]}", "from": frm, "relationshipType": typ,
             "to": to}
        if scope:
            o["scope"] = scope
        add(o)

    image = add({"type": "software_Package", "spdxId": f"{base}/image/{_slug(sb.image)}",
                 "name": sb.image, "software_packageVersion": sb.image_version or ctx.version,
                 "software_primaryPurpose": "operatingSystem",
                 "comment": f"{ctx.product} {ctx.version} for {ctx.board} ({ctx.variant})"})
    build = add({"type": "build_Build", "spdxId": f"{base}/build/image",
                 "build_buildType": "https://buildctl.invalid/release/v1",
                 "name": f"{ctx.doc_name}"})
    rel(build, "hasOutput", [image], "build")
    files = []
    for path, sha in sb.image_files:
        files.append(add({"type": "software_File", "spdxId": f"{base}/file/{_slug(path)}",
                          "name": path, "software_primaryPurpose": "filesystemImage",
                          "verifiedUsing": [{"type": "Hash", "algorithm": "sha256",
                                             "hashValue": sha}]}))
    if files:
        rel(build, "hasOutput", files, "build")
    ids = {name: f"{base}/package/{_slug(name)}" for name in sb.components}
    licenses: dict[str, str] = {}
    for name in sorted(sb.components):
        c = sb.components[name]
        o = {"type": "software_Package", "spdxId": ids[name], "name": c.name,
             "software_primaryPurpose": "install"}
        if c.version:
            o["software_packageVersion"] = c.version
        if c.purl:
            o["software_packageUrl"] = c.purl
        if c.homepage:
            o["software_homePage"] = c.homepage
        if c.summary:
            o["summary"] = c.summary
        ext = [{"type": "ExternalIdentifier", "externalIdentifierType": "cpe23", "identifier": cpe}
               for cpe in c.cpes]
        if c.purl:
            ext.append({"type": "ExternalIdentifier", "externalIdentifierType": "packageUrl",
                        "identifier": c.purl})
        if ext:
            o["externalIdentifier"] = ext
        add(o)
        if c.license and c.license not in ("NOASSERTION", "NONE"):
            if c.license not in licenses:
                licenses[c.license] = add({
                    "type": "simplelicensing_LicenseExpression",
                    "spdxId": f"{base}/license/{hashlib.sha1(c.license.encode()).hexdigest()[:16]}",
                    "simplelicensing_licenseExpression": c.license})
            rel(ids[name], "hasDeclaredLicense", [licenses[c.license]])
    if ids:
        rel(image, "contains", [ids[k] for k in sorted(ids)])
    for name in sorted(sb.components):
        deps = [ids[d] for d in sb.components[name].depends if d in ids]
        if deps:
            rel(ids[name], "dependsOn", deps, "runtime")
    inputs = []
    for inp in ctx.inputs:
        purpose = {"layer-repo": "source", "builder-image": "container",
                   "tool": "application"}.get(inp.kind, "other")
        o = {"type": "software_Package", "spdxId": f"{base}/input/{_slug(inp.kind + '-' + inp.name)}",
             "name": inp.name, "software_primaryPurpose": purpose,
             "software_packageVersion": inp.version or "unknown",
             "comment": f"buildctl input: {inp.kind}"}
        if inp.url and inp.url.startswith(("http://", "https://", "ssh://", "git://")):
            o["software_downloadLocation"] = inp.url
        inputs.append(add(o))
    if inputs:
        rel(build, "hasInput", inputs, "build")
    sbom = f"{base}/sbom/{_slug(sb.image)}"
    graph.append({"type": "software_Sbom", "spdxId": sbom, "creationInfo": ci,
                  "name": ctx.doc_name, "software_sbomType": ["build"], "rootElement": [image],
                  "element": list(elements)})
    graph.append({"type": "SpdxDocument", "spdxId": f"{base}/document", "creationInfo": ci,
                  "name": ctx.doc_name, "rootElement": [sbom], "dataLicense": _cc0(graph, ci, base),
                  "profileConformance": ["build", "core", "simpleLicensing", "software"]})
    return {"@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld", "@graph": graph}


def _cc0(graph: list[dict], ci: str, base: str) -> str:
    lid = f"{base}/license/data-CC0-1.0"
    graph.append({"type": "simplelicensing_LicenseExpression", "spdxId": lid, "creationInfo": ci,
                  "simplelicensing_licenseExpression": "CC0-1.0"})
    return lid


def _slug(text: str) -> str:
    import re
    clean = re.sub(r"[^A-Za-z0-9._\-]", "-", text)
    return clean if clean == text else f"{clean}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
