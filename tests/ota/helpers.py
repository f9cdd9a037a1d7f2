"""Fixture generators for the artifact tests: keys, payload files, hand-made artifacts."""
from __future__ import annotations

import gzip
import hashlib
import io
import re
import subprocess
import tarfile
from pathlib import Path

from tests.helpers import skips

VERSION = b'{"format":"mender","version":3}'


def mender_artifact() -> str:
    """Path of mender-artifact (skips locally without it, fails in CI: tests/helpers/skips)."""
    return skips.tool("mender-artifact", "apt-get install -y mender-artifact")


def require_tool(name: str, apt_package: str) -> str:
    """Path of a host tool (skips locally without it, fails in CI: tests/helpers/skips)."""
    return skips.tool(name, f"apt-get install -y {apt_package}")


def make_keys(d: Path) -> dict[str, Path]:
    """RSA 2048 (PKCS#1) and EC P-256 (SEC1) key pairs, plus PKCS#8 and ed25519 variants."""
    skips.tool("openssl")
    d.mkdir(parents=True, exist_ok=True)
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    k = {n: d / f"{n}.pem" for n in ("rsa", "rsa-pub", "ec", "ec-pub", "rsa-pkcs8", "ec-pkcs8",
                                     "ed", "ec384")}
    run("openssl", "genrsa", "-traditional", "-out", k["rsa"], "2048")
    run("openssl", "rsa", "-in", k["rsa"], "-pubout", "-out", k["rsa-pub"])
    run("openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", k["ec"])
    run("openssl", "ec", "-in", k["ec"], "-pubout", "-out", k["ec-pub"])
    run("openssl", "pkcs8", "-topk8", "-nocrypt", "-in", k["rsa"], "-out", k["rsa-pkcs8"])
    run("openssl", "pkcs8", "-topk8", "-nocrypt", "-in", k["ec"], "-out", k["ec-pkcs8"])
    run("openssl", "genpkey", "-algorithm", "ed25519", "-out", k["ed"])
    run("openssl", "ecparam", "-genkey", "-name", "secp384r1", "-noout", "-out", k["ec384"])
    return k


def mixed_bytes(size: int, seed: int = 1) -> bytes:
    """Half text-like (compressible), half pseudo-random: a stand-in for filesystem data."""
    out = bytearray()
    block = 0
    while len(out) < size:
        h = hashlib.sha256(f"{seed}-{block}".encode()).digest()
        if block % 2:
            out += hashlib.shake_256(h).digest(4096)
        else:
            out += (b"line %d of a config file with key=value " % block) * 80
        block += 1
    return bytes(out[:size])


def make_image(path: Path, size: int = 256 * 1024) -> Path:
    path.write_bytes(mixed_bytes(size))
    return path


def make_ext4(path: Path, tree: Path, size_mb: int = 4) -> Path:
    skips.tool("mkfs.ext4", "apt-get install -y e2fsprogs")
    (tree / "etc").mkdir(parents=True, exist_ok=True)
    (tree / "etc" / "hello.txt").write_text("hello from buildctl\n")
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(path)], check=True,
                   capture_output=True)
    return path


def make_scripts(d: Path) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name in ("ArtifactInstall_Enter_00_hello", "ArtifactCommit_Leave_10"):
        p = d / name
        p.write_text("#!/bin/sh\necho state\n")
        p.chmod(0o755)
        out.append(p)
    return out


# --- hand-made artifacts for hostile inputs -------------------------------------------------

def _tar(members: list[tuple[str, bytes]], *, kind: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for k, v in (kind or {}).get(name, {}).items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def build_raw(*, files: list[tuple[str, bytes]] | None = None, header_info: bytes | None = None,
              type_info: bytes | None = None, meta: bytes | None = b"",
              extra_header: list[tuple[str, bytes]] = (), data_tar: bytes | None = None,
              manifest_extra: str = "", order: list[str] | None = None,
              member_override: dict[str, bytes] | None = None, data_kind: dict | None = None,
              sig: bytes | None = None) -> bytes:
    """A gzip artifact built member by member, so tests can break any part of it."""
    files = files if files is not None else [("rootfs.ext4", b"x" * 1000)]
    header_info = header_info or (b'{"payloads":[{"type":"rootfs-image"}],"artifact_provides":'
                                  b'{"artifact_name":"r1"},"artifact_depends":{"device_type":["dev"]}}')
    type_info = type_info or b'{"type":"rootfs-image"}'
    hmembers = [("header-info", header_info), *extra_header, ("headers/0000/type-info", type_info)]
    if meta is not None:
        hmembers.append(("headers/0000/meta-data", meta))
    header = gzip.compress(_tar(hmembers), mtime=0)
    data = gzip.compress(data_tar if data_tar is not None else _tar(files, kind=data_kind), mtime=0)
    manifest = "".join(f"{hashlib.sha256(d).hexdigest()}  data/0000/{n}\n" for n, d in files)
    manifest += f"{hashlib.sha256(header).hexdigest()}  header.tar.gz\n"
    manifest += f"{hashlib.sha256(VERSION).hexdigest()}  version\n" + manifest_extra
    members = {"version": VERSION, "manifest": manifest.encode(), "header.tar.gz": header,
               "data/0000.tar.gz": data}
    if sig is not None:
        members["manifest.sig"] = sig
    members.update(member_override or {})
    names = order or [n for n in ("version", "manifest", "manifest.sig", "header.tar.gz",
                                  "data/0000.tar.gz") if n in members]
    return _tar([(n, members[n]) for n in names])


_READ_LINE = re.compile(r"^\s*([A-Za-z ()]+):\s?(.*)$")


def parse_mender_read(text: str) -> dict:
    """The fields of `mender-artifact read` output (3.9) that buildctl reports too."""
    out: dict = {"provides": {}, "depends": {}, "files": [], "scripts": []}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or re.fullmatch(r"\.+|0%.*100%|\|[-|]+\||Reading Artifact\.+", line):
            continue
        if raw.startswith("\t") and section in ("provides", "depends"):
            k, _, v = line.partition(": ")
            out[section][k] = v
            continue
        if section == "metadata" and raw.startswith("\t"):
            out["metadata"] += line
            continue
        if section == "scripts" and raw.startswith("    ") and ":" not in line:
            out["scripts"].append(line)
            continue
        m = _READ_LINE.match(raw)
        if not m:
            continue
        key, value = m.group(1).strip(), m.group(2).strip()
        section = None
        if key == "Name" and "name" not in out:
            out["name"] = value
        elif key == "Signature":
            out["signature"] = value
        elif key == "Compatible devices":
            out["device_types"] = value.strip("'[]").split()
        elif key == "Provides group":
            out["group"] = value
        elif key == "Depends on one of artifact(s)":
            out["depends_artifact_names"] = value.strip("[]").split()
        elif key == "Depends on one of group(s)":
            out["depends_groups"] = value.strip("[]").split()
        elif key == "State scripts":
            section = "scripts"
        elif key == "Type":
            out["type"] = value
        elif key in ("Provides", "Depends"):
            section = key.lower()
        elif key == "Clears Provides":
            out["clears"] = [c.strip().strip('"') for c in value.strip("[]").split(",") if c.strip()]
        elif key == "Metadata":
            out["metadata"] = value
            section = "metadata"
        elif key == "name":
            out["files"].append({"name": value})
        elif key == "size":
            out["files"][-1]["size"] = int(value)
        elif key == "checksum":
            out["files"][-1]["sha256"] = value
    return out
