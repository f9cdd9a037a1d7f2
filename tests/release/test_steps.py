"""The small release steps on their own: collect, CVE summary and policy, VEX, DSSE, provenance."""
from __future__ import annotations

import base64
import json
import os

import pytest

from buildctl.ota.mender import load_private_key, load_public_key
from buildctl.release.collect import BoardOutputs, collect
from buildctl.release.cve import CvePolicy, policy_violations, read_cve_check
from buildctl.release.dsse import EnvelopeError, pae, sign_envelope, verify_envelope
from buildctl.release.errors import ReleaseError
from buildctl.release.provenance import ProvenanceInputs, envelope, statement
from buildctl.release.sbom.model import SbomContext
from buildctl.release.sbom.validate import validate_cyclonedx
from buildctl.release.vex import build_vex
from tests.helpers.oe_deploy_fixture import DeployFixture, write_deploy
from tests.release.helpers import make_key

SHAPES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "reference",
                      "sbom-shapes")


def outputs(**kw) -> BoardOutputs:
    base = dict(machine="qemux86-64", image="core-image-minimal", image_types=("ext4", "mender"),
                series="scarthgap")
    base.update(kw)
    return BoardOutputs(**base)


def test_collect_follows_links_and_picks_optional_outputs(tmp_path):
    write_deploy(tmp_path, DeployFixture())
    (tmp_path / "core-image-minimal-qemux86-64.rootfs.testdata.json").write_text("{}")
    got = {c.name: (c.kind, c.source.name) for c in collect(tmp_path, outputs(), "b")}
    assert got["core-image-minimal-qemux86-64.rootfs.ext4"] == \
        ("image", "core-image-minimal-qemux86-64.rootfs-20240101000000.ext4")
    assert got["core-image-minimal-qemux86-64.rootfs.json"][0] == "oe-cve"
    assert got["core-image-minimal-qemux86-64.rootfs.spdx.tar.zst"][0] == "oe-sbom"
    assert "core-image-minimal-qemux86-64.rootfs.testdata.json" not in got


def test_collect_names_what_is_missing(tmp_path):
    write_deploy(tmp_path, DeployFixture(sbom=False))
    with pytest.raises(ReleaseError, match=r"b: promised output missing: "
                       r"core-image-minimal-qemux86-64\.rootfs\.spdx\.tar\.zst or "
                       r"core-image-minimal-qemux86-64\.rootfs\.spdx\.json \(create-spdx"):
        collect(tmp_path, outputs(), "b")
    with pytest.raises(ReleaseError, match=r"wic or .*wic\.gz"):
        collect(tmp_path, outputs(image_types=("wic",), spdx=False), "b")
    with pytest.raises(ReleaseError, match="does not exist"):
        collect(tmp_path / "nope", outputs(), "b")


def test_collect_wrynose_wants_spdx3(tmp_path):
    write_deploy(tmp_path, DeployFixture(series="wrynose"))
    got = {c.name: c.kind for c in collect(tmp_path, outputs(series="wrynose"), "b")}
    assert got["core-image-minimal-qemux86-64.rootfs.spdx.json"] == "oe-sbom"
    assert got["core-image-minimal-qemux86-64.rootfs.sbom-cve-check.yocto.json"] == "oe-cve"


def test_cve_summary_of_the_reference_shape():
    path = os.path.join(SHAPES, "synthetic-cve-check",
                        "core-image-demo-qemux86-64.rootfs.cve-check.json")
    if not os.path.exists(path):
        pytest.skip("shared/reference not beside the checkout")
    s = read_cve_check(path)
    assert s.counts == {"Patched": 1, "Unpatched": 1, "Ignored": 1}
    assert s.unpatched == {"hello": ["CVE-0000-0003"]}
    assert [i.score for i in s.issues] == [7.5, 5.3, 9.8]


