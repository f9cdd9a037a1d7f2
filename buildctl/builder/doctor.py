"""What this host lacks for the README's build, found without changing anything.

Read-only by design: no directory is created, no probe file written, no image pulled, no
clone made. Each check says what was found and, when something is missing, what a user runs
to fix it (apt packages, the docker group, a key to generate, a variable to export).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from buildctl.builder.caches import CacheSettings, filesystem_type

MIN_FREE_GIB = 50  # a Yocto image build with its caches
NET_TIMEOUT_S = 10
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "fuse.sshfs")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    severity: str = "error"  # error | warning
    advice: str = ""  # what to run or change, for a person

    def to_dict(self) -> dict:
        return asdict(self)


# -- engine --------------------------------------------------------------------------------
def check_engine(runtime: str, docker_host: str | None = None) -> Check:
    if runtime == "host":
        return Check("engine", True, "host runtime: no container engine needed")
    if runtime == "podman":
        path = shutil.which("podman")
        return Check("engine", bool(path), path or "podman is not installed",
                     advice="" if path else "sudo apt-get install podman")
    try:
        import docker

        client = docker.from_env(timeout=5)
        v = client.version()
        return Check("engine", True, f"docker {v.get('Version')} ({docker_host or 'default socket'})")
    except Exception as exc:  # noqa: BLE001 - any failure to talk to the engine is this finding
        if not shutil.which("dockerd"):
            return Check("engine", False, "Docker is not installed",
                         advice="sudo apt-get install docker.io, then: sudo usermod -aG docker "
                                "$USER and log in again")
        sock = Path("/var/run/docker.sock")
        if sock.exists() and not os.access(sock, os.R_OK | os.W_OK):
            return Check("engine", False, f"no permission on {sock}",
                         advice="sudo usermod -aG docker $USER, then log in again "
                                "(or run buildctl as root)")
        return Check("engine", False, f"Docker is installed but dockerd is not running "
                     f"[{exc.__class__.__name__}]", advice="sudo systemctl start docker")


def check_image(runtime: str, image: str | None) -> Check:
    if runtime != "docker" or not image:
        return Check("image", True, "not checked", "warning")
    try:
        import docker

        docker.from_env(timeout=5).images.get(image)
        return Check("image", True, image)
    except Exception:  # noqa: BLE001
        return Check("image", False, f"{image} is not built yet", "warning",
                     advice="buildctl container build (a few minutes, once)")


# -- disk and caches (read only: the nearest existing directory is inspected) ---------------
def _existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_cache(name: str, path: Path, min_free_gib: int = MIN_FREE_GIB) -> list[Check]:
    base = _existing(path)
    if not base.is_dir():
        return [Check(f"cache:{name}", False, f"{path}: {base} is not a directory",
                      advice=f"point cache.{name}_dir of the product elsewhere")]
    if not os.access(base, os.W_OK | os.X_OK):
        return [Check(f"cache:{name}", False, f"{path}: {base} is not writable by this user",
                      advice=f"sudo mkdir -p {path} && sudo chown $USER {path}")]
    state = "exists" if base == path else f"will be created under {base}"
    fs = filesystem_type(base)
    out = [Check(f"cache:{name}", True, f"{path} ({state}, {fs or '?'})")]
    free = shutil.disk_usage(base).free / (1 << 30)
    out.append(Check(f"disk:{name}", free >= min_free_gib,
                     f"{free:.0f} GiB free at {base} (a build wants {min_free_gib} GiB)", "warning",
                     advice="" if free >= min_free_gib else
                     "free disk space, or set BUILDCTL_CACHE_DIR to a larger disk"))
    if fs in NETWORK_FS:
        out.append(Check(f"fs:{name}", True, f"{fs}: works, but locking and speed suffer",
                         "warning", advice="prefer a local disk for the sstate cache"))
    return out


def check_userns() -> Check:
    """Unprivileged user namespaces: what rootless podman and BitBake's own sandboxing use."""
    problems = []
    for path, bad, name in (
            ("/proc/sys/kernel/unprivileged_userns_clone", "0", "kernel.unprivileged_userns_clone"),
            ("/proc/sys/user/max_user_namespaces", "0", "user.max_user_namespaces"),
            ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
             "kernel.apparmor_restrict_unprivileged_userns")):
        p = Path(path)
        try:
            if p.exists() and p.read_text().strip() == bad:
                problems.append(f"{name}={bad}")
        except OSError:
            continue
    if problems:
        return Check("user-namespaces", False, "disabled: " + ", ".join(problems), "warning",
                     advice="BitBake needs them for its network isolation: sudo sysctl -w "
                            + " ".join(f"{p.split('=')[0]}={1 - int(p.split('=')[1])}"
                                       for p in problems))
    return Check("user-namespaces", True, "available")


