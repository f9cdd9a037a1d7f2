"""Read scarthgap's create-spdx-2.2 image tarball (``<IMAGE_NAME>.spdx.tar.zst``).

The tarball holds the image document, every document reachable from it through
``externalDocumentRefs`` (package, runtime and recipe documents, as ``<doc name>.spdx.json``)
and ``index.json`` (filename, documentNamespace, sha1). The image document's package is
``SPDXRef-Image-<IMAGE_NAME>``; it ``CONTAINS DocumentRef-<pkg>:SPDXRef-Package-<pkg>`` for
every installed package. Package documents point at their recipe document (GENERATED_FROM);
runtime documents carry RUNTIME_DEPENDENCY_OF edges between packages. Every reference
carries the SHA1 of the referenced file: a document that does not match is corrupted.
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from buildctl.release.errors import ReleaseError
from buildctl.release.sbom.model import Component, ImageSbom, LicenseText


def read_tar_members(path: Path) -> dict[str, bytes]:
    import zstandard

    try:
        with open(path, "rb") as fh:
            raw = zstandard.ZstdDecompressor().stream_reader(fh).read()
        members: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for m in tar:
                if m.isfile():
                    members[m.name] = tar.extractfile(m).read()
    except (zstandard.ZstdError, tarfile.TarError, OSError) as exc:
        raise ReleaseError(f"{path}: not a zstd-compressed tar of SPDX documents ({exc})") from None
    return members


class _DocSet:
    def __init__(self, path: Path, members: dict[str, bytes]):
        self.path = path
        self.raw = members
        self.docs: dict[str, dict] = {}  # file name -> document
        self.by_ns: dict[str, str] = {}  # namespace -> file name
        for name, data in members.items():
            if name == "index.json" or not name.endswith(".spdx.json"):
                continue
            try:
                doc = json.loads(data)
            except ValueError as exc:
                raise ReleaseError(f"{path}: member {name}: not JSON ({exc})") from None
            if not isinstance(doc, dict) or "documentNamespace" not in doc:
                raise ReleaseError(f"{path}: member {name}: not an SPDX document "
                                   "(no documentNamespace)")
            self.docs[name] = doc
            self.by_ns[doc["documentNamespace"]] = name
        self.sha1 = {name: hashlib.sha1(data).hexdigest() for name, data in members.items()}
        self._refs: dict[int, dict[str, dict]] = {}  # id(doc) -> externalDocumentId -> ref
        self._check_index()

    def _check_index(self) -> None:
        if "index.json" not in self.raw:
            raise ReleaseError(f"{self.path}: no index.json (not a create-spdx image tarball)")
        try:
            index = json.loads(self.raw["index.json"])
            entries = index["documents"]
        except (ValueError, KeyError, TypeError):
            raise ReleaseError(f"{self.path}: member index.json: not an index of documents") from None
        for e in entries:
            name = e.get("filename")
            if name not in self.raw:
                raise ReleaseError(f"{self.path}: index.json lists {name}, which is not in the tarball")
            got = self.sha1[name]
            if got != e.get("sha1"):
                raise ReleaseError(f"{self.path}: member {name}: sha1 {got} does not match "
                                   f"index.json ({e.get('sha1')}): the document was changed")

    def resolve(self, doc: dict, ref: str) -> tuple[dict, str]:
        """``DocumentRef-x:SPDXRef-y`` seen from ``doc`` -> (referenced document, SPDXRef-y)."""
        if ":" not in ref:
            return doc, ref
        ref_id, element = ref.split(":", 1)
        refs = self._refs.get(id(doc))
        if refs is None:
            refs = self._refs[id(doc)] = {r.get("externalDocumentId"): r
                                          for r in doc.get("externalDocumentRefs", [])}
        r = refs.get(ref_id)
        if r is not None:
            name = self.by_ns.get(r.get("spdxDocument"))
            if name is None:
                raise ReleaseError(f"{self.path}: document {doc.get('name')} refers to "
                                   f"{r.get('spdxDocument')}, which is not in the tarball")
            want = (r.get("checksum") or {}).get("checksumValue")
            got = self.sha1[name]
            if want and want != got:
                raise ReleaseError(f"{self.path}: member {name}: sha1 {got} does not match the "
                                   f"reference in {doc.get('name')} ({want})")
            return self.docs[name], element
        raise ReleaseError(f"{self.path}: document {doc.get('name')}: {ref_id} is not declared "
                           "in its externalDocumentRefs")


def _package(doc: dict, spdxid: str) -> dict | None:
    for p in doc.get("packages", []):
        if p.get("SPDXID") == spdxid:
            return p
    return None


def read_spdx22(path: Path) -> ImageSbom:
    ds = _DocSet(path, read_tar_members(path))
    image_doc = image_pkg = None
    for doc in ds.docs.values():
        for p in doc.get("packages", []):
            if str(p.get("SPDXID", "")).startswith("SPDXRef-Image-"):
                image_doc, image_pkg = doc, p
    if image_doc is None:
        raise ReleaseError(f"{path}: no image document (no SPDXRef-Image-* package)")
    sb = ImageSbom(image=image_pkg.get("name", ""), image_version=image_pkg.get("versionInfo", ""),
                   image_name=image_doc.get("name", ""), source_format="spdx-2.2")
    for doc in ds.docs.values():
        for lic in doc.get("hasExtractedLicensingInfos", []):
            lid = lic.get("licenseId")
            if lid and lid not in sb.license_texts:
                sb.license_texts[lid] = LicenseText(lid, lic.get("name") or lid,
                                                    lic.get("extractedText") or "NOASSERTION")
    pkg_docs: dict[str, dict] = {}  # package name -> its document
    for rel in image_doc.get("relationships", []):
        if rel.get("relationshipType") != "CONTAINS" or rel.get("spdxElementId") != image_pkg["SPDXID"]:
            continue
        doc, element = ds.resolve(image_doc, rel["relatedSpdxElement"])
        pkg = _package(doc, element)
        if pkg is None:
            raise ReleaseError(f"{path}: {rel['relatedSpdxElement']}: no such package in "
                               f"{doc.get('name')}")
        comp = Component(name=pkg["name"], version=pkg.get("versionInfo", ""),
                         license=_strip_docref(pkg.get("licenseDeclared") or "NOASSERTION"))
        for r in doc.get("relationships", []):
            if r.get("relationshipType") == "GENERATED_FROM" and r.get("spdxElementId") == element:
                rdoc, rid = ds.resolve(doc, r["relatedSpdxElement"])
                _recipe_facts(comp, rdoc, rid)
        sb.components[comp.name] = comp
        pkg_docs[comp.name] = doc
    # runtime documents: "<dep> RUNTIME_DEPENDENCY_OF <pkg>" means pkg depends on dep
    depends: dict[str, set[str]] = {n: set() for n in sb.components}
    for doc in ds.docs.values():
        for r in doc.get("relationships", []):
            if r.get("relationshipType") != "RUNTIME_DEPENDENCY_OF":
                continue
            dep_doc, dep_id = ds.resolve(doc, r["spdxElementId"])
            pkg_doc, pkg_id = ds.resolve(doc, r["relatedSpdxElement"])
            dep, pkg = _package(dep_doc, dep_id), _package(pkg_doc, pkg_id)
            if dep and pkg and pkg["name"] in depends and dep["name"] in sb.components:
                depends[pkg["name"]].add(dep["name"])
    for name, deps in depends.items():
        sb.components[name].depends = tuple(sorted(deps))
    return sb


def _strip_docref(expr: str) -> str:
    """``DocumentRef-recipe-x:LicenseRef-y`` -> ``LicenseRef-y`` (one document, one namespace)."""
    import re
    return re.sub(r"DocumentRef-[A-Za-z0-9.+\-]+:(LicenseRef-)", r"\1", expr)


def _recipe_facts(comp: Component, doc: dict, recipe_id: str) -> None:
    recipe = _package(doc, recipe_id)
    if recipe is None:
        return
    comp.recipe = recipe.get("name", "")
    comp.homepage = recipe.get("homepage")
    comp.summary = recipe.get("summary")
    comp.cpes = tuple(r["referenceLocator"] for r in recipe.get("externalRefs", [])
                      if r.get("referenceCategory") == "SECURITY" and "cpe23" in r.get("referenceType", ""))
    sources = []
    for p in doc.get("packages", []):
        if str(p.get("SPDXID", "")).startswith("SPDXRef-Download-"):
            sha = next((c["checksumValue"] for c in p.get("checksums", [])
                        if c.get("algorithm") == "SHA256"), "")
            sources.append((p.get("downloadLocation", "NOASSERTION"), sha))
    comp.sources = tuple(sources)
