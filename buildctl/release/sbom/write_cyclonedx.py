"""CycloneDX 1.6 JSON: the image as ``metadata.component``, its packages as components with
licences, PURLs/CPEs and runtime ``dependencies``; buildctl's inputs (layer repositories at
their commits, the builder image, buildctl) in ``formulation``. The VEX companion document
lives in buildctl/release/vex.py."""
from __future__ import annotations

import uuid

from buildctl.release.sbom.model import ImageSbom, SbomContext

SPEC = "1.6"
_UUID_NS = uuid.UUID("6f1c1f7e-8d1b-5e8a-9b0e-6275696c6463")


def serial(ctx: SbomContext, kind: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_UUID_NS, f'{ctx.doc_name}/{kind}')}"


def bom_ref(name: str) -> str:
    return f"pkg-{name}"


def build_cyclonedx(sb: ImageSbom, ctx: SbomContext) -> dict:
    image_ref = f"image-{sb.image}"
    comps = []
    deps = [{"ref": image_ref, "dependsOn": [bom_ref(n) for n in sorted(sb.components)]}]
    for name in sorted(sb.components):
        c = sb.components[name]
        o = {"type": "library", "bom-ref": bom_ref(name), "name": c.name}
        if c.version:
            o["version"] = c.version
        if c.purl:
            o["purl"] = c.purl
        if c.cpes:
            o["cpe"] = c.cpes[0]
        if c.summary:
            o["description"] = c.summary
        if c.license and c.license not in ("NOASSERTION", "NONE"):
            o["licenses"] = [{"expression": c.license}]
        props = []
        if c.recipe:
            props.append({"name": "yocto:recipe", "value": c.recipe})
        props += [{"name": "yocto:cpe", "value": cpe} for cpe in c.cpes[1:]]
        if props:
            o["properties"] = props
        if c.homepage:
            o["externalReferences"] = [{"type": "website", "url": c.homepage}]
        comps.append(o)
        deps.append({"ref": bom_ref(name), "dependsOn": [bom_ref(d) for d in c.depends]})
    for path, sha in sb.image_files:
        comps.append({"type": "file", "bom-ref": f"file-{path}", "name": path,
                      "hashes": [{"alg": "SHA-256", "content": sha}]})
    formulation_comps = []
    for inp in ctx.inputs:
        o = {"type": {"layer-repo": "data", "builder-image": "container",
                      "tool": "application"}.get(inp.kind, "data"),
             "bom-ref": f"input-{inp.kind}-{inp.name}", "name": inp.name,
             "version": inp.version or "unknown",
             "properties": [{"name": "buildctl:input", "value": inp.kind}]}
        if inp.url and "://" in inp.url:
            o["externalReferences"] = [{"type": "vcs", "url": inp.url,
                                        "comment": f"at commit {inp.version}"}]
        formulation_comps.append(o)
    doc = {
        "bomFormat": "CycloneDX", "specVersion": SPEC, "serialNumber": serial(ctx, "bom"),
        "version": 1,
        "metadata": {
            "timestamp": ctx.created,
            "tools": {"components": [{"type": "application", "name": "buildctl",
                                      "version": ctx.tool_version}]},
            "component": {"type": "operating-system", "bom-ref": image_ref, "name": sb.image,
                          "version": sb.image_version or ctx.version,
                          "description": f"{ctx.product} {ctx.version} for {ctx.board} "
                                         f"({ctx.variant})"},
            "properties": [{"name": "buildctl:source-format", "value": sb.source_format}],
        },
        "components": comps,
        "dependencies": deps,
    }
    if formulation_comps:
        doc["formulation"] = [{"bom-ref": "formulation-build", "components": formulation_comps}]
    return doc