def check_tools(runtime: str) -> list[Check]:
    out = []
    for tool, pkg in (("git", "git"), ("kas", None) if runtime == "host" else (None, None)):
        if tool is None:
            continue
        p = shutil.which(tool)
        out.append(Check(f"tool:{tool}", bool(p), p or f"{tool} is not on PATH",
                         advice="" if p else (f"sudo apt-get install {pkg}" if pkg
                                              else "pip install kas (in buildctl's venv)")))
    if runtime == "docker" and not shutil.which("debootstrap"):
        out.append(Check("tool:debootstrap", False, "needed by `buildctl container build` "
                         "without a registry", "warning", advice="sudo apt-get install debootstrap"))
    return out


# -- network -------------------------------------------------------------------------------
def _reach_git(url: str, auth=None) -> tuple[bool, str]:
    """git ls-remote with the credentials at hand (the product's private repositories: the SSH
    agent, known_hosts with strict host key checking, HTTPS tokens); a failure is git's most
    telling line."""
    from buildctl.errors import UserError
    from buildctl.layers.gitauth import explain_failure

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0",
           "GIT_ASKPASS": "true", "HOME": os.environ.get("HOME", "/")}
    # the caller's TLS trust for git servers with a site CA (as the cache's clones use it)
    env.update({k: os.environ[k] for k in ("GIT_SSL_CAINFO", "SSL_CERT_FILE", "SSL_CERT_DIR")
                if k in os.environ})
    args: list[str] = []
    if auth is not None:
        try:
            args, extra = auth.host_git(url)
        except UserError as exc:  # a token that cannot be read (never its value)
            return False, str(exc)
        env.update(extra)
    try:
        r = subprocess.run(["git", *args, "ls-remote", "--exit-code", url, "HEAD"], check=False,
                           capture_output=True,
                           text=True, timeout=NET_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"no answer within {NET_TIMEOUT_S} s"
    except OSError as exc:
        return False, exc.strerror or str(exc)
    if r.returncode in (0, 2):  # 2: reachable, no HEAD
        return True, "reachable"
    return False, explain_failure(r.stderr, auth, url)[:200] or f"git ls-remote exited {r.returncode}"


def _reach_http(url: str) -> tuple[bool, str]:
    req = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=NET_TIMEOUT_S) as resp:
            return True, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, str(reason)[:200]


def check_network(repo_urls: dict[str, str], mirror: str | None,
                  suite: str, auth=None) -> list[Check]:
    """Every remote repository the product fetches, and the Debian mirror of the builder image,
    asked in parallel (git ls-remote; an HTTP HEAD of the suite's Release file). auth: how the
    product's private repositories are reached (buildctl.layers.gitauth.GitAuth)."""
    jobs: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for name, url in sorted(repo_urls.items()):
            jobs[f"repo:{name}"] = (url, pool.submit(_reach_git, url, auth))
        if mirror:
            release = f"{mirror.rstrip('/')}/dists/{suite}/Release"
            jobs["debian-mirror"] = (mirror, pool.submit(_reach_http, release))
        out = []
        for name, (url, fut) in jobs.items():
            ok, how = fut.result()
            advice = "" if ok else (_repo_advice(url, auth)
                                    if name.startswith("repo:") else
                                    "check the network or apt's sources; air-gapped: "
                                    "buildctl container build --mirror URL")
            out.append(Check(name, ok, f"{url}: {how}", advice=advice))
    return out


