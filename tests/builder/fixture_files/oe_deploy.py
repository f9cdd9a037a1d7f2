"""Deploy outputs of the stand-in BitBake, named and linked the way OE-core writes them.

Runs inside the builder container's python3: standard library only. For an image recipe,
OE-core's image classes write into DEPLOY_DIR_IMAGE:
- ``${IMAGE_NAME}.<type>`` for every type of IMAGE_FSTYPES, and the symlink
  ``${IMAGE_LINK_NAME}.<type>`` to it (IMAGE_LINK_NAME is IMAGE_NAME without the version
  suffix; meta-mender empties IMAGE_NAME_SUFFIX, the ``.rootfs`` part, on Mender boards);
- ``${IMAGE_NAME}.manifest`` (one ``<package> <arch> <version>`` line per installed package)
  and its ``${IMAGE_LINK_NAME}.manifest`` link;
- for the ``mender`` type (meta-mender's mender-artifactimg), a Mender artifact (format 3,
  rootfs-image payload) of the ``${ARTIFACTIMG_FSTYPE}`` image, named MENDER_ARTIFACT_NAME and
  compatible with MENDER_DEVICE_TYPES_COMPATIBLE.
Disk images (sdimg, uefiimg, wic, ...) and bmap files are small placeholders with the real
names: the tests check names, links and what buildctl does with them, not their bytes.
"""
import gzip
import hashlib
import io
import json
import os
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ARTIFACTIMG_FSTYPE = "ext4"  # meta-mender's default filesystem inside the .mender


