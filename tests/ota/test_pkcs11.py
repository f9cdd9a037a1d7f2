"""Keys that never leave a PKCS#11 token (issue 15 item 7): a SoftHSM2 token made here.

Signatures made by the token must be what file keys give (RSA: the very same bytes; ECDSA:
64-byte r||s in manifest.sig, DER in DSSE) and pass Debian's mender-artifact validate.
"""
from __future__ import annotations

import base64
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.helpers.products import write_yaml
from tests.helpers import skips
from tests.ota.helpers import make_image, mender_artifact

PIN = "246810"
WRONG_PIN = "975319"
SO_PIN = "13579111"


def _softhsm_module() -> str:
    for p in ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
              "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"):
        if Path(p).is_file():
            return p
    skips.missing("SoftHSM2's PKCS#11 module", "apt-get install softhsm2")


@pytest.fixture(scope="module")
def hsm(tmp_path_factory, keys):
    """A SoftHSM2 token 'buildctl-test' holding the session's RSA (id 01) and EC (id 02) keys."""
    util = skips.tool("softhsm2-util", "apt-get install softhsm2")
    try:
        import PyKCS11  # noqa: F401
    except ImportError:
        skips.missing("PyKCS11", "pip install 'buildctl[pkcs11]'")
    module = _softhsm_module()
    d = tmp_path_factory.mktemp("softhsm")
    (d / "tokens").mkdir()
    conf = d / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {d / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    run = lambda *a: subprocess.run([util, *a], env=env, check=True, capture_output=True)  # noqa: E731
    run("--init-token", "--free", "--label", "buildctl-test", "--pin", PIN, "--so-pin", SO_PIN)
    run("--import", str(keys["rsa-pkcs8"]), "--token", "buildctl-test", "--label", "rsa-key",
        "--id", "01", "--pin", PIN)
    run("--import", str(keys["ec-pkcs8"]), "--token", "buildctl-test", "--label", "ec-key",
        "--id", "02", "--pin", PIN)
    return {"module": module, "env": {"SOFTHSM2_CONF": str(conf), "HSM_PIN": PIN,
                                      "BUILDCTL_PKCS11_MODULE": module}}


def uri(obj: str, pin: str = "pin-source=env:HSM_PIN", token: str = "buildctl-test") -> str:
    return f"pkcs11:token={token};object={obj}?{pin}"


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("p11art")
    img = make_image(d / "rootfs.ext4", 96 * 1024)
    out = d / "unsigned.mender"
    r = run_cli("artifact", "write", "rootfs-image", "-f", str(img), "-n", "rel-1",
                "-t", "qemux86-64", "-o", str(out), "--mender-client", "5.0")
    assert r.returncode == 0, r.stderr
    return out


def _sig(path: Path) -> bytes:
    with tarfile.open(path) as t:
        return t.extractfile("manifest.sig").read()


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_sign_with_a_token_key_validates_with_mender_artifact(tmp_path, hsm, keys, unsigned, kind):
    out = tmp_path / f"{kind}.mender"
    r = run_cli("artifact", "sign", str(unsigned), "-o", str(out), "-k", uri(f"{kind}-key"),
                env=hsm["env"])
    assert r.returncode == 0, r.stderr
    assert PIN not in r.stdout + r.stderr
    ma = subprocess.run([mender_artifact(), "validate", "-k", str(keys[f"{kind}-pub"]), str(out)],
                        capture_output=True, text=True)
    assert ma.returncode == 0, ma.stdout + ma.stderr
    v = run_cli("artifact", "verify", str(out), "-k", str(keys[f"{kind}-pub"]))
    assert v.returncode == 0 and "verified" in v.stdout, v.stderr
    # the same format as a file key's signature
    file_signed = tmp_path / f"{kind}-file.mender"
    assert run_cli("artifact", "sign", str(unsigned), "-o", str(file_signed),
                   "-k", str(keys[kind])).returncode == 0
    token_sig, file_sig = _sig(out), _sig(file_signed)
    if kind == "rsa":  # PKCS#1 v1.5 is deterministic: the token gives the file key's bytes
        assert token_sig == file_sig
    else:  # ECDSA: raw r||s, base64, no newline, like mender-artifact's own
        assert len(base64.b64decode(token_sig, validate=True)) == 64
        assert not token_sig.endswith(b"\n")
    other = "ec" if kind == "rsa" else "rsa"
    bad = subprocess.run([mender_artifact(), "validate", "-k", str(keys[f"{other}-pub"]), str(out)],
                         capture_output=True, text=True)
    assert bad.returncode != 0


def test_write_signed_by_the_token(tmp_path, hsm, keys):
    img = make_image(tmp_path / "rootfs.ext4", 64 * 1024)
    out = tmp_path / "w.mender"
    # module from the URI this time (no setting)
    env = dict(hsm["env"], BUILDCTL_PKCS11_MODULE="")
    r = run_cli("artifact", "write", "rootfs-image", "-f", str(img), "-n", "rel-2",
                "-t", "qemux86-64", "-o", str(out), "--mender-client", "5.0",
                "-k", uri("ec-key") + f"&module-path={hsm['module']}", env=env)
    assert r.returncode == 0, r.stderr
    ma = subprocess.run([mender_artifact(), "validate", "-k", str(keys["ec-pub"]), str(out)],
                        capture_output=True, text=True)
    assert ma.returncode == 0, ma.stdout + ma.stderr


def test_without_a_module_path_p11kit_finds_the_registered_token(tmp_path, hsm, keys, unsigned):
    """No module-path, no setting: p11-kit's proxy loads the modules registered system-wide
    (Debian's softhsm2 registers its own), as GnuTLS and OpenSSL's pkcs11 provider do."""
    from buildctl.ota.mender.pkcs11 import p11kit_proxy

    skips.require(p11kit_proxy() is not None, "p11-kit", "apt-get install libp11-kit0")
    out = tmp_path / "proxy.mender"
    r = run_cli("artifact", "sign", str(unsigned), "-o", str(out), "-k", uri("rsa-key"),
                env=dict(hsm["env"], BUILDCTL_PKCS11_MODULE=""))
    assert r.returncode == 0, r.stderr
    ma = subprocess.run([mender_artifact(), "validate", "-k", str(keys["rsa-pub"]), str(out)],
                        capture_output=True, text=True)
    assert ma.returncode == 0, ma.stdout + ma.stderr


@pytest.mark.parametrize("key,env_change,expect", [
    (uri("ec-key", f"pin-value={WRONG_PIN}"), {}, "wrong PIN"),
    (uri("ec-key", "pin-source=env:NO_SUCH_PIN_VAR"), {}, "NO_SUCH_PIN_VAR"),
    (uri("no-such-key"), {}, "no such private key on the token"),
    (uri("ec-key", token="no-such-token"), {}, "no such token"),
    (uri("ec-key") + "&module-path=/nonexistent/libp11.so", {}, "/nonexistent/libp11.so: no such file"),
    ("pkcs11:token=buildctl-test?pin-value=1", {}, "names no key"),
])
def test_token_problems_are_one_line_and_write_nothing(tmp_path, hsm, unsigned, key, env_change,
                                                       expect):
    out = tmp_path / "never.mender"
    before = sorted(tmp_path.iterdir())
    r = run_cli("artifact", "sign", str(unsigned), "-o", str(out), "-k", key,
                env=dict(hsm["env"], **env_change))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert WRONG_PIN not in r.stderr and PIN not in r.stderr
    assert sorted(tmp_path.iterdir()) == before


def test_release_signed_by_the_token(tmp_path, hsm, keys):
    """mender.signing_key as a pkcs11: URI: the release's artifacts and its DSSE provenance
    are signed by the token and verify with the public key."""
    from tests.release.helpers import deploy_for, device_tested, release_product

    prod = release_product(tmp_path)
    data = yaml.safe_load(prod.read_text())
    data["mender"]["signing_key"] = uri("ec-key")
    write_yaml(prod, data)
    device_tested(deploy_for(tmp_path, "qemux86-64").parent)
    r = run_cli("release", str(prod), "--json", cwd=tmp_path, env=hsm["env"])
    assert r.returncode == 0, r.stderr
    assert PIN not in r.stdout + r.stderr
    bundle = tmp_path / "release" / "demo" / "1.0"
    v = run_cli("release", "verify", str(bundle), "--key", str(keys["ec-pub"]), "--json")
    assert v.returncode == 0, v.stdout
    wrong = run_cli("release", "verify", str(bundle), "--key", str(keys["rsa-pub"]), "--json")
    assert wrong.returncode == 1
    mender = next(bundle.rglob("*.mender"))
    ma = subprocess.run([mender_artifact(), "validate", "-k", str(keys["ec-pub"]), str(mender)],
                        capture_output=True, text=True)
    assert ma.returncode == 0, ma.stdout + ma.stderr
    # RSA provenance via --release-key
    r2 = run_cli("release", str(prod), "--json", "--out", str(tmp_path / "rel2"),
                 "--release-key", uri("rsa-key"), cwd=tmp_path, env=hsm["env"])
    assert r2.returncode == 0, r2.stderr
    v2 = run_cli("release", "verify", str(tmp_path / "rel2" / "demo" / "1.0"), "--key",
                 str(keys["rsa-pub"]), "--json")
    assert v2.returncode == 0, v2.stdout


def test_manifest_refuses_a_pin_written_into_it(tmp_path):
    from tests.release.helpers import release_product

    prod = release_product(tmp_path)
    data = yaml.safe_load(prod.read_text())
    data["mender"]["signing_key"] = uri("ec-key", f"pin-value={WRONG_PIN}")
    write_yaml(prod, data)
    r = run_cli("validate", str(prod), "--offline", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "pin-source" in r.stderr and "signing_key" in r.stderr
    assert WRONG_PIN not in r.stdout + r.stderr


def test_doctor_opens_the_token_key_and_names_a_wrong_pin(tmp_path, hsm, monkeypatch):
    from buildctl.builder.doctor import check_secrets

    for k, v in hsm["env"].items():
        monkeypatch.setenv(k, v)
    good, bad = check_secrets([("mender.signing_key", uri("ec-key")),
                               ("mender.signing_key", uri("ec-key", f"pin-value={WRONG_PIN}"))],
                              tmp_path, dict(os.environ), pkcs11_module=hsm["module"])
    assert good.ok and "ecdsa-p256 key in a PKCS#11 token" in good.detail
    assert not bad.ok and "wrong PIN" in bad.detail and WRONG_PIN not in bad.detail


def test_ci_provides_the_pin_a_pkcs11_signing_key_names():
    """CI pipelines get the PIN reference as their secret, never a key file."""
    import dataclasses

    from buildctl.ci.plan import plan_pipeline
    from buildctl.errors import UserError
    from buildctl.manifest import load_product
    from buildctl.secrets import SecretRef
    from tests.conftest import ROOT

    product = load_product(ROOT / "products" / "demo.yml")
    key = SecretRef.parse_key(uri("ec-key", "pin-source=env:RELEASE_HSM_PIN"))
    mender = dataclasses.replace(product.mender, signing_key=key, tenant_token=None)
    pipe = plan_pipeline(dataclasses.replace(product, mender=mender), "img")
    assert [s.name for s in pipe.release_secrets] == ["RELEASE_HSM_PIN"]
    assert [(s.name, s.kind) for s in pipe.build_secrets] == [("RELEASE_HSM_PIN", "env")]
    no_pin = dataclasses.replace(product.mender, signing_key=SecretRef.parse_key(uri("ec-key", "")),
                                 tenant_token=None)
    with pytest.raises(UserError, match="pin-source"):
        plan_pipeline(dataclasses.replace(product, mender=no_pin), "img")
