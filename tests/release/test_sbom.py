"""SBOM step: OE-core's SPDX 2.2 tarball and SPDX 3.0.1 document in, three valid documents out."""
from __future__ import annotations

import json

import pytest

from buildctl.release.errors import ReleaseError
from buildctl.release.sbom.model import Input, SbomContext
from buildctl.release.sbom.read_spdx3 import read_spdx3
from buildctl.release.sbom.read_spdx22 import read_spdx22
from buildctl.release.sbom.validate import validate_cyclonedx, validate_spdx2, validate_spdx3
from buildctl.release.sbom.write_cyclonedx import build_cyclonedx
from buildctl.release.sbom.write_spdx3 import build_spdx3
from buildctl.release.sbom.write_spdx23 import build_spdx23, cpe23
from tests.helpers.oe_deploy_fixture import (DeployFixture, spdx22_documents, spdx22_tar,
                                             write_deploy, write_zstd)

CTX = SbomContext("demo", "1.0", "qemux86-64", "release", "2024-01-01T00:00:00Z",
                  [Input("layer-repo", "openembedded-core", "5435505" + "0" * 33,
                         "https://git.openembedded.org/openembedded-core"),
                   Input("builder-image", "buildctl/builder", "sha256:" + "ab" * 32),
                   Input("tool", "buildctl", "0.1.0")], "0.1.0")


@pytest.fixture
def scarthgap(tmp_path):
    fx = DeployFixture()
    write_deploy(tmp_path, fx)
    return tmp_path / f"{fx.link_name}.spdx.tar.zst"


@pytest.fixture
def wrynose(tmp_path):
    fx = DeployFixture(series="wrynose")
    write_deploy(tmp_path, fx)
    return tmp_path / f"{fx.link_name}.spdx.json"


def test_spdx22_tarball_is_read_through_its_references(scarthgap):
    sb = read_spdx22(scarthgap)
    assert sb.image == "core-image-minimal" and sb.source_format == "spdx-2.2"
    assert sorted(sb.components) == ["base-files", "busybox", "hello-buildctl", "libc6", "libz1"]
    libc = sb.components["libc6"]
    assert libc.recipe == "glibc" and libc.version == "2.39+git"
    assert libc.cpes == ("cpe:2.3:*:*:glibc:2.39+git:*:*:*:*:*:*:*",)
    assert sb.components["hello-buildctl"].depends == ("libc6", "libz1")
    # a licence reference from the recipe document, with its text
    assert sb.components["busybox"].license == "GPL-2.0-only AND LicenseRef-bzip2-1.0.4"
    assert "LicenseRef-bzip2-1.0.4" in sb.license_texts


def test_spdx3_document_is_read(wrynose):
    sb = read_spdx3(wrynose)
    assert sorted(sb.components) == ["base-files", "busybox", "hello-buildctl", "libc6", "libz1"]
    assert sb.components["hello-buildctl"].purl == "pkg:yocto/meta-buildctl-app/hello-buildctl@1.0"
    assert sb.components["libc6"].recipe == "glibc"
    assert sb.components["libz1"].depends == ("libc6",)
    assert sb.components["libz1"].license == "Zlib"


@pytest.mark.parametrize("series", ["scarthgap", "wrynose"])
def test_three_documents_pass_the_official_validators(tmp_path, series):
    fx = DeployFixture(series=series)
    d = tmp_path / "deploy"
    write_deploy(d, fx)
    sb = (read_spdx22(d / f"{fx.link_name}.spdx.tar.zst") if series == "scarthgap"
          else read_spdx3(d / f"{fx.link_name}.spdx.json"))
    sb.image_files = [("qemux86-64-release/core-image-minimal-qemux86-64.rootfs.ext4", "0" * 64)]
    outs = {"spdx23": (build_spdx23(sb, CTX), validate_spdx2),
            "spdx3": (build_spdx3(sb, CTX), validate_spdx3),
            "cdx": (build_cyclonedx(sb, CTX), validate_cyclonedx)}
    for name, (doc, validate) in outs.items():
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(doc))
        assert validate(p) == [], name
    text = json.dumps(outs["spdx23"][0])
    # our own inputs are listed in every document
    for doc in (outs["spdx23"][0], outs["spdx3"][0], outs["cdx"][0]):
        t = json.dumps(doc)
        assert "openembedded-core" in t and "sha256:" + "ab" * 32 in t and "buildctl" in t
    assert "cpe:2.3:*:*:glibc:2.39\\\\+git" in text  # escaped for the CPE binding
    assert any("cpe23Type" in r for r in sb.repairs) or series == "wrynose"


