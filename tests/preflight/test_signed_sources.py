"""Signed sources: validate refuses a pin that is unsigned or signed by a key the product does
not allow, naming repository and commit (and the signer found), one line each.

Fixture: a core repository with commits signed by real GPG keys (throwaway keys in a temporary
GNUPGHOME) and real SSH keys, unsigned commits, and signed and unsigned annotated tags.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from buildctl.cli import main
from tests.helpers.fixture_layers import GIT_ENV
from tests.helpers.products import simple_product, write_yaml
from tests.helpers.skips import tool


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    tool("gpg", "apt-get install gnupg")
    tool("ssh-keygen", "apt-get install openssh-client")
    root = tmp_path_factory.mktemp("signed")
    gnupg = root / "signing-gnupg"
    gnupg.mkdir(mode=0o700)
    genv = dict(os.environ, GNUPGHOME=str(gnupg))
    fprs = {}
    for who in ("alice", "mallory"):
        _run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", f"{who} <{who}@example.invalid>",
              "ed25519", "sign", "never"], env=genv)
        out = _run(["gpg", "--with-colons", "--list-keys", f"{who}@example.invalid"], env=genv).stdout
        fprs[who] = next(ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr"))
    keys = root / "product" / "keys"
    keys.mkdir(parents=True)
    (keys / "alice.asc").write_bytes(subprocess.run(
        ["gpg", "--armor", "--export", fprs["alice"]], env=genv, check=True, capture_output=True).stdout)
    for who in ("bob", "eve"):
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{who}@example.invalid",
              "-f", str(root / who)])
    (keys / "bob.pub").write_text((root / "bob.pub").read_text())

    product = simple_product(root / "product", boards=("qemux86-64",))
    poky = root / "product" / "repos" / "poky"
    env = {**os.environ, **GIT_ENV, "GNUPGHOME": str(gnupg)}

    def commit(message: str, *sign: str) -> str:
        _run(["git", "-C", str(poky), *sign, "commit", "-q", "--allow-empty", "-m", message], env=env)
        return _run(["git", "-C", str(poky), "rev-parse", "HEAD"]).stdout.strip()

    gpg = lambda who: ["-c", f"user.signingkey={fprs[who]}", "-c", "commit.gpgsign=true"]  # noqa: E731
    ssh = lambda who: ["-c", "gpg.format=ssh", "-c", f"user.signingkey={root / who}",  # noqa: E731
                       "-c", "commit.gpgsign=true"]
    commits = {"unsigned": commit("unsigned"), "gpg-alice": commit("by alice", *gpg("alice")),
               "gpg-mallory": commit("by mallory", *gpg("mallory")),
               "ssh-bob": commit("by bob", *ssh("bob")), "ssh-eve": commit("by eve", *ssh("eve"))}
    _run(["git", "-C", str(poky), "-c", f"user.signingkey={fprs['alice']}", "tag", "-s", "-m", "r1",
          "v1", commits["unsigned"]], env=env)
    _run(["git", "-C", str(poky), "tag", "-a", "-m", "r2", "v2", commits["gpg-alice"]], env=env)
    data = yaml.safe_load(product.read_text())
    data["signers"] = {"alice": {"path": "../keys/alice.asc"},
                       "bob": {"type": "ssh", "path": "../keys/bob.pub"}}
    data["signed"] = True
    data["allowed_signers"] = ["alice", "bob"]
    write_yaml(product, data)
    return {"product": product, "commits": commits, "fprs": fprs, "root": root, "gnupg": gnupg}


def _pin(s, commit: str | None = None, tag: str | None = None, **extra) -> Path:
    data = yaml.safe_load(s["product"].read_text())
    ref = {"branch": "scarthgap"}
    if commit:
        ref["commit"] = commit
    if tag:
        ref = {"tag": tag, "commit": commit}
    data["repos"]["poky"]["refs"]["scarthgap"] = ref
    data["repos"]["poky"].update(extra)
    for k, v in list(extra.items()):
        if v is None:
            del data["repos"]["poky"][k]
    return write_yaml(s["product"], data)


def _validate(capsys, s, *args) -> tuple[int, list[str]]:
    code = main(["validate", str(s["product"]), "--offline", "--json", *args])
    out = capsys.readouterr().out
    import json

    findings = json.loads(out)["findings"]
    return code, [f for f in findings if f["code"] == "source-signature"]


@pytest.mark.parametrize("which", ["gpg-alice", "ssh-bob"])
def test_pins_signed_by_an_allowed_gpg_or_ssh_key_pass(signed, capsys, which):
    _pin(signed, signed["commits"][which])
    code, found = _validate(capsys, signed)
    assert found == [] and code == 0


@pytest.mark.parametrize("which, signer", [
    ("unsigned", None),
    ("gpg-mallory", "mallory"),
    ("ssh-eve", "SHA256:"),
])
def test_unsigned_or_not_allowed_pins_are_refused_naming_repo_commit_and_signer(signed, capsys, which, signer):
    sha = signed["commits"][which]
    _pin(signed, sha)
    code, found = _validate(capsys, signed)
    assert code == 1
    (f,) = found
    assert f["message"].startswith(f"repo poky: commit {sha} ")
    assert "\n" not in f["message"]
    if signer is None:
        assert "is not signed" in f["message"]
    else:
        assert "is signed by a key that is not allowed" in f["message"]
        assert (signed["fprs"]["mallory"] if signer == "mallory" else signer) in f["message"]
    assert f["file"].endswith("demo.yml") and f["line"]


def test_the_users_own_keyring_is_not_trusted(signed, capsys, monkeypatch):
    """mallory's key is in the GNUPGHOME the user has (it signed the commit): still refused."""
    monkeypatch.setenv("GNUPGHOME", str(signed["gnupg"]))
    _pin(signed, signed["commits"]["gpg-mallory"])
    code, (f,) = _validate(capsys, signed)
    assert code == 1 and "not allowed" in f["message"]


