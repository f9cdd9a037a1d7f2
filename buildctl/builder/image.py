"""The builder image: tagged by a hash of its inputs, built without any registry when needed.

Registry-less path (this machine, air-gapped sites): ``debootstrap --variant=minbase`` from the
Debian mirror named in the host's apt sources, ``docker import`` of that tree as the base, then
``buildctl/data/containers/Dockerfile`` on top of it (the same file registry users build from).
"""
from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from buildctl.errors import UserError
from buildctl.resources import containers_dir

CONTAINERS_DIR = containers_dir()  # package data: found from a checkout and from a wheel
SUITE = "bookworm"
KAS_VERSION = "5.5"
IMAGE_REPO = "buildctl-builder"
BASE_REPO = "buildctl-base"
PROFILES = ("scarthgap", "minimal")
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
SITE_CA_DIR = Path("/usr/local/share/ca-certificates")


@dataclass(frozen=True)
class ImageSpec:
    profile: str = "scarthgap"
    suite: str = SUITE
    kas_version: str = KAS_VERSION
    containers_dir: Path = CONTAINERS_DIR
    site_ca_dir: Path | None = SITE_CA_DIR

    def context_files(self) -> list[Path]:
        d = self.containers_dir
        return [d / "Dockerfile", d / "buildctl-entry", d / "packages" / f"{self.profile}.txt"]

    def ca_files(self) -> list[Path]:
        """Public CA certificates the host trusts beyond the distribution's (sorted)."""
        if not self.site_ca_dir or not self.site_ca_dir.is_dir():
            return []
        return sorted(p for p in self.site_ca_dir.rglob("*.crt") if p.is_file())

    def base_tag(self) -> str:
        h = hashlib.sha256(f"debootstrap minbase {self.suite}".encode()).hexdigest()[:12]
        return f"{BASE_REPO}:{self.suite}-{h}"

    def inputs_hash(self) -> str:
        """What decides the image's content; changes to any of it make a new tag."""
        h = hashlib.sha256()
        h.update(f"suite={self.suite}\nprofile={self.profile}\nkas={self.kas_version}\n".encode())
        for f in self.context_files():
            if not f.is_file():
                raise UserError(f"{f}: missing (builder image input)")
            h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
        for f in self.ca_files():
            h.update(b"ca/" + f.name.encode() + b"\0" + f.read_bytes() + b"\0")
        return h.hexdigest()

    def tag(self) -> str:
        return f"{IMAGE_REPO}:{self.profile}-{self.inputs_hash()[:12]}"


@dataclass
class ImageBuild:
    tag: str
    image_id: str
    built: bool  # False: the tag already existed
    seconds: dict[str, float] = field(default_factory=dict)


def debian_mirror(sources: tuple[Path, ...] = APT_SOURCES, suite: str = SUITE) -> str:
    """The first Debian archive URI apt on this host uses for ``suite`` (not -security)."""
    files: list[Path] = []
    for s in sources:
        if s.is_dir():
            files += sorted(p for p in s.iterdir() if p.suffix in (".list", ".sources"))
        elif s.is_file():
            files.append(s)
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = _deb822(stanza)
                if "deb" in fields.get("types", "").split() and \
                        suite in fields.get("suites", "").split():
                    uris = fields.get("uris", "").split()
                    if uris:
                        return uris[0]
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == suite:
                    return parts[1]
    raise UserError(f"no Debian mirror for {suite} in apt's sources "
                    f"({', '.join(map(str, sources))}); pass --mirror URL")


def _deb822(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0].isspace() and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def _exists(client, tag: str):
    import docker.errors
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def build_base(client, spec: ImageSpec, mirror: str, log) -> None:
    """debootstrap a minimal Debian and import it as the base image."""
    if not shutil.which("debootstrap"):
        raise UserError("debootstrap: not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="buildctl-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        log(f"debootstrap {spec.suite} from {mirror}")
        proc = subprocess.run(["debootstrap", "--variant=minbase", spec.suite, str(root), mirror],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["?"]
            raise UserError(f"debootstrap failed: {tail[0]}")
        # apt inside the image uses the same mirror; keep no host-specific caches
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        tar_path = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tar_path), "."],
                       check=True)
        repo, tag = spec.base_tag().split(":")
        log(f"docker import {spec.base_tag()}")
        client.api.import_image(src=str(tar_path), repository=repo, tag=tag)


def ensure_image(client, spec: ImageSpec, mirror: str | None = None, log=print,
                 force: bool = False) -> ImageBuild:
    tag = spec.tag()
    existing = _exists(client, tag)
    if existing is not None and not force:
        return ImageBuild(tag=tag, image_id=existing.id, built=False)
    seconds: dict[str, float] = {}
    if _exists(client, spec.base_tag()) is None:
        t0 = time.monotonic()
        build_base(client, spec, mirror or debian_mirror(suite=spec.suite), log)
        seconds["base"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    log(f"docker build {tag}")
    context = _context_tar(spec)
    try:
        image, _ = client.images.build(
            fileobj=context, custom_context=True, tag=tag, network_mode="host", rm=True,
            forcerm=True, buildargs={"BASE": spec.base_tag(), "PROFILE": spec.profile,
                                     "KAS_VERSION": spec.kas_version},
            labels={"org.buildctl.inputs": spec.inputs_hash(), "org.buildctl.profile": spec.profile})
    except Exception as exc:
        msg = getattr(exc, "msg", None) or str(exc)
        raise UserError(f"docker build {tag} failed: {str(msg).strip().splitlines()[-1]}") from None
    seconds["image"] = round(time.monotonic() - t0, 1)
    return ImageBuild(tag=tag, image_id=image.id, built=True, seconds=seconds)


def _context_tar(spec: ImageSpec) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in spec.context_files():
            arc = str(f.relative_to(spec.containers_dir))
            info = tar.gettarinfo(str(f), arcname=arc)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(f, "rb") as fh:
                tar.addfile(info, fh)
        ca_dir = tarfile.TarInfo("ca")
        ca_dir.type, ca_dir.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(ca_dir)
        for f in spec.ca_files():
            info = tar.gettarinfo(str(f), arcname=f"ca/{f.name}")
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(f, "rb") as fh:
                tar.addfile(info, fh)
    buf.seek(0)
    return buf
