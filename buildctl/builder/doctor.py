"""What a host lacks for building: engine, disk space, cache filesystem, user namespaces."""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from buildctl.builder.caches import CacheSettings, preflight

MIN_FREE_GIB = 50  # a Yocto image build with its caches


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    severity: str = "error"  # error | warning

    def to_dict(self) -> dict:
        return asdict(self)


def check_engine(runtime: str) -> Check:
    if runtime == "host":
        return Check("engine", True, "host runtime: no container engine needed")
    if runtime == "podman":
        path = shutil.which("podman")
        return Check("engine", bool(path), path or "podman not installed (apt-get install podman)")
    try:
        import docker

        client = docker.from_env(timeout=5)
        v = client.version()
        return Check("engine", True, f"docker {v.get('Version')} ({os.environ.get('DOCKER_HOST') or 'default socket'})")
    except Exception as exc:
        hint = "dockerd not installed (apt-get install docker.io)" if not shutil.which("dockerd") \
            else "dockerd installed but not reachable: start it (dockerd --bridge=none --iptables=false)"
        return Check("engine", False, f"{hint} [{exc.__class__.__name__}]")


def check_image(runtime: str, image: str | None) -> Check:
    if runtime != "docker" or not image:
        return Check("image", True, "not checked", "warning")
    try:
        import docker

        docker.from_env(timeout=5).images.get(image)
        return Check("image", True, image)
    except Exception:
        return Check("image", False, f"{image} missing: run `buildctl container build`", "warning")


def check_userns() -> Check:
    """Unprivileged user namespaces: what rootless podman and BitBake's own sandboxing use."""
    problems = []
    clone = Path("/proc/sys/kernel/unprivileged_userns_clone")
    if clone.exists() and clone.read_text().strip() == "0":
        problems.append("kernel.unprivileged_userns_clone=0")
    maxns = Path("/proc/sys/user/max_user_namespaces")
    if maxns.exists() and maxns.read_text().strip() == "0":
        problems.append("user.max_user_namespaces=0")
    aa = Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if aa.exists() and aa.read_text().strip() == "1":
        problems.append("kernel.apparmor_restrict_unprivileged_userns=1")
    if problems:
        return Check("user-namespaces", False, "disabled: " + ", ".join(problems), "warning")
    return Check("user-namespaces", True, "available")


def check_cache(name: str, path: Path, min_free_gib: int = MIN_FREE_GIB) -> list[Check]:
    r = preflight(path, min_free=0)
    out = [Check(f"cache:{name}", r.ok, f"{path} ({r.fs_type or '?'})" if r.ok
                 else f"{path}: {'; '.join(r.problems)}")]
    if r.ok:
        free = r.free_bytes / (1 << 30)
        out.append(Check(f"disk:{name}", free >= min_free_gib,
                         f"{free:.0f} GiB free at {path} (a build wants {min_free_gib} GiB)",
                         "warning"))
        if r.fs_type in ("nfs", "nfs4", "cifs", "smb3", "fuse.sshfs"):
            out.append(Check(f"fs:{name}", True, f"{r.fs_type}: works, but locking and "
                             "speed suffer; prefer a local disk for SSTATE_DIR", "warning"))
    return out


def run_checks(caches: CacheSettings, runtime: str, image: str | None) -> list[Check]:
    checks = [check_engine(runtime), check_image(runtime, image)]
    for name, path in (("sstate", caches.sstate_dir), ("downloads", caches.dl_dir)):
        checks += check_cache(name, path)
    checks.append(check_userns())
    for tool in ("git", "kas") if runtime == "host" else ("git",):
        p = shutil.which(tool)
        checks.append(Check(f"tool:{tool}", bool(p), p or f"{tool} not on PATH"))
    if runtime == "docker" and not shutil.which("debootstrap"):
        checks.append(Check("tool:debootstrap", False, "needed by `buildctl container build` "
                            "without a registry (apt-get install debootstrap)", "warning"))
    return checks
