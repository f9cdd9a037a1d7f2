"""Shared caches: one DL_DIR and one SSTATE_DIR per host, their hash-equivalence settings,
and the pre-flight check that proves a cache directory can hold sstate.

This module is the one source of truth for cache paths: they reach BitBake as environment
variables that kas forwards (and adds to ``BB_ENV_PASSTHROUGH_ADDITIONS``), never through a
local.conf fragment.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from buildctl.errors import UserError

DEFAULT_ROOT = "~/.cache/buildctl"  # per host; BUILDCTL_CACHE_DIR overrides it
MIN_FREE_BYTES = 1 << 30  # refuse a cache with less than 1 GiB free


@dataclass(frozen=True)
class CacheSettings:
    """Resolved cache settings for one build (absolute paths)."""

    sstate_dir: Path
    dl_dir: Path
    repo_ref_dir: Path  # kas's KAS_REPO_REF_DIR: git mirrors the checkouts borrow from
    sstate_mirrors: tuple[str, ...] = ()
    hashserve: str = "auto"  # auto | none | URL of a server to use directly
    hashserve_upstream: str | None = None
    hermetic: bool = False

    def mounts(self) -> list[Path]:
        return [self.dl_dir, self.sstate_dir, self.repo_ref_dir]

    def mirror_dirs(self) -> list[Path]:
        """Directories of file:// mirrors: mounted read-only into every container."""
        out = []
        for e in self.mirror_entries():
            url = e.split()[1].split(";", 1)[0]
            if url.startswith("file://"):
                path = url[len("file://"):]
                path = path[: -len("/PATH")] if path.endswith("/PATH") else path
                out.append(Path(path.split("PATH", 1)[0].rstrip("/") or "/"))
        return out

    def mirror_entries(self, network: bool = True) -> list[str]:
        entries = [_mirror_entry(m) for m in self.sstate_mirrors]
        if not network:  # only mirrors on the file system are reachable without a network
            entries = [e for e in entries if e.split()[1].startswith("file://")]
        return entries

    def bitbake_env(self, network: bool = True, shared_server: str | None = None) -> dict[str, str]:
        """Variables BitBake reads from the environment (forwarded by kas).

        Without network (the hermetic build phase) only file:// mirrors remain. With the
        build's shared hash server, the upstream is that server's business, not BitBake's;
        without it (fallback), BitBake's own "auto" server gets the upstream while there is
        network.
        """
        env = {"DL_DIR": str(self.dl_dir), "SSTATE_DIR": str(self.sstate_dir)}
        # always set: an empty value overrides the product's default in the kas file, so a
        # network mirror never reaches the hermetic phase
        env["SSTATE_MIRRORS"] = " ".join(self.mirror_entries(network))
        if self.hashserve == "auto" and shared_server:
            env["BB_HASHSERVE"] = shared_server  # the build's server (see hashserve.py)
        elif self.hashserve == "auto":
            env["BB_HASHSERVE"] = "auto"
            # the equivalence database lives with the sstate it describes
            env["BB_HASHSERVE_DB_DIR"] = str(self.sstate_dir)
            if self.hashserve_upstream and network:
                env["BB_HASHSERVE_UPSTREAM"] = self.hashserve_upstream
        elif self.hashserve == "none":
            env["BB_HASHSERVE"] = ""
        else:
            env["BB_HASHSERVE"] = self.hashserve
        return env

    def to_dict(self) -> dict:
        return {"sstate_dir": str(self.sstate_dir), "dl_dir": str(self.dl_dir),
                "repo_ref_dir": str(self.repo_ref_dir),
                "sstate_mirrors": list(self.sstate_mirrors), "hashserve": self.hashserve,
                "hashserve_upstream": self.hashserve_upstream, "hermetic": self.hermetic}


def _mirror_entry(mirror: str) -> str:
    """Accept either a full ``regex url`` pair or a bare URL (then mirror every object)."""
    mirror = mirror.strip()
    if " " in mirror:
        return mirror
    url = mirror if "PATH" in mirror else mirror.rstrip("/") + "/PATH"
    if "downloadfilename" not in url:
        url += ";downloadfilename=PATH"
    return f"file://.* {url}"