def _replace(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _link(deploy_dir, link_name, target):
    link = os.path.join(deploy_dir, link_name)
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(target, link)


def _tar(members, mtime):
    """An uncompressed ustar archive of (name, bytes) members, owner 0/0, one mtime."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _json(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


def mender_artifact(rootfs_name, rootfs, artifact_name, device_types, mtime=0):
    """A Mender artifact (format 3, gzip) with one rootfs-image payload, as bytes."""
    checksum = hashlib.sha256(rootfs).hexdigest()
    header_info = {"payloads": [{"type": "rootfs-image"}],
                   "artifact_provides": {"artifact_name": artifact_name},
                   "artifact_depends": {"device_type": list(device_types)}}
    type_info = {"type": "rootfs-image",
                 "artifact_provides": {"rootfs-image.checksum": checksum,
                                       "rootfs-image.version": artifact_name},
                 "clears_artifact_provides": ["artifact_group", "rootfs_image_checksum",
                                              "rootfs-image.*"]}
    header = gzip.compress(_tar([("header-info", _json(header_info)),
                                 ("headers/0000/type-info", _json(type_info)),
                                 ("headers/0000/meta-data", b"")], mtime), mtime=mtime)
    data = gzip.compress(_tar([(rootfs_name, rootfs)], mtime), mtime=mtime)
    version = b'{"format":"mender","version":3}'
    manifest = (f"{checksum}  data/0000/{rootfs_name}\n"
                f"{hashlib.sha256(header).hexdigest()}  header.tar.gz\n"
                f"{hashlib.sha256(version).hexdigest()}  version\n").encode()
    return _tar([("version", version), ("manifest", manifest), ("header.tar.gz", header),
                 ("data/0000.tar.gz", data)], mtime)


def _image_bytes(fstype, image, machine, d):
    head = f"{fstype} image of {image} for {machine}\n".encode()
    return head + b"\0" * (4096 - len(head)) if len(head) < 4096 else head


def write_manifest(deploy_dir, image_name, link_name, packages):
    """The image manifest: ``<package> <arch> <version>`` per installed package, sorted."""
    name = f"{image_name}.manifest"
    lines = "".join(f"{p} {arch} {ver}\n" for p, arch, ver in sorted(packages))
    _replace(os.path.join(deploy_dir, name), lines.encode())
    _link(deploy_dir, f"{link_name}.manifest", name)
    return name


def write_deploy(deploy_dir, machine, image, image_name, fstypes, d, link_name=None,
                 packages=(), skip=()):
    """Write the outputs of image recipe ``image`` for ``machine`` into deploy_dir.

    image_name / link_name: IMAGE_NAME and IMAGE_LINK_NAME of the image recipe; fstypes:
    IMAGE_FSTYPES; d: the configuration's variables (anything with .get); packages:
    (name, arch, version) installed; skip: types not to write (a test knob: a build that
    "forgot" an output). Returns the names written (files, not links).
    """
    os.makedirs(deploy_dir, exist_ok=True)
    link_name = link_name or image_name
    mtime = int(d.get("REPRODUCIBLE_TIMESTAMP_ROOTFS") or 0)
    written = []
    wanted = list(dict.fromkeys(fstypes))
    if "mender" in wanted and ARTIFACTIMG_FSTYPE not in wanted:
        wanted.insert(0, ARTIFACTIMG_FSTYPE)  # IMAGE_TYPEDEP:mender
    for fstype in wanted:
        if fstype in skip:
            continue
        name = f"{image_name}.{fstype}"
        if fstype == "mender":
            rootfs_name = f"{link_name}.{ARTIFACTIMG_FSTYPE}"
            with open(os.path.join(deploy_dir, f"{image_name}.{ARTIFACTIMG_FSTYPE}"), "rb") as fh:
                rootfs = fh.read()
            devices = (d.get("MENDER_DEVICE_TYPES_COMPATIBLE") or machine).split()
            data = mender_artifact(rootfs_name, rootfs, d.get("MENDER_ARTIFACT_NAME") or "",
                                   devices, mtime)
        else:
            data = _image_bytes(fstype, image, machine, d)
        _replace(os.path.join(deploy_dir, name), data)
        _link(deploy_dir, f"{link_name}.{fstype}", name)
        written.append(name)
    written.append(write_manifest(deploy_dir, image_name, link_name, packages))
    return written


# -- What a release collects: disk images, .mender, SPDX, CVE reports ----------------------------
# Written from the document structures of openembedded-core's create-spdx-2.2 (scarthgap:
# ``<IMAGE_NAME>.spdx.tar.zst`` holding image, package, runtime and recipe documents plus
# ``index.json``), create-spdx-3.0 (wrynose: one JSON-LD ``<IMAGE_NAME>.spdx.json``), cve-check
# (scarthgap: ``<IMAGE_NAME>.json``, "version 1") and sbom-cve-check (wrynose:
# ``<IMAGE_NAME>.sbom-cve-check.yocto.json``); every real file gets Yocto's stable link.

SPDX_NS = "http://spdx.org/spdxdocs"
OE_UUID_NS = uuid.uuid5(uuid.NAMESPACE_DNS, "sbom.openembedded.org")
CREATORS = ["Tool: OpenEmbedded Core create-spdx.bbclass", "Organization: OpenEmbedded ()",
            "Person: N/A ()"]


@dataclass
class Cve:
    id: str
    status: str  # Patched | Unpatched | Ignored
    score: str = "5.0"  # CVSS v3
    detail: str = ""


@dataclass
class Pkg:
    name: str
    version: str
    recipe: str = ""
    license: str = "MIT"
    layer: str = "meta"
    rdepends: tuple[str, ...] = ()
    cves: tuple[Cve, ...] = ()

    @property
    def pn(self) -> str:
        return self.recipe or self.name


def default_packages() -> list[Pkg]:
    return [
        Pkg("base-files", "3.0.14", license="GPL-2.0-only"),
        Pkg("busybox", "1.36.1", license="GPL-2.0-only & bzip2-1.0.4", rdepends=("libc6",),
            cves=(Cve("CVE-2022-48174", "Patched", "9.8", "backported-patch"),
                  Cve("CVE-2023-42366", "Unpatched", "5.5"))),
        Pkg("libc6", "2.39+git", recipe="glibc",
            license="GPL-2.0-only & LGPL-2.1-or-later",
            cves=(Cve("CVE-2024-2961", "Patched", "8.8", "fixed-version"),
                  Cve("CVE-2019-1010022", "Ignored", "9.8", "upstream-wontfix"))),
        Pkg("libz1", "1.3.1", recipe="zlib", license="Zlib", rdepends=("libc6",)),
        Pkg("hello-buildctl", "1.0", layer="meta-buildctl-app", license="MIT",
            rdepends=("libc6", "libz1")),
    ]


@dataclass
class DeployFixture:
    machine: str = "qemux86-64"
    image: str = "core-image-minimal"
    image_version: str = "1.0"
    series: str = "scarthgap"  # scarthgap: SPDX 2.2 tar + cve-check; wrynose: SPDX 3 + sbom-cve-check
    image_types: tuple[str, ...] = ("ext4", "mender")
    packages: list[Pkg] = field(default_factory=default_packages)
    datetime: str = "20240101000000"
    source_date_epoch: int = 1704067200
    sbom: bool = True
    cve: bool = True
    pretty: bool = False
    image_name_override: str = ""  # IMAGE_NAME / IMAGE_LINK_NAME as the build set them
    link_name_override: str = ""

    @property
    def link_name(self) -> str:
        return self.link_name_override or f"{self.image}-{self.machine}.rootfs"

    @property
    def image_name(self) -> str:
        return self.image_name_override or f"{self.link_name}-{self.datetime}"


def write_release_outputs(deploy: Path, fx: "DeployFixture", mender_writer=None) -> Path:
    """Write the fixture's outputs into ``deploy`` (created). ``mender_writer(path, fx)`` writes
    the ``.mender`` file when the image types ask for one (a placeholder otherwise)."""
    deploy = Path(deploy)
    deploy.mkdir(parents=True, exist_ok=True)
    for t in fx.image_types:
        real = deploy / f"{fx.image_name}.{t}"
        if t == "mender" and mender_writer is not None:
            mender_writer(real, fx)
        else:
            real.write_bytes(_fixture_image_bytes(fx, t))
        _link_stable(deploy, real, t)
    manifest = deploy / f"{fx.image_name}.manifest"
    manifest.write_text("".join(f"{p.name} {_arch(fx)} {p.version}\n"
                                for p in sorted(fx.packages, key=lambda p: p.name)))
    _link_stable(deploy, manifest, "manifest")
    write_sbom_and_cve(deploy, fx)
    return deploy


def write_sbom_and_cve(deploy: Path, fx: "DeployFixture") -> None:
    """create-spdx output (SPDX 2.2 tarball on scarthgap, SPDX 3.0.1 JSON-LD after) and the
    CVE report (cve-check on scarthgap, sbom-cve-check after), each with its stable link."""
    if fx.sbom:
        if fx.series == "scarthgap":
            p = deploy / f"{fx.image_name}.spdx.tar.zst"
            write_zstd(p, spdx22_tar(fx))
            _link_to(deploy, fx, p, "spdx.tar.zst")
        else:
            p = deploy / f"{fx.image_name}.spdx.json"
            p.write_text(_dump(spdx3_document(fx), fx.pretty))
            _link_to(deploy, fx, p, "spdx.json")
    if fx.cve:
        suffix = "json" if fx.series == "scarthgap" else "sbom-cve-check.yocto.json"
        p = deploy / f"{fx.image_name}.{suffix}"
        p.write_text(json.dumps(cve_check_manifest(fx), indent=2))
        _link_to(deploy, fx, p, suffix)


def _arch(fx: DeployFixture) -> str:
    return "core2_64" if "x86" in fx.machine else "cortexa57"


def _fixture_image_bytes(fx: DeployFixture, kind: str) -> bytes:
    body = "".join(f"{p.name}={p.version}\n" for p in fx.packages)
    return (f"{kind} image of {fx.image} for {fx.machine}\n{body}"
            f"SOURCE_DATE_EPOCH={fx.source_date_epoch}\n").encode()


def _link_to(deploy: Path, fx: "DeployFixture", real: Path, suffix: str) -> None:
    link = deploy / f"{fx.link_name}.{suffix}"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(real.name, link)


def _link_stable(deploy: Path, real: Path, suffix: str) -> None:
    """Yocto's stable name: <IMAGE_LINK_NAME>.<suffix> -> <IMAGE_NAME>.<suffix> (relative)."""
    stem = real.name[: -len(suffix) - 1].rsplit("-", 1)[0]  # drop -<DATETIME>
    link = deploy / f"{stem}.{suffix}"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(real.name, link)


def _dump(data, pretty: bool) -> str:
    return json.dumps(data, sort_keys=True, indent=2 if pretty else None)


def zstd_raw_frame(raw: bytes) -> bytes:
    """A valid zstd frame holding ``raw`` in uncompressed blocks (RFC 8878: single segment,
    8-byte content size, raw blocks of at most 128 KiB): every zstd reader takes it, and it
    needs nothing beyond the standard library (the builder image has no zstd)."""
    out = bytearray(b"\x28\xb5\x2f\xfd")  # magic 0xFD2FB528, little-endian
    out.append(0xE0)  # content size in 8 bytes, single segment, no checksum, no dictionary
    out += len(raw).to_bytes(8, "little")
    step = 128 * 1024
    chunks = [raw[i:i + step] for i in range(0, len(raw), step)] or [b""]
    for n, chunk in enumerate(chunks):
        last = 1 if n == len(chunks) - 1 else 0
        out += (last | (0 << 1) | (len(chunk) << 3)).to_bytes(3, "little")
        out += chunk
    return bytes(out)


def write_zstd(path: Path, raw: bytes) -> None:
    tmp = Path(str(path) + ".tmp")
    tmp.write_bytes(zstd_raw_frame(raw))
    os.replace(tmp, path)


# -- SPDX 2.2 (create-spdx-2.2) ----------------------------------------------------------------

def _namespace(name: str) -> str:
    return f"{SPDX_NS}/{name}-{uuid.uuid5(OE_UUID_NS, name)}"


def _doc(name: str, comment: str, sde: int) -> dict:
    import datetime as dt
    created = dt.datetime.fromtimestamp(sde, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"SPDXID": "SPDXRef-DOCUMENT", "spdxVersion": "SPDX-2.2", "dataLicense": "CC0-1.0",
            "name": name, "documentNamespace": _namespace(name),
            "creationInfo": {"comment": comment, "created": created, "creators": list(CREATORS),
                             "licenseListVersion": "3.22"}}


def _pkg_defaults(**kw) -> dict:
    base = {"copyrightText": "NOASSERTION", "downloadLocation": "NOASSERTION",
            "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
            "licenseInfoFromFiles": ["NOASSERTION"], "supplier": "Organization: OpenEmbedded ()"}
    base.update(kw)
    return base


def spdx_license(expr: str) -> tuple[str, list[dict]]:
    """OE's conversion: & -> AND, | -> OR, names off the SPDX list -> LicenseRef-<name>."""
    known = {"MIT", "Zlib", "GPL-2.0-only", "GPL-3.0-or-later", "LGPL-2.1-or-later",
             "BSD-3-Clause", "Apache-2.0", "GPL-2.0-or-later"}
    out, extracted = [], []
    for tok in expr.replace("(", " ( ").replace(")", " ) ").split():
        if tok == "&":
            out.append("AND")
        elif tok == "|":
            out.append("OR")
        elif tok in "()" or tok in known:
            out.append(tok)
        else:
            ref = "LicenseRef-" + tok
            out.append(ref)
            extracted.append({"licenseId": ref, "name": tok,
                              "extractedText": f"{tok} licence text (fixture)"})
    return " ".join(out), extracted


def _json_bytes(doc: dict, pretty: bool) -> bytes:
    return _dump(doc, pretty).encode()


def spdx22_documents(fx: DeployFixture) -> dict[str, bytes]:
    """File name -> bytes of every document create-spdx-2.2 puts into the image tarball."""
    sde = fx.source_date_epoch
    files: dict[str, bytes] = {}
    sha1: dict[str, str] = {}  # doc name -> sha1
    ns: dict[str, str] = {}

    def put(doc: dict) -> None:
        data = _json_bytes(doc, fx.pretty)
        files[doc["name"] + ".spdx.json"] = data
        sha1[doc["name"]] = hashlib.sha1(data).hexdigest()
        ns[doc["name"]] = doc["documentNamespace"]

    def ref(ref_id: str, name: str) -> dict:
        return {"externalDocumentId": ref_id, "spdxDocument": ns[name],
                "checksum": {"algorithm": "SHA1", "checksumValue": sha1[name]}}

    by_name = {p.name: p for p in fx.packages}
    for pn in sorted({p.pn for p in fx.packages}):
        first = next(p for p in fx.packages if p.pn == pn)
        doc = _doc(f"recipe-{pn}", "This document was created by analyzing recipe files during "
                   "the build.", sde)
        lic, extracted = spdx_license(first.license)
        recipe = _pkg_defaults(SPDXID=f"SPDXRef-Recipe-{pn}", name=pn, versionInfo=first.version,
                               licenseDeclared=lic, homepage=f"https://example.org/{pn}",
                               summary=f"{pn} (fixture)")
        recipe["externalRefs"] = [{"referenceCategory": "SECURITY",
                                   "referenceType": "http://spdx.org/rdf/references/cpe23Type",
                                   "referenceLocator": f"cpe:2.3:*:*:{pn}:{first.version}:*:*:*:*:*:*:*"}]
        patched = [c.id for p in fx.packages if p.pn == pn for c in p.cves if c.status == "Patched"]
        if patched:
            recipe["sourceInfo"] = "CVEs fixed: " + " ".join(patched)
        src_sha = hashlib.sha256(f"{pn}-{first.version}".encode()).hexdigest()
        download = _pkg_defaults(SPDXID=f"SPDXRef-Download-{pn}-1", name=f"{pn}-source-1",
                                 supplier="NOASSERTION",
                                 downloadLocation=f"https://example.org/{pn}-{first.version}.tar.gz",
                                 checksums=[{"algorithm": "SHA256", "checksumValue": src_sha}])
        doc["packages"] = [recipe, download]
        if extracted:
            doc["hasExtractedLicensingInfos"] = extracted
        doc["relationships"] = [
            {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
             "relatedSpdxElement": f"SPDXRef-Recipe-{pn}"},
            {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
             "relatedSpdxElement": f"SPDXRef-Download-{pn}-1"},
            {"spdxElementId": f"SPDXRef-Download-{pn}-1", "relationshipType": "BUILD_DEPENDENCY_OF",
             "relatedSpdxElement": f"SPDXRef-Recipe-{pn}"}]
        put(doc)
    for p in fx.packages:
        doc = _doc(p.name, "This document was created by analyzing packages created during "
                   "the build.", sde)
        rid = f"DocumentRef-recipe-{p.pn}"
        doc["externalDocumentRefs"] = [ref(rid, f"recipe-{p.pn}")]
        lic, extracted = spdx_license(p.license)
        lic = lic.replace("LicenseRef-", f"{rid}:LicenseRef-") if extracted else lic
        fsha = hashlib.sha256(f"{p.name}/usr/bin".encode()).hexdigest()
        fsha1 = hashlib.sha1(f"{p.name}/usr/bin".encode()).hexdigest()
        doc["files"] = [{"SPDXID": f"SPDXRef-PackagedFile-{p.name}-1", "fileName": f"./usr/lib/{p.name}",
                         "fileTypes": ["BINARY"], "copyrightText": "NOASSERTION",
                         "licenseConcluded": "NOASSERTION", "licenseInfoInFiles": ["NOASSERTION"],
                         "checksums": [{"algorithm": "SHA1", "checksumValue": fsha1},
                                       {"algorithm": "SHA256", "checksumValue": fsha}]}]
        doc["packages"] = [_pkg_defaults(
            SPDXID=f"SPDXRef-Package-{p.name}", name=p.name, versionInfo=p.version,
            licenseDeclared=lic, hasFiles=[f"SPDXRef-PackagedFile-{p.name}-1"],
            packageVerificationCode={"packageVerificationCodeValue": hashlib.sha1(fsha1.encode()).hexdigest()})]
        doc["relationships"] = [
            {"spdxElementId": f"SPDXRef-Package-{p.name}", "relationshipType": "GENERATED_FROM",
             "relatedSpdxElement": f"{rid}:SPDXRef-Recipe-{p.pn}"},
            {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
             "relatedSpdxElement": f"SPDXRef-Package-{p.name}"},
            {"spdxElementId": f"SPDXRef-Package-{p.name}", "relationshipType": "CONTAINS",
             "relatedSpdxElement": f"SPDXRef-PackagedFile-{p.name}-1"}]
        put(doc)
    for p in fx.packages:
        doc = _doc(f"runtime-{p.name}", "This document was created by analyzing package runtime "
                   "dependencies.", sde)
        refs = [ref(f"DocumentRef-package-{p.name}", p.name)]
        rels = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "AMENDS",
                 "relatedSpdxElement": f"DocumentRef-package-{p.name}:SPDXRef-DOCUMENT"}]
        for dep in p.rdepends:
            if dep not in by_name:
                continue
            rid = f"DocumentRef-runtime-dependency-{dep}"
            refs.append(ref(rid, dep))
            rels.append({"spdxElementId": f"{rid}:SPDXRef-Package-{dep}",
                         "relationshipType": "RUNTIME_DEPENDENCY_OF",
                         "relatedSpdxElement": f"DocumentRef-package-{p.name}:SPDXRef-Package-{p.name}"})
        doc["externalDocumentRefs"] = refs
        doc["relationships"] = rels
        put(doc)
    image = _doc(fx.image_name, "This document was created by analyzing the source of the Yocto "
                 "recipe during the build.", sde)
    img_id = f"SPDXRef-Image-{fx.image_name}"
    image["packages"] = [_pkg_defaults(SPDXID=img_id, name=fx.image, versionInfo=fx.image_version)]
    refs, rels = [], []
    for p in sorted(fx.packages, key=lambda p: p.name):
        refs.append(ref(f"DocumentRef-{p.name}", p.name))
        rels.append({"spdxElementId": img_id, "relationshipType": "CONTAINS",
                     "relatedSpdxElement": f"DocumentRef-{p.name}:SPDXRef-Package-{p.name}"})
        refs.append(ref(f"DocumentRef-runtime-{p.name}", f"runtime-{p.name}"))
        rels.append({"spdxElementId": img_id, "relationshipType": "OTHER",
                     "relatedSpdxElement": f"DocumentRef-runtime-{p.name}:SPDXRef-DOCUMENT",
                     "comment": f"Runtime dependencies for {p.name}"})
    image["externalDocumentRefs"] = refs
    image["relationships"] = rels
    put(image)
    index = {"documents": sorted(({"filename": f"{n}.spdx.json", "documentNamespace": ns[n],
                                   "sha1": sha1[n]} for n in ns), key=lambda e: e["filename"])}
    files["index.json"] = _json_bytes(index, fx.pretty)
    return files


