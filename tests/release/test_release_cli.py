"""`buildctl release` end to end on generated deploy dirs: bundle, verify, diff, cves."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from buildctl.release.api import ReleaseArgs, spec_from_product
from buildctl.release.pipeline import run_release
from buildctl.release.verify import verify_bundle
from tests.conftest import run_cli
from tests.helpers.oe_deploy_fixture import Cve, DeployFixture, default_packages
from tests.release.helpers import deploy_for, device_tested, make_key, release_product


def bundle_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def product(tmp_path):
    prod = release_product(tmp_path)
    device_tested(deploy_for(tmp_path, "qemux86-64").parent)  # `buildctl test` passed
    return prod


def release(tmp_path, prod, out="release", **kw) -> Path:
    spec = spec_from_product(ReleaseArgs(product=prod, build_out=tmp_path / "out" / "demo",
                                         out=tmp_path / out, **kw))
    return run_release(spec).bundle_dir


def test_cli_release_then_verify(tmp_path, product):
    r = run_cli("release", str(product), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    bundle = Path(data["bundle"])
    assert bundle == tmp_path / "release" / "demo" / "1.0"
    board = bundle / "qemux86-64-release"
    names = sorted(p.name for p in board.iterdir())
    assert names == sorted([
        "core-image-minimal-qemux86-64.rootfs.uefiimg", "core-image-minimal-qemux86-64.rootfs.mender",
        "core-image-minimal-qemux86-64.rootfs.manifest",
        "core-image-minimal-qemux86-64.rootfs.spdx.tar.zst",
        "core-image-minimal-qemux86-64.rootfs.json", "sbom.spdx.json", "sbom.spdx3.json",
        "sbom.cdx.json", "vex.cdx.json", "cves.json", "devtest-report.json"])
    # links were followed: real bytes, not symlinks
    assert not any(p.is_symlink() for p in board.iterdir())
    rel = json.loads((bundle / "release.json").read_text())
    assert rel["product"] == "demo" and rel["version"] == "1.0"
    assert rel["lock"]["poky"] and rel["buildctl_version"]
    kinds = {f["path"].split("/")[-1]: f["kind"] for f in rel["files"]}
    assert kinds["core-image-minimal-qemux86-64.rootfs.mender"] == "mender"
    assert kinds["sbom.cdx.json"] == "sbom-cyclonedx-1.6"
    assert rel["boards"][0]["gate"]["verdict"] == "pass"
    assert rel["boards"][0]["test"] == {"verdict": "passed",
                                        "report": "qemux86-64-release/devtest-report.json"}
    assert kinds["devtest-report.json"] == "devtest-report"
    assert rel["boards"][0]["cves"]["unpatched"] == {"busybox": ["CVE-2023-42366"]}
    sums = (bundle / "SHA256SUMS").read_text()
    assert "  release.json\n" in sums and "qemux86-64-release/sbom.spdx.json" in sums
    v = run_cli("release", "verify", str(bundle), "--key", str(tmp_path / "keys/release.pub.pem"),
                "--json")
    assert v.returncode == 0, v.stdout
    assert json.loads(v.stdout)["ok"] is True
    c = run_cli("release", "cves", str(bundle))
    assert c.returncode == 0 and "busybox: CVE-2023-42366" in c.stdout


def test_same_inputs_same_bytes(tmp_path, product):
    a = release(tmp_path, product, "a")
    b = release(tmp_path, product, "b")
    assert bundle_files(a) == bundle_files(b)
    d = run_cli("release", "diff", str(a), str(b), "--json")
    rep = json.loads(d.stdout)["reproducibility"]
    assert rep["verdict"] == "reproducible" and rep["identical"]


def test_missing_output_fails_with_its_name_and_leaves_no_bundle(tmp_path, product):
    deploy = tmp_path / "out/demo/qemux86-64-release/deploy"
    (deploy / "core-image-minimal-qemux86-64.rootfs.uefiimg").unlink()
    r = run_cli("release", str(product), cwd=tmp_path)
    assert r.returncode == 1
    assert "promised output missing: core-image-minimal-qemux86-64.rootfs.uefiimg" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "release/demo/1.0").exists()
    assert not list((tmp_path / "release/demo").glob(".*partial*"))


def test_dangling_link_is_named(tmp_path, product):
    deploy = tmp_path / "out/demo/qemux86-64-release/deploy"
    real = os.readlink(deploy / "core-image-minimal-qemux86-64.rootfs.mender")
    (deploy / real).unlink()
    r = run_cli("release", str(product), cwd=tmp_path)
    assert r.returncode == 1 and f"a link to {real}, which does not exist" in r.stderr


def test_tampered_bundle_is_named(tmp_path, product):
    bundle = release(tmp_path, product)
    key = str(tmp_path / "keys/release.pub.pem")
    img = bundle / "qemux86-64-release/core-image-minimal-qemux86-64.rootfs.uefiimg"
    img.write_bytes(img.read_bytes() + b"x")
    r = run_cli("release", "verify", str(bundle), "--key", key)
    assert r.returncode == 1
    assert "qemux86-64-release/core-image-minimal-qemux86-64.rootfs.uefiimg: sha256" in r.stdout
    # re-summing does not help: the signed provenance still names the old digest
    from buildctl.release import bundle as B
    (bundle / "SHA256SUMS").write_text(B.sums_text(bundle, sorted(B.parse_sums(
        (bundle / "SHA256SUMS").read_text()))))
    rel = json.loads((bundle / "release.json").read_text())
    for f in rel["files"]:
        f["sha256"] = B.sha256_file(bundle / f["path"])
    (bundle / "release.json").write_text(B.dump_json(rel))
    (bundle / "SHA256SUMS").write_text(B.sums_text(bundle, sorted(B.parse_sums(
        (bundle / "SHA256SUMS").read_text()))))
    res = verify_bundle(bundle, key)
    assert not res.ok and "provenance subject digest" in res.problem


def test_extra_file_in_bundle(tmp_path, product):
    bundle = release(tmp_path, product)
    (bundle / "qemux86-64-release/evil.sh").write_text("#!/bin/sh\n")
    res = verify_bundle(bundle)
    assert not res.ok and res.problem.startswith("qemux86-64-release/evil.sh: not listed")


def test_signature_by_the_wrong_key(tmp_path, product):
    bundle = release(tmp_path, product)
    _, other_pub = make_key(tmp_path / "other" / "k.pem")
    r = run_cli("release", "verify", str(bundle), "--key", str(other_pub), "--json")
    assert r.returncode == 1
    assert "signature: no signature verifies" in json.loads(r.stdout)["problem"]


def test_release_key_signs_the_provenance(tmp_path, product):
    priv, pub = make_key(tmp_path / "rk" / "release.pem")
    bundle = release(tmp_path, product, release_key=f"file:{priv}")
    assert verify_bundle(bundle, str(pub)).ok
    assert not verify_bundle(bundle, str(tmp_path / "keys/release.pub.pem")).ok


def test_corrupted_sbom_in_bundle_fails_verification(tmp_path, product):
    bundle = release(tmp_path, product)
    p = bundle / "qemux86-64-release/sbom.spdx.json"
    doc = json.loads(p.read_text())
    doc["packages"][1]["SPDXID"] = "not an id"
    p.write_text(json.dumps(doc))
    # make the sums and provenance agree again so that only the SBOM check can catch it
    from buildctl.release import bundle as B
    from buildctl.release.pipeline import ReleaseSpec, step_provenance
    rel = json.loads((bundle / "release.json").read_text())
    for f in rel["files"]:
        f["sha256"] = B.sha256_file(bundle / f["path"])
    (bundle / "release.json").write_text(B.dump_json(rel))
    (bundle / "provenance.intoto.json").unlink()
    (bundle / "SHA256SUMS").unlink()
    (bundle / "SHA256SUMS").write_text(B.sums_text(bundle, B.files_of(bundle)))
    step_provenance(ReleaseSpec("demo", "1.0", "scarthgap", [], tmp_path), bundle)
    res = verify_bundle(bundle)
    assert not res.ok and res.problem.startswith("qemux86-64-release/sbom.spdx.json: invalid spdx-2.3")
    r = run_cli("release", "verify", str(bundle), "--no-validators")
    assert r.returncode == 0 and "SBOM" not in r.stdout


def test_gate_fails_on_wrong_device_type(tmp_path):
    prod = release_product(tmp_path)
    deploy_for(tmp_path, "qemux86-64", artifact_name="demo-1.0-qemux86-64")
    # overwrite the artifact with one for another device
    from tests.release.helpers import mender_writer
    deploy = tmp_path / "out/demo/qemux86-64-release/deploy"
    real = deploy / os.readlink(deploy / "core-image-minimal-qemux86-64.rootfs.mender")
    mender_writer("demo-1.0-qemux86-64", ["raspberrypi4"])(real, DeployFixture())
    r = run_cli("release", str(prod), cwd=tmp_path)
    assert r.returncode == 1 and "artifact gate" in r.stderr and "raspberrypi4" in r.stderr
    assert not (tmp_path / "release/demo/1.0").exists()


def test_cve_policy_with_allowlist(tmp_path, product):
    r = run_cli("release", str(product), "--max-cvss", "5.0", cwd=tmp_path)
    assert r.returncode == 1 and "CVE-2023-42366" in r.stderr and "CVSS 5.5" in r.stderr
    r = run_cli("release", str(product), "--max-cvss", "5.0", "--allow-cve", "CVE-2023-42366",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_cli("release", str(product), "--max-cvss", "6.0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_plain_kas_deploy_dir_of_a_wrynose_build(tmp_path):
    prod = release_product(tmp_path, ("qemux86-64", "qemuarm64"))
    kas_deploy = tmp_path / "build/tmp/deploy/images/qemux86-64"
    deploy_for(tmp_path, "qemux86-64", fx=DeployFixture(series="wrynose",
                                                        image_types=("uefiimg", "mender")),
               build_out=tmp_path / "elsewhere")
    shutil.move(tmp_path / "elsewhere/qemux86-64-release/deploy", kas_deploy)
    r = run_cli("release", str(prod), "--series", "wrynose", "--board", "qemux86-64",
                "--deploy-dir", str(kas_deploy), "--json", "--untested", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)["boards"][0]
    assert b["sbom"]["source"] == "spdx-3.0.1" and b["cves"]["source"] == "sbom-cve-check"
    assert b["test"] == {"verdict": "untested", "report": None}
    bundle = Path(json.loads(r.stdout)["bundle"])
    assert verify_bundle(bundle).ok
    r = run_cli("release", str(prod), "--deploy-dir", str(kas_deploy), cwd=tmp_path)
    assert r.returncode == 2 and "--board" in r.stderr


def test_diff_of_bundles_that_differ_in_one_package(tmp_path):
    prod = release_product(tmp_path)
    device_tested(deploy_for(tmp_path, "qemux86-64").parent)
    a = release(tmp_path, prod, "a")
    pkgs = default_packages()
    for p in pkgs:
        if p.name == "libz1":
            p.version = "1.3.2"
            p.cves = (Cve("CVE-2099-0001", "Unpatched", "7.5"),)
    shutil.rmtree(tmp_path / "out")
    device_tested(deploy_for(tmp_path, "qemux86-64", fx=DeployFixture(
        packages=pkgs, image_types=("uefiimg", "mender"))).parent)
    b = release(tmp_path, prod, "b")
    r = run_cli("release", "diff", str(a), str(b), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    board = d["boards"][0]
    assert board["packages"]["upgraded"] == [{"name": "libz1", "from": "1.3.1", "to": "1.3.2"}]
    assert board["packages"]["added"] == [] and board["packages"]["removed"] == []
    assert board["new_unpatched_cves"] == ["zlib:CVE-2099-0001"]
    assert "core-image-minimal-qemux86-64.rootfs.uefiimg" in board["files"]["changed"]
    assert d["reproducibility"]["verdict"] == "not reproducible"
    text = run_cli("release", "diff", str(a), str(b)).stdout
    assert "upgraded: libz1 1.3.1 -> 1.3.2" in text


def test_usage_errors(tmp_path):
    r = run_cli("release", "verify")
    assert r.returncode == 2 and "release verify DIR" in r.stderr
    r = run_cli("release", "diff", str(tmp_path), str(tmp_path))
    assert r.returncode == 2 and "not a release bundle" in r.stderr


def test_manifest_cve_policy(tmp_path):
    import yaml

    from buildctl.release.errors import ReleaseError
    from tests.helpers.products import write_yaml
    prod = release_product(tmp_path)
    device_tested(deploy_for(tmp_path, "qemux86-64").parent)
    data = yaml.safe_load(prod.read_text())
    data["sbom"]["cve_policy"] = {"max_cvss": 5.0}
    write_yaml(prod, data)
    with pytest.raises(ReleaseError, match="CVE policy: 1 unpatched CVE.*CVE-2023-42366"):
        release(tmp_path, prod)
    data["sbom"]["cve_policy"]["allow"] = ["CVE-2023-42366"]
    write_yaml(prod, data)
    bundle = release(tmp_path, prod)
    rel = json.loads((bundle / "release.json").read_text())
    assert rel["cve_policy"] == {"max_cvss": 5.0, "allow": ["CVE-2023-42366"]}
    data["sbom"]["cve_policy"] = {"max_cvss": 11}
    write_yaml(prod, data)
    r = run_cli("release", str(prod), cwd=tmp_path)
    assert r.returncode == 2 and "max_cvss" in r.stderr and "Traceback" not in r.stderr