def settings_from_manifest(cache, base: Path | None = None,
                           root: Path | None = None) -> CacheSettings:
    """Build settings from a manifest's ``cache`` section (any object with its fields).
    ``root``: where caches default to (the command line passes BUILDCTL_CACHE_DIR)."""
    root = Path(os.path.expanduser(str(root or DEFAULT_ROOT)))
    base = base or Path.cwd()

    def path(value, default: Path) -> Path:
        if not value:
            return default
        p = Path(os.path.expanduser(str(value)))
        return (p if p.is_absolute() else base / p).resolve()

    sstate = path(getattr(cache, "sstate_dir", None), root / "sstate")
    dl = path(getattr(cache, "dl_dir", None), root / "downloads")
    ref = path(getattr(cache, "repo_ref_dir", None), dl.parent / "git-mirrors")
    hashserve = getattr(cache, "hashserve", None) or "auto"
    upstream = getattr(cache, "hashserve_upstream", None) or None
    mirrors = tuple(getattr(cache, "sstate_mirrors", None) or ())
    settings = CacheSettings(sstate_dir=sstate, dl_dir=dl, repo_ref_dir=ref,
                             sstate_mirrors=mirrors, hashserve=str(hashserve),
                             hashserve_upstream=upstream,
                             hermetic=bool(getattr(cache, "hermetic", False)))
    check_hashserve_pairing(settings)
    return settings


def check_hashserve_pairing(s: CacheSettings) -> None:
    """Never pair a fresh local hash server with a mirror filled under another one.

    Objects on an sstate mirror are named by the unified hashes of the server that was used
    when they were made; a private local database knows none of them, so the mirror would
    (silently) almost never match. With mirrors, the local server must pass through to the
    mirror's server (``hashserve_upstream``), or use that server directly, or use none.
    """
    if s.sstate_mirrors and s.hashserve == "auto" and not s.hashserve_upstream:
        raise UserError(
            "cache.sstate_mirrors: a mirror needs the hash-equivalence server it was filled "
            "under: set cache.hashserve_upstream (or cache.hashserve to that server's URL, "
            "or 'none' if the mirror was filled without one)")
    if s.hermetic and s.hashserve not in ("auto", "none") and \
            not s.hashserve.startswith("unix:"):
        raise UserError(f"cache.hashserve: {s.hashserve} is out of reach in a hermetic build "
                        "(no network); use 'auto' with cache.hashserve_upstream set to it")
    if s.hashserve not in ("auto", "none") and "://" not in s.hashserve and \
            not s.hashserve.startswith("unix:") and ":" not in s.hashserve:
        raise UserError(f"cache.hashserve: {s.hashserve!r} is not auto, none or a server address")


@dataclass
class PreflightResult:
    path: Path
    ok: bool
    problems: list[str] = field(default_factory=list)
    free_bytes: int = 0
    fs_type: str = ""


def preflight(path: Path, owner: tuple[int, int] | None = None,
              min_free: int = MIN_FREE_BYTES) -> PreflightResult:
    """Create ``path`` if needed, then write, rename and lock a file in it, as sstate does."""
    res = PreflightResult(path=path, ok=True)
    try:
        missing = [p for p in [path, *path.parents] if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
        if owner and os.geteuid() == 0:
            for p in missing:  # whatever buildctl creates belongs to the build's owner
                os.chown(p, *owner)
    except OSError as exc:
        res.ok = False
        res.problems.append(f"cannot create: {exc.strerror}")
        return res
    probe = path / f".buildctl-probe-{uuid.uuid4().hex}"
    final = probe.with_suffix(".done")
    try:
        with open(probe, "w") as fh:
            fh.write("sstate probe\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(probe, final)
        with open(final, "r+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fcntl.lockf(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # POSIX locks (sqlite)
            fcntl.lockf(fh.fileno(), fcntl.LOCK_UN)
    except OSError as exc:
        res.ok = False
        res.problems.append(f"write/rename/lock test failed: {exc.strerror or exc}")
    finally:
        for p in (probe, final):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
    if owner and os.geteuid() == 0:
        st = path.stat()
        if st.st_uid == 0 != owner[0] and not any(path.iterdir()):
            os.chown(path, *owner)  # an empty root-owned cache (e.g. made by doctor): adopt it
            st = path.stat()
        if st.st_uid != owner[0] and not (st.st_mode & 0o002):
            res.ok = False
            res.problems.append(f"owned by uid {st.st_uid}, the build runs as uid {owner[0]}")
    usage = shutil.disk_usage(path)
    res.free_bytes = usage.free
    if usage.free < min_free:
        res.ok = False
        res.problems.append(f"only {usage.free >> 20} MiB free")
    res.fs_type = filesystem_type(path)
    return res


def filesystem_type(path: Path) -> str:
    """The mount's filesystem type from /proc/mounts (longest matching mount point)."""
    try:
        target = str(path.resolve())
        best, fstype = "", ""
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            mnt = parts[1].replace("\\040", " ")
            if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, fstype = mnt, parts[2]
        return fstype
    except OSError:
        return ""


def preflight_all(settings: CacheSettings, owner: tuple[int, int] | None = None) -> None:
    """Refuse to build on a cache that cannot hold sstate (one line per problem)."""
    bad = []
    for p in settings.mounts():
        r = preflight(p, owner)
        if not r.ok:
            bad.append(f"{p}: {'; '.join(r.problems)}")
    if bad:
        raise UserError("cache pre-flight failed: " + " | ".join(bad))