def test_a_repo_can_allow_one_signer_only(signed, capsys):
    _pin(signed, signed["commits"]["ssh-bob"], allowed_signers=["alice"])
    code, (f,) = _validate(capsys, signed)
    assert code == 1 and "not allowed" in f["message"] and "allowed signers: alice" in f["message"]
    _pin(signed, signed["commits"]["ssh-bob"], allowed_signers=None, signed=False)
    code, found = _validate(capsys, signed)
    assert code == 0 and found == []
    _pin(signed, signed["commits"]["unsigned"], signed=None)


def test_a_tag_pin_is_verified_on_the_tag(signed, capsys):
    # v1: signed by alice, on an unsigned commit: the tag's signature is what counts (as in kas)
    _pin(signed, signed["commits"]["unsigned"], tag="v1")
    code, found = _validate(capsys, signed)
    assert code == 0 and found == []
    # v2: an unsigned annotated tag on a signed commit
    _pin(signed, signed["commits"]["gpg-alice"], tag="v2")
    code, (f,) = _validate(capsys, signed)
    assert code == 1 and f["message"].startswith(
        f"repo poky: tag v2 (commit {signed['commits']['gpg-alice']}) is not signed")


def test_text_output_is_one_line_per_refused_pin(signed, capsys):
    sha = signed["commits"]["ssh-eve"]
    _pin(signed, sha)
    code = main(["validate", str(signed["product"]), "--offline"])
    out = capsys.readouterr().out
    assert code == 1
    (line,) = [ln for ln in out.splitlines() if "source-signature" in ln]
    assert f"repo poky: commit {sha}" in line and "SHA256:" in line


@pytest.mark.parametrize("change, message", [
    ({"allowed_signers": ["carol"]}, "unknown signer 'carol'"),
    ({"allowed_signers": None}, "signed needs allowed_signers"),
    ({"signers": {"alice": {"path": "../keys/missing.asc"}}}, "no key file"),
])
def test_bad_signing_settings_are_one_line_naming_the_field(signed, capsys, tmp_path, change, message):
    data = yaml.safe_load(signed["product"].read_text())
    for k, v in change.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    bad = write_yaml(signed["product"].with_name("bad.yml"), data)
    code = main(["validate", str(bad), "--offline"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "bad.yml:" in err and len(err.strip().splitlines()) == 1


def test_build_preflight_refuses_the_same_pin(signed, capsys):
    from buildctl.preflight.run import preflight_for_build

    sha = signed["commits"]["gpg-mallory"]
    _pin(signed, sha)
    found = [f for f in preflight_for_build(str(signed["product"]), boards=None, series=None,
                                            lock_path=None, repo_ref_dir=None)
             if f.code == "source-signature"]
    assert len(found) == 1 and f"commit {sha}" in found[0].message


def test_a_fingerprint_restricts_the_signer_to_that_key(signed, capsys):
    data = yaml.safe_load(signed["product"].read_text())
    data["signers"]["alice"]["fingerprint"] = signed["fprs"]["mallory"]
    bad = write_yaml(signed["product"].with_name("fpr.yml"), data)
    _pin(signed, signed["commits"]["gpg-alice"])
    _copy_repos(signed["product"], bad)
    code = main(["validate", str(bad), "--offline"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "signer alice: " in err and f"holds no key with fingerprint {signed['fprs']['mallory']}" in err
    data["signers"]["alice"]["fingerprint"] = signed["fprs"]["alice"]
    write_yaml(bad, data)
    _copy_repos(signed["product"], bad)
    assert main(["validate", str(bad), "--offline"]) == 0


def _copy_repos(src: Path, dst: Path) -> None:
    """dst gets src's repos section (the pin _pin just wrote)."""
    d = yaml.safe_load(dst.read_text())
    d["repos"] = yaml.safe_load(src.read_text())["repos"]
    write_yaml(dst, d)
