"""`buildctl doctor`: checks what the README's build needs, advises a person, writes nothing."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from buildctl.cli import main
from tests.helpers.products import simple_product


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.fixture
def world(tmp_path, monkeypatch):
    product = simple_product(tmp_path / "w")
    data = yaml.safe_load(product.read_text())
    data["mender"] = {"signing_key": "file:../keys/signing.pem",
                      "tenant_token": "env:DOCTOR_TEST_TOKEN"}
    data["cache"] = {"sstate_dir": str(tmp_path / "caches" / "sstate"),
                     "dl_dir": str(tmp_path / "caches" / "downloads")}
    # a second repository nobody can reach (a file URL that does not exist)
    data["repos"]["gone"] = {"url": (tmp_path / "no-such-repo").as_uri(),
                             "refs": {"scarthgap": {"branch": "scarthgap",
                                                    "commit": "0" * 40}}, "layers": []}
    product.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DOCTOR_TEST_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    return product


def _doctor(capsys, *argv) -> tuple[int, dict]:
    rc = main(["doctor", "--runtime", "host", "--json", *argv])
    return rc, {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}


def test_doctor_reports_key_secrets_and_repositories_and_writes_nothing(world, tmp_path, capsys):
    before = _snapshot(tmp_path)
    rc, checks = _doctor(capsys, "--product", str(world))
    assert rc == 1
    key = checks["secret:mender.signing_key"]
    assert not key["ok"] and key["severity"] == "error"
    assert key["advice"].startswith("openssl ecparam -genkey")
    token = checks["secret:mender.tenant_token"]
    assert not token["ok"] and token["advice"] == "export DOCTOR_TEST_TOKEN=... before building"
    assert checks["repo:poky"]["ok"], checks["repo:poky"]
    gone = checks["repo:gone"]
    assert not gone["ok"] and "--repo-ref-dir" in gone["advice"]
    # the caches do not exist: doctor says where they will be, and does not create them
    assert "will be created under" in checks["cache:sstate"]["detail"]
    assert _snapshot(tmp_path) == before


def test_doctor_passes_when_the_host_has_what_the_product_needs(world, tmp_path, capsys,
                                                                monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    (world.parent.parent / "keys").mkdir()
    (world.parent.parent / "keys" / "signing.pem").write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()))
    monkeypatch.setenv("DOCTOR_TEST_TOKEN", "t0ken-value")
    data = yaml.safe_load(world.read_text())
    del data["repos"]["gone"]
    world.write_text(yaml.safe_dump(data, sort_keys=False))
    rc, checks = _doctor(capsys, "--product", str(world))
    failed = {n: c for n, c in checks.items() if not c["ok"] and c["severity"] == "error"}
    assert rc == 0 and not failed, failed
    assert checks["secret:mender.signing_key"]["detail"].endswith("private key")
    assert "t0ken-value" not in json.dumps(checks)  # secrets are checked, never shown


def test_doctor_offline_skips_the_network(world, capsys):
    _, checks = _doctor(capsys, "--product", str(world), "--offline")
    assert not any(n.startswith("repo:") or n == "debian-mirror" for n in checks)


def test_doctor_advice_is_for_users_not_test_fixtures(capsys, monkeypatch, tmp_path):
    """Without an engine the advice is the distribution's way (service, docker group), not
    the flags the test fixture starts dockerd with."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    monkeypatch.chdir(tmp_path)
    main(["doctor", "--runtime", "docker", "--json", "--offline"])
    engine = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}["engine"]
    assert not engine["ok"]
    assert "--bridge" not in engine["advice"] and "--iptables" not in engine["advice"]
    assert any(w in engine["advice"] for w in ("systemctl start docker", "apt-get install",
                                               "usermod -aG docker"))
    assert os.listdir(tmp_path) == []