def spdx22_tar(fx: DeployFixture, documents: dict[str, bytes] | None = None) -> bytes:
    docs = documents if documents is not None else spdx22_documents(fx)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        names = sorted(n for n in docs if n != "index.json") + ["index.json"]
        for n in names:
            info = tarfile.TarInfo(n)
            info.size = len(docs[n])
            info.mtime = fx.source_date_epoch
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(docs[n]))
    return buf.getvalue()


# -- SPDX 3.0.1 (create-spdx-3.0, image SBOM) -------------------------------------------------

def spdx3_document(fx: DeployFixture) -> dict:
    import datetime as dt
    base = f"{SPDX_NS}/{fx.image}-{uuid.uuid5(OE_UUID_NS, fx.image)}/0000"
    created = dt.datetime.fromtimestamp(fx.source_date_epoch, dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    ci = "_:CreationInfo0"
    graph: list[dict] = []
    org = f"{SPDX_NS}/bitbake/agent/OpenEmbedded"
    tool = f"{SPDX_NS}/bitbake/tool/oe-spdx-creator_1_0"
    graph.append({"type": "CreationInfo", "@id": ci, "created": created, "createdBy": [org],
                  "createdUsing": [tool], "specVersion": "3.0.1"})
    graph.append({"type": "Organization", "spdxId": org, "creationInfo": ci, "name": "OpenEmbedded"})
    graph.append({"type": "Tool", "spdxId": tool, "creationInfo": ci, "name": "oe-spdx-creator 1.0"})
    elements: list[str] = []
    n = [0]

    def add(obj: dict) -> str:
        obj.setdefault("creationInfo", ci)
        graph.append(obj)
        elements.append(obj["spdxId"])
        return obj["spdxId"]

    def rel(frm: str, typ: str, to: list[str], scope: str | None = None) -> None:
        n[0] += 1
        obj = {"type": "LifecycleScopedRelationship" if scope else "Relationship",
               "spdxId": f"{base}/relationship/{n[0]}", "from": frm, "relationshipType": typ,
               "to": to}
        if scope:
            obj["scope"] = scope
        add(obj)

    image_file = add({"type": "software_File", "spdxId": f"{base}/image/{fx.image_name}.ext4",
                      "name": f"{fx.image_name}.ext4", "software_primaryPurpose": "filesystemImage",
                      "verifiedUsing": [{"type": "Hash", "algorithm": "sha256",
                                         "hashValue": hashlib.sha256(_fixture_image_bytes(fx, "ext4")).hexdigest()}]})
    rootfs = add({"type": "software_Package", "spdxId": f"{base}/rootfs/{fx.image}",
                  "name": f"{fx.image}-{fx.machine}-rootfs", "software_primaryPurpose": "archive"})
    rootfs_build = add({"type": "build_Build", "spdxId": f"{base}/build/rootfs",
                        "name": f"{fx.image}:do_create_rootfs_spdx:rootfs",
                        "build_buildType": "http://openembedded.org/bitbake/do_create_rootfs_spdx/rootfs"})
    image_build = add({"type": "build_Build", "spdxId": f"{base}/build/image",
                       "name": f"{fx.image}:do_create_image_spdx:image",
                       "build_buildType": "http://openembedded.org/bitbake/do_create_image_spdx/image"})
    rel(rootfs_build, "hasOutput", [rootfs], "build")
    rel(image_build, "hasInput", [rootfs], "build")
    rel(image_build, "hasOutput", [image_file], "build")
    ids = {p.name: f"{base}/package/{p.name}" for p in fx.packages}
    licenses: dict[str, str] = {}
    vulns: dict[str, str] = {}
    for p in sorted(fx.packages, key=lambda p: p.name):
        add({"type": "software_Package", "spdxId": ids[p.name], "name": p.name,
             "software_packageVersion": p.version, "software_primaryPurpose": "install",
             "software_packageUrl": f"pkg:yocto/{p.layer}/{p.pn}@{p.version}",
             "externalIdentifier": [{"type": "ExternalIdentifier", "externalIdentifierType": "cpe23",
                                     "identifier": f"cpe:2.3:*:*:{p.pn}:{p.version}:*:*:*:*:*:*:*"}]})
        lic, _ = spdx_license(p.license)
        if lic not in licenses:
            licenses[lic] = add({"type": "simplelicensing_LicenseExpression",
                                 "spdxId": f"{base}/license/{hashlib.sha1(lic.encode()).hexdigest()[:12]}",
                                 "simplelicensing_licenseExpression": lic,
                                 "simplelicensing_licenseListVersion": "3.22.0"})
        rel(ids[p.name], "hasDeclaredLicense", [licenses[lic]])
    rel(rootfs_build, "hasInput", sorted(ids.values()), "build")
    for p in sorted(fx.packages, key=lambda p: p.name):
        deps = [ids[d] for d in p.rdepends if d in ids]
        if deps:
            rel(ids[p.name], "dependsOn", deps, "runtime")
        for c in p.cves:
            if c.id not in vulns:
                vulns[c.id] = add({"type": "security_Vulnerability",
                                   "spdxId": f"{base}/vulnerability/{c.id}",
                                   "externalIdentifier": [{"type": "ExternalIdentifier",
                                                           "externalIdentifierType": "cve",
                                                           "identifier": c.id}]})
            rel(ids[p.name], "hasAssociatedVulnerability", [vulns[c.id]])
            n[0] += 1
            kind = {"Patched": ("security_VexFixedVulnAssessmentRelationship", "fixedIn"),
                    "Unpatched": ("security_VexAffectedVulnAssessmentRelationship", "affects"),
                    "Ignored": ("security_VexNotAffectedVulnAssessmentRelationship", "doesNotAffect")}
            typ, rtype = kind[c.status]
            vex = {"type": typ, "spdxId": f"{base}/vex/{n[0]}", "from": vulns[c.id],
                   "relationshipType": rtype, "to": [ids[p.name]], "security_vexVersion": "1.0.0"}
            if c.status == "Unpatched":
                vex["security_actionStatement"] = "Mitigation action unknown"
            elif c.status == "Ignored":
                vex["security_impactStatement"] = c.detail or "ignored"
            else:
                vex["security_statusNotes"] = c.detail or "fixed"
            add(vex)
    sbom = f"{base}/sbom/{fx.image}"
    graph.append({"type": "software_Sbom", "spdxId": sbom, "creationInfo": ci, "name": fx.image,
                  "software_sbomType": ["build"], "rootElement": [image_file],
                  "element": list(elements)})
    graph.append({"type": "SpdxDocument", "spdxId": f"{base}/document/{fx.link_name}",
                  "creationInfo": ci, "name": fx.link_name, "rootElement": [sbom],
                  "profileConformance": ["build", "core", "security", "simpleLicensing", "software"]})
    return {"@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld", "@graph": graph}


# -- cve-check "version 1" -------------------------------------------------------------------

def cve_check_manifest(fx: DeployFixture) -> dict:
    out = []
    by_pn: dict[str, list[Pkg]] = {}
    for p in fx.packages:
        by_pn.setdefault(p.pn, []).append(p)
    for pn in sorted(by_pn):
        pkgs = by_pn[pn]
        issues = [c for p in pkgs for c in p.cves]
        out.append({"name": pn, "layer": pkgs[0].layer, "version": pkgs[0].version,
                    "products": [{"product": pn, "cvesInRecord": "Yes" if issues else "No"}],
                    "issue": [{"id": c.id, "summary": f"{c.id} (fixture)", "scorev2": "0.0",
                               "scorev3": c.score, "scorev4": "0.0", "vector": "NETWORK",
                               "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                               "status": c.status,
                               "link": f"https://nvd.nist.gov/vuln/detail/{c.id}",
                               **({"detail": c.detail} if c.detail else {})} for c in issues]})
    return {"version": "1", "package": out}


def write_stand_in_outputs(deploy_dir, machine, image, image_name, link_name, packages, d):
    """What the stand-in BitBake deploys besides images and manifest: create-spdx and CVE
    output for the installed packages ((name, arch, version) tuples). FIXTURE_SERIES picks
    the series' shapes (default scarthgap)."""
    pkgs = [Pkg(name, version.split("-r")[0]) for name, _, version in packages]
    fx = DeployFixture(machine=machine, image=image, series=d.get("FIXTURE_SERIES") or "scarthgap",
                       packages=pkgs, source_date_epoch=int(d.get("SOURCE_DATE_EPOCH") or 0),
                       image_name_override=image_name, link_name_override=link_name or image_name)
    write_sbom_and_cve(Path(deploy_dir), fx)
