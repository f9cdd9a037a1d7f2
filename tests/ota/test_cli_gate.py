"""`buildctl artifact ...` as a user runs it, and the release gate."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from buildctl.cli import main
from buildctl.findings import Finding
from buildctl.ota.mender import (ArtifactSpec, load_private_key, read_artifact, rootfs_payload,
                                 write_artifact)
from buildctl.ota.mender.gate import check_artifacts
from tests.ota.helpers import make_image

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "buildctl", *map(str, args)], capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **(env or {})},
                          cwd=cwd)


@pytest.fixture()
def art(tmp_path):
    img = make_image(tmp_path / "rootfs.ext4")

    def make(name="rel-1", devices=("rpi4",), key=None, out="a.mender"):
        spec = ArtifactSpec(name, list(devices), rootfs_payload(img, name))
        return write_artifact(spec, tmp_path / out, key=load_private_key(key) if key else None)
    return make


def test_write_inspect_verify_sign_roundtrip(tmp_path, keys):
    img = make_image(tmp_path / "rootfs.ext4")
    out = tmp_path / "cli.mender"
    r = cli("artifact", "write", "rootfs-image", "-f", img, "-n", "rel-2", "-t", "rpi4", "-t", "rpi5",
            "-p", "k:v", "-d", "x:y", "-g", "prod", "--compression", "zstd_fast", "-o", out)
    assert r.returncode == 0, r.stderr
    r = cli("artifact", "inspect", out, "--json")
    data = json.loads(r.stdout)
    assert data["name"] == "rel-2" and data["device_types"] == ["rpi4", "rpi5"]
    assert data["payloads"][0]["provides"]["k"] == "v" and data["compression"] == "zstd"
    r = cli("artifact", "inspect", out)
    assert "rel-2" in r.stdout and "rpi4, rpi5" in r.stdout and "no signature" in r.stdout
    assert cli("artifact", "verify", out, "-t", "rpi5", "-n", "rel-2").returncode == 0
    r = cli("artifact", "verify", out, "--max-payload-bytes", "1000")
    assert r.returncode == 1 and "1000-byte limit" in r.stderr
    r = cli("artifact", "verify", out, "-t", "qemux86-64")
    assert r.returncode == 1 and "not compatible with device type(s) qemux86-64" in r.stderr
    r = cli("artifact", "verify", out, "-k", keys["rsa-pub"])
    assert r.returncode == 1 and "not signed" in r.stderr
    # sign from an env: reference; the key never shows up in any output
    pem = keys["ec"].read_text()
    r = cli("artifact", "sign", out, "-k", "env:MY_KEY", env={"MY_KEY": pem})
    assert r.returncode == 0, r.stderr
    assert "PRIVATE" not in r.stdout + r.stderr and pem.splitlines()[1] not in r.stdout + r.stderr
    r = cli("artifact", "verify", out, "-k", f"file:{keys['ec-pub']}", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["artifact"]["signature"] == "verified"
    r = cli("artifact", "sign", out, "-k", keys["rsa"])
    assert r.returncode == 2 and "already signed" in r.stderr and "Traceback" not in r.stderr
    assert cli("artifact", "sign", out, "-k", keys["rsa"], "--force").returncode == 0
    assert cli("artifact", "verify", out, "-k", keys["rsa-pub"]).returncode == 0


def test_bad_keys_are_one_line_errors(tmp_path, keys, art):
    a = art()
    for key, match in [(keys["ed"], "only RSA and ECDSA P-256"), (keys["ec384"], "P-256"),
                       (keys["rsa-pub"], "not a PEM private key"), (tmp_path / "nope.pem", "nope.pem"),
                       ("env:UNSET_VAR_X", "not set")]:
        r = cli("artifact", "sign", a, "-k", key)
        assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    r = cli("artifact", "verify", a, "-k", keys["rsa"])
    assert r.returncode == 2 and "private key" in r.stderr


def test_corrupt_artifact_cli(tmp_path, art):
    a = art()
    blob = bytearray(a.read_bytes())
    blob[-2000] ^= 0xFF
    a.write_bytes(bytes(blob))
    r = cli("artifact", "inspect", a)
    assert r.returncode == 2 and str(a) in r.stderr and "Traceback" not in r.stderr
    r = cli("artifact", "verify", a, "--extract", tmp_path / "x")
    assert r.returncode == 1 and "data/0000.tar.gz" in r.stderr
    assert not any(p.is_file() for p in (tmp_path / "x").rglob("*"))


def test_write_module_image_cli(tmp_path):
    conf = tmp_path / "app.conf"
    conf.write_text("a=1\n")
    out = tmp_path / "m.mender"
    assert main(["artifact", "write", "module-image", "-T", "single-file", "--dest-dir", "/etc/app",
                 "-f", str(conf), "--permissions", "600", "-n", "app-1", "-t", "rpi4", "-o", str(out)]) == 0
    info = read_artifact(out)
    assert [f.name for f in info.payloads[0].files] == ["dest_dir", "filename", "permissions", "app.conf"]
    out2 = tmp_path / "d.mender"
    assert main(["artifact", "write", "module-image", "-T", "docker", "--container", "nginx:1",
                 "-n", "c-1", "-t", "rpi4", "-o", str(out2)]) == 0
    assert read_artifact(out2).payloads[0].meta_data == {"containers": ["nginx:1"]}
    r = cli("artifact", "write", "module-image", "-T", "x", "-n", "a", "-t", "d", "-f", tmp_path / "missing",
            "-o", tmp_path / "z.mender")
    assert r.returncode == 2 and "missing" in r.stderr and not (tmp_path / "z.mender").exists()
    r = cli("artifact", "write", "rootfs-image", "-f", conf, "-n", "a", "-t", "d", "-o", tmp_path / "z.mender",
            "-s", tmp_path / "Idle_Enter_00")
    assert r.returncode == 2 and "Idle_Enter_00" in r.stderr


def test_gate(tmp_path, keys, art):
    good = art(devices=("rpi4", "rpi4-64"), key=keys["rsa"], out="good.mender")
    pub = keys["rsa-pub"].read_bytes()
    kw = dict(board="rpi4", device_types=["rpi4-64", "rpi4"], artifact_name="rel-1")
    assert check_artifacts([good], require_signature=True, public_key_pem=pub, **kw) == []
    wrong_dev = art(devices=("rpi4",), key=keys["rsa"], out="dev.mender")
    wrong_name = art(name="rel-0", devices=("rpi4", "rpi4-64"), key=keys["rsa"], out="name.mender")
    unsigned = art(devices=("rpi4", "rpi4-64"), out="unsigned.mender")
    other_key = art(devices=("rpi4", "rpi4-64"), key=keys["ec"], out="ec.mender")
    broken = tmp_path / "broken.mender"
    broken.write_bytes(good.read_bytes()[:3000])
    found = check_artifacts([good, wrong_dev, wrong_name, unsigned, other_key, broken],
                            require_signature=True, public_key_pem=pub, **kw)
    assert all(isinstance(f, Finding) and f.board == "rpi4" for f in found)
    by_file = {Path(f.file).name: f for f in found}
    assert set(by_file) == {"dev.mender", "name.mender", "unsigned.mender", "ec.mender", "broken.mender"}
    assert by_file["dev.mender"].code == "artifact-device-types" and "rpi4-64" in by_file["dev.mender"].message
    assert by_file["name.mender"].code == "artifact-name" and "rel-0" in by_file["name.mender"].message
    assert by_file["unsigned.mender"].code == "artifact-signature"
    assert by_file["ec.mender"].code == "artifact-signature"
    assert by_file["broken.mender"].code == "artifact-invalid" and "truncated" in by_file["broken.mender"].message
    # signing not required: unsigned passes; a signature without a key to check is fine too
    assert check_artifacts([unsigned, good], require_signature=False, **kw) == []
    assert check_artifacts([unsigned], require_signature=True, **kw)[0].code == "artifact-signature"
    assert check_artifacts([], require_signature=False, **kw)[0].code == "artifact-missing"
    assert check_artifacts([good], require_signature=True, public_key_pem=b"junk", **kw)[0].code == "artifact-key"