def test_oe_shapes_that_spdx_tools_rejects_are_repaired(scarthgap, tmp_path):
    """OE's own recipe document fails spdx-tools (cpe23Type URI); ours passes and says why."""
    docs = spdx22_documents(DeployFixture())
    recipe = tmp_path / "recipe-glibc.spdx.json"
    recipe.write_bytes(docs["recipe-glibc.spdx.json"])
    assert validate_spdx2(recipe) != []
    sb = read_spdx22(scarthgap)
    out = tmp_path / "ours.json"
    out.write_text(json.dumps(build_spdx23(sb, CTX)))
    assert validate_spdx2(out) == []
    assert any("DESCRIBES" in r for r in sb.repairs)
    assert any("cpe23Type" in r for r in sb.repairs)


def test_licence_off_the_list_becomes_a_licence_ref_with_text(scarthgap, tmp_path):
    sb = read_spdx22(scarthgap)
    sb.components["libz1"].license = "GPL-2.0 AND PD"  # what old recipes say
    doc = build_spdx23(sb, CTX)
    pkg = next(p for p in doc["packages"] if p["name"] == "libz1")
    assert "LicenseRef-PD" in pkg["licenseDeclared"]
    assert any(x["licenseId"] == "LicenseRef-PD" for x in doc["hasExtractedLicensingInfos"])
    out = tmp_path / "x.json"
    out.write_text(json.dumps(doc))
    assert validate_spdx2(out) == []


def test_corrupted_spdx_member_is_named(tmp_path):
    fx = DeployFixture()
    docs = spdx22_documents(fx)
    docs["busybox.spdx.json"] = docs["busybox.spdx.json"].replace(b"1.36.1", b"1.36.9")
    p = tmp_path / "img.spdx.tar.zst"
    write_zstd(p, spdx22_tar(fx, docs))
    with pytest.raises(ReleaseError, match=r"member busybox\.spdx\.json: sha1 .* does not match"):
        read_spdx22(p)


def test_not_a_tarball_and_not_json_ld(tmp_path):
    bad = tmp_path / "x.spdx.tar.zst"
    bad.write_bytes(b"garbage")
    with pytest.raises(ReleaseError, match="not a zstd-compressed tar"):
        read_spdx22(bad)
    j = tmp_path / "x.spdx.json"
    j.write_text('{"spdxVersion": "SPDX-2.2"}')
    with pytest.raises(ReleaseError, match="no @graph"):
        read_spdx3(j)


def test_validators_reject_broken_documents(tmp_path, scarthgap):
    sb = read_spdx22(scarthgap)
    cdx = build_cyclonedx(sb, CTX)
    cdx["components"][0]["type"] = "gadget"
    p = tmp_path / "c.json"
    p.write_text(json.dumps(cdx))
    assert validate_cyclonedx(p)
    s3 = build_spdx3(sb, CTX)
    s3["@graph"][-1]["rootElement"] = ["https://nowhere.invalid/x"]
    p3 = tmp_path / "s3.json"
    p3.write_text(json.dumps(s3))
    assert validate_spdx3(p3)


def test_cpe_escaping():
    assert cpe23("cpe:2.3:*:*:glibc:2.39+git:*:*:*:*:*:*:*") == \
        "cpe:2.3:*:*:glibc:2.39\\+git:*:*:*:*:*:*:*"
    already = "cpe:2.3:a:x:y\\+z:1:*:*:*:*:*:*:*"
    assert cpe23(already) == already
