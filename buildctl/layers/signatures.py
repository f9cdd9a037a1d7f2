"""Whether a pinned commit (or tag) is signed by one of the signers a product allows.

git itself verifies (``git verify-commit`` / ``git verify-tag`` with ``--raw``), against trust
material built here from the product's signer files only: a temporary GNUPGHOME holding the
allowed GPG public keys, and a temporary ``gpg.ssh.allowedSignersFile`` holding the allowed SSH
keys. The user's own keyring, git configuration and allowed-signers file are never consulted, so
a key the user happens to trust is not an allowed signer.

A signer file is an armored (or binary) GPG public key export, or for SSH either a public key
(``ssh-ed25519 AAAA... comment``, taken as principal ``<signer name>``) or lines of an
allowed_signers file (``principal [options] keytype key``). A signer may also name the one
``fingerprint`` it accepts (GPG: the 40 hex digits of the primary key; SSH: ``SHA256:...``).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from buildctl.errors import UserError
from buildctl.layers.gitfs import GitError, git
from buildctl.manifest.model import Signer

__all__ = ["Verdict", "SignatureVerifier"]

_SSH_KEYTYPE = re.compile(r"^(ssh-|ecdsa-|sk-ssh-|sk-ecdsa-)")
_SSH_GOOD = re.compile(r'^Good "git" signature for (\S+) with (\S+) key (SHA256:\S+)', re.M)
_SSH_KEY = re.compile(r"with (\S+) key (SHA256:[A-Za-z0-9+/=]+)")
_TIMEOUT_S = 60


@dataclass(frozen=True)
class Verdict:
    ok: bool
    what: str  # "commit <sha>" or "tag <name> (commit <sha>)"
    signer: str = ""  # who signed, as git reports it (key fingerprint, user id or principal)
    reason: str = ""  # why it is refused (empty when ok)


class SignatureVerifier:
    """Trust material for each set of allowed signers, built once and removed by close()."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self._material: dict[tuple[str, ...], tuple[Path, Path, frozenset[str], frozenset[str]]] = {}

    def __enter__(self) -> "SignatureVerifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        self._material.clear()

    # -- trust material -----------------------------------------------------------------------
    def _dir(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="buildctl-signers-"))
        return self._root

    def _prepare(self, signers: tuple[Signer, ...]):
        key = tuple(sorted(s.name for s in signers))
        if key in self._material:
            return self._material[key]
        d = Path(tempfile.mkdtemp(dir=self._dir()))
        gnupg = d / "gnupg"
        gnupg.mkdir(mode=0o700)
        allowed_file = d / "allowed_signers"
        gpg_fprs: set[str] = set()
        ssh_fprs: set[str] = set()
        lines: list[str] = []
        for s in signers:
            data = _read(s)
            if s.type == "gpg":
                fprs = _gpg_import(gnupg, s, data)
                if s.fingerprint:
                    if s.fingerprint.upper() not in fprs:
                        raise SignerError(f"signer {s.name}: {s.path} holds no key with fingerprint "
                                          f"{s.fingerprint}")
                    fprs = {s.fingerprint.upper()}
                gpg_fprs |= fprs
            else:
                got = _ssh_lines(s, data)
                lines += got
                if s.fingerprint:
                    ssh_fprs.add(s.fingerprint)
                else:
                    ssh_fprs.add("*")
        allowed_file.write_text("".join(ln + "\n" for ln in lines))
        out = (gnupg, allowed_file, frozenset(gpg_fprs), frozenset(ssh_fprs))
        self._material[key] = out
        return out

    # -- verification -------------------------------------------------------------------------
    def verify(self, git_dir: str | os.PathLike[str], commit: str, signers: tuple[Signer, ...],
               tag: str | None = None) -> Verdict:
        """Verify the tag (when the pin is a tag: the tag object carries the signature, as kas
        checks it) or else the commit."""
        gnupg, allowed, gpg_fprs, ssh_fprs = self._prepare(signers)
        if tag:
            what = f"tag {tag} (commit {commit})"
            kind = git(git_dir, "cat-file", "-t", f"refs/tags/{tag}", check=False).stdout.strip()
            if kind != "tag":
                return Verdict(False, what, reason="is a lightweight tag (no signature can be on it)")
            target = git(git_dir, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}",
                         check=False).stdout.strip()
            if target != commit:
                return Verdict(False, what, reason=f"the tag points to {target or 'nothing'}, not to "
                                                   "the pinned commit")
            raw = git(git_dir, "cat-file", "tag", f"refs/tags/{tag}", check=False).stdout
            signed = "-----BEGIN " in raw
            args = ["verify-tag", "--raw", f"refs/tags/{tag}"]
        else:
            what = f"commit {commit}"
            raw = git(git_dir, "cat-file", "commit", commit, check=False).stdout
            signed = any(ln.startswith("gpgsig") for ln in raw.split("\n\n", 1)[0].splitlines())
            args = ["verify-commit", "--raw", commit]
        if not signed:
            return Verdict(False, what, reason="is not signed")
        env = {"GNUPGHOME": str(gnupg), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        try:
            proc = git(git_dir, "-c", f"gpg.ssh.allowedSignersFile={allowed}", "-c", "gpg.program=gpg",
                       "-c", "gpg.ssh.program=ssh-keygen", "-c", "gpg.minTrustLevel=undefined",
                       *args, check=False, timeout=_TIMEOUT_S, env=env)
        except GitError as exc:
            return Verdict(False, what, reason=f"cannot be verified ({exc.reason})")
        out = proc.stdout + proc.stderr
        return _judge(what, proc.returncode, out, gpg_fprs, ssh_fprs)


class SignerError(UserError):
    """A signer's key file that cannot be used (names the signer and the file)."""


def _read(s: Signer) -> bytes:
    try:
        return Path(s.path).read_bytes()
    except OSError as exc:
        raise SignerError(f"signer {s.name}: cannot read {s.path}: {exc.strerror}") from None


def _gpg_import(gnupg: Path, s: Signer, data: bytes) -> set[str]:
    env = dict(os.environ, GNUPGHOME=str(gnupg))
    try:
        proc = subprocess.run(["gpg", "--batch", "--no-tty", "--status-fd", "1", "--import"],
                              input=data, capture_output=True, env=env, timeout=_TIMEOUT_S)
    except FileNotFoundError:
        raise SignerError(f"signer {s.name}: gpg is not installed (apt-get install gnupg)") from None
    fprs = set(re.findall(r"^\[GNUPG:\] IMPORT_OK \d+ ([0-9A-F]{40})$", proc.stdout.decode(errors="replace"), re.M))
    if not fprs:
        raise SignerError(f"signer {s.name}: {s.path} holds no GPG public key")
    return fprs


def _ssh_lines(s: Signer, data: bytes) -> list[str]:
    out = []
    for ln in data.decode(errors="replace").splitlines():
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        if _SSH_KEYTYPE.match(ln):
            parts = ln.split()
            out.append(f'{s.name} namespaces="git" {parts[0]} {parts[1] if len(parts) > 1 else ""}'.rstrip())
        else:
            out.append(ln)
    if not out:
        raise SignerError(f"signer {s.name}: {s.path} holds no SSH public key")
    return out


def _judge(what: str, code: int, out: str, gpg_fprs: frozenset[str],
           ssh_fprs: frozenset[str]) -> Verdict:
    if "[GNUPG:]" in out:
        status = {}
        for ln in out.splitlines():
            if ln.startswith("[GNUPG:] "):
                parts = ln[9:].split()
                status.setdefault(parts[0], parts[1:])
        if "VALIDSIG" in status:
            fields = status["VALIDSIG"]
            primary = fields[-1] if len(fields) >= 10 else fields[0]
            uid = " ".join(status.get("GOODSIG", ["", ""])[1:])
            signer = f"GPG key {primary}" + (f" ({uid})" if uid else "")
            if code == 0 and primary.upper() in gpg_fprs:
                return Verdict(True, what, signer=signer)
            if primary.upper() not in gpg_fprs:
                return Verdict(False, what, signer=signer, reason="is signed by a key that is not allowed")
            return Verdict(False, what, signer=signer, reason="has a signature git does not accept "
                                                              f"({_gpg_problem(status)})")
        if "ERRSIG" in status or "NO_PUBKEY" in status:
            fields = status.get("ERRSIG") or status.get("NO_PUBKEY")
            fpr = fields[-1] if "ERRSIG" in status and len(fields) >= 7 and len(fields[-1]) == 40 else fields[0]
            return Verdict(False, what, signer=f"GPG key {fpr}", reason="is signed by a key that is not allowed")
        if "BADSIG" in status:
            return Verdict(False, what, signer=f"GPG key {status['BADSIG'][0]}",
                           reason="has a bad signature (the signed content was changed)")
        return Verdict(False, what, reason=f"has a GPG signature git does not accept ({_gpg_problem(status)})")
    good = _SSH_GOOD.search(out)
    key = _SSH_KEY.search(out)
    if good and code == 0:
        principal, ktype, fpr = good.groups()
        signer = f"SSH {ktype} key {fpr} ({principal})"
        if "*" in ssh_fprs or fpr in ssh_fprs:
            return Verdict(True, what, signer=signer)
        return Verdict(False, what, signer=signer, reason="is signed by a key that is not allowed")
    if key:
        signer = f"SSH {key.group(1)} key {key.group(2)}"
        if "No principal matched" in out or "not allowed" in out.lower():
            return Verdict(False, what, signer=signer, reason="is signed by a key that is not allowed")
        return Verdict(False, what, signer=signer, reason="has a signature git does not accept")
    first = next((ln.strip() for ln in out.splitlines() if ln.strip()), "")
    return Verdict(False, what, reason="has a signature git does not accept"
                   + (f" ({first[:120]})" if first else ""))


def _gpg_problem(status: dict) -> str:
    for word in ("EXPKEYSIG", "REVKEYSIG", "EXPSIG", "BADSIG"):
        if word in status:
            return word.lower()
    return "no valid signature"
