"""The app-update fixtures: a product whose `packages:` hold hello-buildctl, and package feeds
in OE's layout (DEPLOY_DIR/{deb,ipk}/<arch>/) holding a tiny real package standing for it: a
.deb made by dpkg-deb, an .ipk in opkg's ar layout."""
from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import yaml

from tests.helpers.products import write_yaml
from tests.release.helpers import release_product

BIN = "usr/bin/hello-buildctl"
IMAGE = "demo-1.0-qemux86-64-release"  # the fixture product's artifact name for the board


def app_product(root: Path, **extra) -> Path:
    """release_product (signed, require_signed) with packages: [hello-buildctl]."""
    prod = release_product(root, cyclonedx=False)
    data = yaml.safe_load(prod.read_text())
    data["packages"] = ["hello-buildctl"]
    data["release"]["artifact_name"] = "{product}-{version}-{board}-{variant}"
    data.update(extra)
    return write_yaml(prod, data)


def feed_dir(root: Path) -> Path:
    """Where `buildctl build` leaves OE's DEPLOY_DIR for the board."""
    return root / "out" / "demo" / "qemux86-64-release" / "work" / "build" / "tmp" / "deploy"


def _tree(root: Path, name: str, version: str, postinst_rc: int) -> dict[str, tuple[bytes, int]]:
    """path -> (content, mode) of the package: the program, its control file and postinst."""
    prog = f"#!/bin/sh\necho '{name} {version}'\n".encode()
    control = (f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
               f"Maintainer: buildctl tests <t@example.invalid>\nDescription: {name} fixture\n")
    post = (f"#!/bin/sh\necho '{name} {version} postinst'\nexit {postinst_rc}\n").encode()
    return {BIN: (prog, 0o755), "DEBIAN/control": (control.encode(), 0o644),
            "DEBIAN/postinst": (post, 0o755)}


def make_deb(feed: Path, name: str = "hello-buildctl", version: str = "1.0-r0",
             arch: str = "all", postinst_rc: int = 0) -> Path:
    """DEPLOY_DIR/deb/<arch>/<name>_<version>_<arch>.deb, built by dpkg-deb."""
    src = feed / ".src" / f"{name}-{version}"
    for rel, (data, mode) in _tree(src, name, version, postinst_rc).items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(mode)
    out = feed / "deb" / arch / f"{name}_{version}_{arch}.deb"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(src), str(out)],
                   check=True, capture_output=True)
    return out


def _tgz(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for rel, (data, mode) in files.items():
            info = tarfile.TarInfo(f"./{rel}")
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_ipk(feed: Path, name: str = "hello-buildctl", version: str = "1.0-r0",
             arch: str = "core2-64", postinst_rc: int = 0) -> Path:
    """DEPLOY_DIR/ipk/<arch>/<name>_<version>_<arch>.ipk: an ar archive of debian-binary,
    control.tar.gz and data.tar.gz, as opkg-build writes it."""
    tree = _tree(feed, name, version, postinst_rc)
    control = {"control": tree["DEBIAN/control"], "postinst": tree["DEBIAN/postinst"]}
    members = [("debian-binary", b"2.0\n"), ("control.tar.gz", _tgz(control)),
               ("data.tar.gz", _tgz({BIN: tree[BIN]}))]
    out = feed / "ipk" / arch / f"{name}_{version}_{arch}.ipk"
    out.parent.mkdir(parents=True, exist_ok=True)
    ar = bytearray(b"!<arch>\n")
    for mname, data in members:
        ar += f"{mname + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
        ar += data + (b"\n" if len(data) % 2 else b"")
    out.write_bytes(bytes(ar))
    return out