def test_cve_policy(tmp_path):
    write_deploy(tmp_path, DeployFixture())
    s = read_cve_check(tmp_path / "core-image-minimal-qemux86-64.rootfs.json")
    assert s.counts == {"Patched": 2, "Unpatched": 1, "Ignored": 1}
    assert [i.id for i in policy_violations(s, CvePolicy(5.0))] == ["CVE-2023-42366"]
    assert policy_violations(s, CvePolicy(5.0, ("CVE-2023-42366",))) == []
    assert policy_violations(s, CvePolicy(None)) == []
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    with pytest.raises(ReleaseError, match="not a cve-check JSON"):
        read_cve_check(bad)


def test_vex_is_valid_cyclonedx(tmp_path):
    write_deploy(tmp_path, DeployFixture())
    s = read_cve_check(tmp_path / "core-image-minimal-qemux86-64.rootfs.json")
    ctx = SbomContext("demo", "1.0", "b", "release", "2024-01-01T00:00:00Z", [], "0.1.0")
    vex = build_vex(s, None, ctx)
    states = {v["id"]: v["analysis"]["state"] for v in vex["vulnerabilities"]}
    assert states == {"CVE-2022-48174": "resolved", "CVE-2023-42366": "exploitable",
                      "CVE-2024-2961": "resolved", "CVE-2019-1010022": "not_affected"}
    p = tmp_path / "vex.json"
    p.write_text(json.dumps(vex))
    assert validate_cyclonedx(p) == []


def test_pae_matches_the_dsse_spec():
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_dsse_sign_verify_and_wrong_key(tmp_path):
    priv, pub = make_key(tmp_path / "a.pem")
    _, other = make_key(tmp_path / "b.pem")
    key = load_private_key(str(priv))
    env = sign_envelope(b'{"x":1}', "application/vnd.in-toto+json", key)
    assert env == sign_envelope(b'{"x":1}', "application/vnd.in-toto+json", key)  # deterministic
    assert verify_envelope(env, load_public_key(str(pub))) == b'{"x":1}'
    with pytest.raises(EnvelopeError, match="no signature verifies"):
        verify_envelope(env, load_public_key(str(other)))
    env["payload"] = base64.b64encode(b'{"x":2}').decode()
    with pytest.raises(EnvelopeError):
        verify_envelope(env, load_public_key(str(pub)))


def test_provenance_statement_shape():
    p = ProvenanceInputs("demo", "1.0", ["b-release"],
                         {"poky": {"commit": "a" * 40, "url": "https://git.example/poky"}},
                         [{"path": "products/demo.yml", "sha256": "b" * 64}],
                         {"image": "buildctl-builder:x", "digest": "sha256:" + "c" * 64},
                         1700000000, "0.1.0", {"release.json": "d" * 64})
    st = statement(p)
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    assert st["subject"] == [{"name": "release.json", "digest": {"sha256": "d" * 64}}]
    deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {"name": "poky", "digest": {"gitCommit": "a" * 40},
            "uri": f"git+https://git.example/poky@{'a' * 40}"} in deps
    assert {"name": "buildctl-builder:x", "digest": {"sha256": "c" * 64}} in deps
    assert st["predicate"]["runDetails"]["metadata"]["startedOn"] == "2023-11-14T22:13:20Z"
    env = envelope(p, None)
    assert env["signatures"] == [] and json.loads(base64.b64decode(env["payload"])) == st


def test_cves_of_a_deploy_dir(tmp_path):
    from buildctl.errors import UserError
    from buildctl.release.cves_report import cves_of

    write_deploy(tmp_path, DeployFixture(series="wrynose"))
    data = cves_of(tmp_path)
    assert [b["board"] for b in data["boards"]] == \
        ["core-image-minimal-qemux86-64.rootfs-20240101000000.sbom-cve-check.yocto.json"]
    assert data["boards"][0]["source"] == "sbom-cve-check"
    assert data["boards"][0]["unpatched"] == {"busybox": ["CVE-2023-42366"]}
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no CVE report"):
        cves_of(tmp_path / "empty")