def _repo_advice(url: str, auth) -> str:
    from buildctl.layers.gitauth import is_ssh_url

    if is_ssh_url(url):
        return ("load the key into your SSH agent (ssh-add) and check the host's key is in the "
                "known_hosts file (fetch.known_hosts or ~/.ssh/known_hosts)")
    if auth is not None and auth.token_for(url) is not None:
        return "check the token the repository's credentials reference names"
    return ("check the network, a proxy (https_proxy) or the URL; "
            "air-gapped: give --repo-ref-dir with mirrors")


# -- the product's secrets -----------------------------------------------------------------
def secret_refs(data: Any, keypath: tuple = ()) -> Iterator[tuple[str, str]]:
    """(field, reference) for every ``env:``/``file:`` value in a manifest's data."""
    from buildctl.manifest.yamlsrc import dotted
    from buildctl.secrets import SecretRef

    if isinstance(data, dict):
        for k, v in data.items():
            yield from secret_refs(v, keypath + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from secret_refs(v, keypath + (i,))
    elif isinstance(data, str) and (SecretRef.is_ref(data) or data.startswith("pkcs11:")):
        yield dotted(keypath), data


def check_secrets(refs: list[tuple[str, str]], base: Path, environ: dict[str, str],
                  signing_field: str = "mender.signing_key",
                  pkcs11_module: str | None = None) -> list[Check]:
    """Each secret the product names is there (values are never read into the output); the
    signing key must also load as a private key."""
    from buildctl.secrets import SecretRef

    out = []
    for fld, text in refs:
        if text.startswith("pkcs11:"):  # a key in a token: it must open and sign
            out.append(_check_token_key(fld, text, pkcs11_module))
            continue
        ref = SecretRef.parse(text)
        if ref.kind == "env":
            ok = bool(environ.get(ref.target))
            out.append(Check(f"secret:{fld}", ok, f"{text}: {'set' if ok else 'not set'}",
                             "error" if fld == signing_field else "warning",
                             advice="" if ok else f"export {ref.target}=... before building"))
            continue
        path = Path(ref.target).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file() or not os.access(path, os.R_OK):
            advice = ("openssl ecparam -genkey -name prime256v1 -noout -out " + str(path)
                      if fld == signing_field else f"create {path}")
            out.append(Check(f"secret:{fld}", False, f"{text}: {path} is missing or unreadable",
                             "error" if fld == signing_field else "warning", advice=advice))
            continue
        detail = f"{text}: readable"
        if fld == signing_field:
            from buildctl.errors import UserError
            from buildctl.ota.mender import load_private_key

            try:
                key = load_private_key(f"file:{path}", fld)
                detail = f"{text}: {key.algorithm} private key"
            except UserError as exc:
                out.append(Check(f"secret:{fld}", False, f"{text}: not a usable private key "
                                 f"({str(exc)[:120]})", advice="an unencrypted PEM RSA or "
                                 "ECDSA P-256 key: see keys/README.md"))
                continue
        out.append(Check(f"secret:{fld}", True, detail))
    return out


def _check_token_key(fld: str, text: str, module: str | None) -> Check:
    from buildctl.errors import UserError
    from buildctl.ota.mender import load_private_key
    from buildctl.ota.mender.pkcs11 import parse_uri

    try:
        shown = parse_uri(text, fld).label
        key = load_private_key(text, fld, pkcs11_module=module)
        key.sign(b"buildctl doctor")
    except UserError as exc:
        return Check(f"secret:{fld}", False, str(exc)[:200], advice="check the token, the PIN "
                     "source and the PKCS#11 module (module-path= or BUILDCTL_PKCS11_MODULE)")
    return Check(f"secret:{fld}", True, f"{shown}: {key.algorithm} key in a PKCS#11 token, signs")


def run_checks(caches: CacheSettings, runtime: str, image: str | None, *,
               docker_host: str | None = None) -> list[Check]:
    """The host checks every build needs (no product)."""
    checks = [check_engine(runtime, docker_host), check_image(runtime, image)]
    for name, path in (("sstate", caches.sstate_dir), ("downloads", caches.dl_dir)):
        checks += check_cache(name, path)
    checks.append(check_userns())
    checks += check_tools(runtime)
    return checks
