"""Signing and secrets reach the image without a secret ever being written by compose."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import run_cli
from tests.helpers.products import simple_product, write_yaml
from tests.helpers import skips

TOKEN = "tenant-token-VALUE-must-not-leak-0123456789"


def _key(path, private=True):
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key


def _pub(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _product(tmp_path, **mender):
    path = simple_product(tmp_path / "ws")
    d = yaml.safe_load(path.read_text())
    d["mender"] = mender
    write_yaml(path, d)
    return path


def _all_text(out) -> str:
    return "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())


def test_require_signed_gives_devices_the_public_half_of_the_signing_key(tmp_path):
    key = _key(tmp_path / "ws" / "keys" / "signing.pem")
    path = _product(tmp_path, signing_key="file:../keys/signing.pem", require_signed=True)
    out = tmp_path / "out"
    r = run_cli("compose", str(path), "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load((out / "qemux86-64.yml").read_text())
    mender = doc["local_conf_header"]["10-buildctl-mender"]
    line = next(x for x in mender.splitlines() if x.startswith("MENDER_ARTIFACT_VERIFY_KEY"))
    installed = line.split('"')[1]
    assert os.path.isabs(installed) and Path(installed).read_bytes() == _pub(key)
    # the key's directory is a kas repo without layers (so builds mount it), nothing private in it
    assert doc["repos"]["buildctl-keys"] == {"path": os.path.dirname(installed), "layers": {".": "disabled"}}
    assert "PRIVATE" not in _all_text(out)


def test_a_given_verify_key_wins_and_must_be_public(tmp_path):
    signing = _key(tmp_path / "ws" / "keys" / "signing.pem")
    verify = _key(tmp_path / "ws" / "keys" / "other.pem")
    (tmp_path / "ws" / "keys" / "verify.pem").write_bytes(_pub(verify))
    path = _product(tmp_path, signing_key="file:../keys/signing.pem", require_signed=True,
                    verify_key="file:../keys/verify.pem")
    out = tmp_path / "out"
    assert run_cli("compose", str(path), "--out", str(out)).returncode == 0
    written = (out / "buildctl-keys" / "artifact-verify-key.pem").read_bytes()
    assert written == _pub(verify) != _pub(signing)
    # a private key given as verify_key is refused: it would be installed on every device
    path = _product(tmp_path, verify_key="file:../keys/other.pem")
    r = run_cli("compose", str(path), "--out", str(tmp_path / "out2"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "mender.verify_key" in r.stderr and "is a private key" in r.stderr
    assert not (tmp_path / "out2").exists()


def test_unreadable_signing_key_is_one_line_and_nothing_is_written(tmp_path):
    path = _product(tmp_path, signing_key="file:../keys/missing.pem", require_signed=True)
    r = run_cli("compose", str(path), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "missing.pem" in r.stderr and "demo.yml" in r.stderr
    assert not (tmp_path / "out").exists()


def test_no_signing_no_verify_key(tmp_path):
    path = _product(tmp_path, server_url="https://mender.example.com")
    out = tmp_path / "out"
    assert run_cli("compose", str(path), "--out", str(out)).returncode == 0
    text = (out / "qemux86-64.yml").read_text()
    assert "MENDER_ARTIFACT_VERIFY_KEY" not in text and "buildctl-keys" not in text


def test_tenant_token_is_named_for_the_build_never_written(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "token").write_text(TOKEN)
    for ref in ("env:MY_TOKEN", "file:../token"):
        path = _product(tmp_path, tenant_token=ref)
        out = tmp_path / f"out-{ref[:3]}"
        r = run_cli("compose", str(path), "--out", str(out), "--json", env={"MY_TOKEN": TOKEN})
        assert r.returncode == 0, r.stderr
        assert TOKEN not in r.stdout + r.stderr + _all_text(out)
        doc = yaml.safe_load((out / "qemux86-64.yml").read_text())
        # kas passes MENDER_TENANT_TOKEN from the build's environment to BitBake; the
        # build runtime puts the referenced secret there
        assert doc["env"] == {"MENDER_TENANT_TOKEN": None}
        assert "MENDER_TENANT_TOKEN" not in "".join(doc["local_conf_header"].values())


@skips.unless(shutil.which("kas") is not None, "kas is not installed")
def test_real_kas_accepts_the_key_repo_and_forwards_the_token(tmp_path):
    _key(tmp_path / "ws" / "keys" / "signing.pem")
    path = _product(tmp_path, signing_key="file:../keys/signing.pem", require_signed=True,
                    tenant_token="env:MENDER_TENANT_TOKEN")
    out = tmp_path / "out"
    assert run_cli("compose", str(path), "--out", str(out)).returncode == 0
    work = tmp_path / "kaswork"
    work.mkdir()
    env = {**os.environ, "KAS_WORK_DIR": str(work), "HOME": str(tmp_path), "MENDER_TENANT_TOKEN": TOKEN}
    r = subprocess.run(["kas", "dump", str(out / "qemux86-64.yml")], cwd=work, capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    dumped = yaml.safe_load(r.stdout)
    assert "buildctl-keys" in dumped["repos"] and "MENDER_TENANT_TOKEN" in dumped["env"]


@skips.unless(shutil.which("kas") is not None, "kas is not installed")
def test_build_puts_the_token_where_kas_hands_it_to_bitbake(tmp_path):
    """buildctl build resolves the reference into the build's environment; kas forwards the
    variable to BitBake (BB_ENV_PASSTHROUGH_ADDITIONS) because the kas file names it."""
    from buildctl.builder.caches import CacheSettings
    from buildctl.builder.jobs import from_product
    from buildctl.builder.runner import BoardRunner, BuildOptions
    from tests.compose.test_patches import INIT_ENV
    from tests.helpers.products import commit_more

    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "token").write_text(TOKEN + "\n")
    path = _product(tmp_path, tenant_token="file:../token")
    d = yaml.safe_load(path.read_text())
    d["repos"]["poky"]["refs"]["scarthgap"]["commit"] = commit_more(
        tmp_path / "ws" / "repos" / "poky", {"oe-init-build-env": INIT_ENV})
    write_yaml(path, d)
    target = from_product(path, ["qemux86-64"], None, tmp_path / "compose")
    (job,) = target.jobs
    assert TOKEN not in job.kas_file.read_text() and TOKEN not in repr(job)

    class _Docker:
        name = "docker"

    opts = BuildOptions(out_dir=tmp_path / "out", owner=(os.getuid(), os.getgid()))
    runner = BoardRunner(_Docker(), CacheSettings(tmp_path / "s", tmp_path / "d", tmp_path / "g"),
                         opts, {})
    env = runner._container_env(job, network=False)
    assert env["MENDER_TENANT_TOKEN"] == TOKEN
    work = tmp_path / "kaswork"
    work.mkdir()
    kas_env = {**os.environ, "KAS_WORK_DIR": str(work), "HOME": str(tmp_path),
               "MENDER_TENANT_TOKEN": env["MENDER_TENANT_TOKEN"]}
    r = subprocess.run(["kas", "shell", str(job.kas_file), "-c",
                        'echo "token=$MENDER_TENANT_TOKEN"; echo "pass=$BB_ENV_PASSTHROUGH_ADDITIONS"'],
                       cwd=work, capture_output=True, text=True, env=kas_env)
    assert r.returncode == 0, r.stderr
    assert f"token={TOKEN}" in r.stdout
    assert "MENDER_TENANT_TOKEN" in next(x for x in r.stdout.splitlines() if x.startswith("pass=")).split()
    # an unset reference fails the board with one line naming it, not a silent "dummy" token
    d["mender"]["tenant_token"] = "env:BUILDCTL_TEST_NO_SUCH_TOKEN"
    write_yaml(path, d)
    (job,) = from_product(path, ["qemux86-64"], None, tmp_path / "compose2").jobs
    from buildctl.errors import UserError
    with pytest.raises(UserError, match="env:BUILDCTL_TEST_NO_SUCH_TOKEN: variable is not set"):
        runner._container_env(job, network=False)


def test_an_output_path_bitbake_could_not_read_is_refused_before_writing(tmp_path):
    _key(tmp_path / "ws" / "keys" / "signing.pem")
    path = _product(tmp_path, signing_key="file:../keys/signing.pem", require_signed=True)
    out = tmp_path / "o\nINHERIT += \"evil\""
    r = run_cli("compose", str(path), "--out", str(out))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "would not survive BitBake's parser" in r.stderr and not out.exists()
