"""One self-contained SPDX 2.3 JSON document per board.

Where OE's 2.2 output breaks spdx-tools' rules, this document does not (each repair is noted
in the ImageSbom): CPE references use the type ``cpe23Type`` (OE writes the RDF URI), licence
references from other documents are made local with their texts in
``hasExtractedLicensingInfos``, package names that are not valid SPDXIDs are encoded, and the
document DESCRIBES the image (OE's image document has no DESCRIBES).
"""
from __future__ import annotations

import hashlib
import re

from buildctl.release.sbom.model import ImageSbom, SbomContext

_ID_BAD = re.compile(r"[^A-Za-z0-9.\-]")
_LICREF = re.compile(r"LicenseRef-[A-Za-z0-9.\-]+")
_TOKEN = re.compile(r"[A-Za-z0-9.+\-]+")


def spdx_id(prefix: str, name: str) -> str:
    clean = _ID_BAD.sub("-", name)
    if clean != name:  # keep it unique when characters were replaced
        clean += "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"SPDXRef-{prefix}-{clean}"


def namespace(ctx: SbomContext, kind: str) -> str:
    digest = hashlib.sha256(f"{ctx.doc_name}/{kind}".encode()).hexdigest()[:32]
    return f"https://buildctl.invalid/spdx/{ctx.product}/{ctx.version}/{ctx.board}-{ctx.variant}-{digest}"


def license_expression(expr: str, known_ids: set[str], sb: ImageSbom) -> str:
    """An expression spdx-tools accepts: ids off the SPDX list become LicenseRef- (with text)."""
    if not expr or expr in ("NOASSERTION", "NONE"):
        return expr or "NOASSERTION"
    licensing = _licensing()
    out = []
    for tok in re.split(r"(\s+|\(|\))", expr):
        if not tok or tok.isspace() or tok in "()" or tok in ("AND", "OR", "WITH"):
            out.append(tok)
            continue
        if tok.startswith("LicenseRef-") or tok in known_ids:
            out.append(tok)
            continue
        sym = licensing.known_symbols.get(tok) or licensing.known_symbols_lowercase.get(tok.lower())
        if sym is not None and not getattr(sym, "is_exception", False):
            out.append(sym.key)
            continue
        ref = "LicenseRef-" + _ID_BAD.sub("-", tok)
        sb.repair(f"licence {tok!r} is not on the SPDX licence list: written as {ref}")
        sb.license_texts.setdefault(ref, _text(ref, tok))
        out.append(ref)
    return "".join(out)


_LIC = None


def _licensing():
    global _LIC
    if _LIC is None:
        from license_expression import get_spdx_licensing
        _LIC = get_spdx_licensing()
    return _LIC


def _text(ref: str, name: str):
    from buildctl.release.sbom.model import LicenseText
    return LicenseText(ref, name, f"The licence {name} as named by the Yocto recipe; its text "
                       "was not part of the source SBOM.")


def build_spdx23(sb: ImageSbom, ctx: SbomContext) -> dict:
    known: set[str] = set()
    image_id = spdx_id("Image", sb.image)
    packages = [{
        "SPDXID": image_id, "name": sb.image, "versionInfo": sb.image_version or ctx.version,
        "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
        "supplier": "NOASSERTION", "primaryPackagePurpose": "OPERATING-SYSTEM",
        "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "comment": f"{ctx.product} {ctx.version} for {ctx.board} ({ctx.variant}): {sb.image_name}",
    }]
    rels = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
             "relatedSpdxElement": image_id}]
    if sb.source_format == "spdx-2.2":
        sb.repair("the image document had no DESCRIBES relationship: the document describes the image")
    ids = {name: spdx_id("Package", name) for name in sb.components}
    for name in sorted(sb.components):
        c = sb.components[name]
        p = {"SPDXID": ids[name], "name": c.name, "versionInfo": c.version or "NOASSERTION",
             "downloadLocation": c.sources[0][0] if c.sources else "NOASSERTION",
             "filesAnalyzed": False, "supplier": "Organization: OpenEmbedded ()",
             "primaryPackagePurpose": "LIBRARY", "licenseConcluded": "NOASSERTION",
             "licenseDeclared": license_expression(c.license, known, sb),
             "copyrightText": "NOASSERTION"}
        if c.homepage:
            p["homepage"] = c.homepage
        if c.summary:
            p["summary"] = c.summary
        if c.recipe:
            p["sourceInfo"] = f"built by the Yocto recipe {c.recipe}"
        refs = []
        for cpe in c.cpes:
            fixed = cpe23(cpe)
            if fixed != cpe:
                sb.repair("CPE names with unescaped special characters (e.g. '+' in a version) "
                          "were escaped as the CPE 2.3 formatted-string binding requires")
            refs.append({"referenceCategory": "SECURITY", "referenceType": "cpe23Type",
                         "referenceLocator": fixed})
        if c.purl:
            refs.append({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                         "referenceLocator": c.purl})
        if refs:
            p["externalRefs"] = refs
        packages.append(p)
        rels.append({"spdxElementId": image_id, "relationshipType": "CONTAINS",
                     "relatedSpdxElement": ids[name]})
        for dep in c.depends:
            rels.append({"spdxElementId": ids[name], "relationshipType": "DEPENDS_ON",
                         "relatedSpdxElement": ids[dep]})
    if sb.source_format == "spdx-2.2" and any(c.cpes for c in sb.components.values()):
        sb.repair("CPE references had the type http://spdx.org/rdf/references/cpe23Type: written as cpe23Type")
    for i, (path, sha) in enumerate(sb.image_files):
        fid = spdx_id("ImageFile", path)
        packages.append({"SPDXID": fid, "name": path.rsplit("/", 1)[-1], "versionInfo": ctx.version,
                         "packageFileName": path, "downloadLocation": "NOASSERTION",
                         "filesAnalyzed": False, "supplier": "NOASSERTION",
                         "primaryPackagePurpose": "FILE",
                         "checksums": [{"algorithm": "SHA256", "checksumValue": sha}],
                         "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
                         "copyrightText": "NOASSERTION"})
        rels.append({"spdxElementId": fid, "relationshipType": "GENERATED_FROM",
                     "relatedSpdxElement": image_id})
    for inp in ctx.inputs:
        iid = spdx_id("Input", f"{inp.kind}-{inp.name}")
        p = {"SPDXID": iid, "name": inp.name, "versionInfo": inp.version or "NOASSERTION",
             "downloadLocation": _vcs(inp.url, inp.version) if inp.kind == "layer-repo" and inp.url
             else "NOASSERTION", "filesAnalyzed": False, "supplier": "NOASSERTION",
             "primaryPackagePurpose": {"layer-repo": "SOURCE", "builder-image": "CONTAINER",
                                       "tool": "APPLICATION"}.get(inp.kind, "OTHER"),
             "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
             "copyrightText": "NOASSERTION", "comment": f"buildctl input: {inp.kind}"}
        packages.append(p)
        rels.append({"spdxElementId": iid, "relationshipType":
                     "BUILD_TOOL_OF" if inp.kind != "layer-repo" else "BUILD_DEPENDENCY_OF",
                     "relatedSpdxElement": image_id})
    used = set()
    for p in packages:
        used.update(_LICREF.findall(p.get("licenseDeclared", "")))
    doc = {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": ctx.doc_name, "documentNamespace": namespace(ctx, "spdx23"),
        "creationInfo": {"created": ctx.created,
                         "creators": [f"Tool: buildctl-{ctx.tool_version}",
                                      "Organization: OpenEmbedded ()"],
                         "comment": f"Merged from OE-core's {sb.source_format} output"
                                    + (f"; repaired: {'; '.join(sb.repairs)}" if sb.repairs else "")},
        "packages": packages, "relationships": rels,
    }
    texts = [sb.license_texts[r] for r in sorted(used) if r in sb.license_texts]
    for r in sorted(used - set(sb.license_texts)):
        texts.append(_text(r, r[len("LicenseRef-"):]))
    if texts:
        doc["hasExtractedLicensingInfos"] = [{"licenseId": t.license_id, "name": t.name,
                                              "extractedText": t.text} for t in texts]
    return doc


_CPE_PLAIN = re.compile(r"[A-Za-z0-9._\-*?]")


def cpe23(cpe: str) -> str:
    """Escape what the CPE 2.3 formatted string binding does not allow unquoted ('+', '~'...)."""
    parts = re.split(r"(?<!\\):", cpe)
    if len(parts) != 13 or parts[:2] != ["cpe", "2.3"]:
        return cpe
    out = parts[:2]
    for comp in parts[2:]:
        if comp in ("*", "-"):
            out.append(comp)
            continue
        esc, i = [], 0
        while i < len(comp):
            ch = comp[i]
            if ch == "\\" and i + 1 < len(comp):
                esc.append(comp[i:i + 2])
                i += 2
                continue
            esc.append(ch if _CPE_PLAIN.match(ch) else "\\" + ch)
            i += 1
        out.append("".join(esc))
    return ":".join(out)


def _vcs(url: str, commit: str) -> str:
    if url.startswith(("http://", "https://", "ssh://", "git://")):
        return f"git+{url}@{commit}"
    return "NOASSERTION"
