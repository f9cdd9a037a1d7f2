"""Payload builders for the standard update modules: single-file, directory, deb, docker.

Each returns the data files (and meta-data) the module on the device expects; pass them to
``writer.module_payload``.
"""
from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

from buildctl.ota.mender.errors import ArtifactError
from buildctl.ota.mender.writer import DataSource


def _abs_dir(dest_dir: str) -> str:
    if not dest_dir.startswith("/"):
        raise ArtifactError(f"destination directory {dest_dir!r} must be an absolute path")
    return dest_dir


def single_file(path: str | os.PathLike, dest_dir: str, *,
                permissions: int | None = None) -> list[DataSource]:
    """Files for the single-file module: dest_dir, filename, permissions, the file itself."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"single-file payload {p}: not a regular file")
    mode = permissions if permissions is not None else stat.S_IMODE(p.stat().st_mode)
    return [DataSource("dest_dir", data=_abs_dir(dest_dir).encode() + b"\n"),
            DataSource("filename", data=p.name.encode() + b"\n"),
            DataSource("permissions", data=f"{mode:o}\n".encode()),
            DataSource.from_path(p)]


def directory(src_dir: str | os.PathLike, dest_dir: str, workdir: str | os.PathLike,
              *, mtime: int = 0) -> list[DataSource]:
    """Files for the directory module: dest_dir and update.tar (a deterministic tar of the tree)."""
    src = Path(src_dir)
    if not src.is_dir():
        raise ArtifactError(f"directory payload {src}: not a directory")
    if dest_dir.rstrip("/") == "":
        raise ArtifactError("the directory module refuses to replace /")
    tar_path = Path(workdir) / "update.tar"

    def norm(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = mtime
        return info

    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(src)), recursive=False, filter=norm)
    return [DataSource("dest_dir", data=_abs_dir(dest_dir).encode() + b"\n"),
            DataSource.from_path(tar_path)]


def deb(packages: list[str | os.PathLike]) -> list[DataSource]:
    """Files for the deb module: the .deb packages themselves."""
    out = []
    for pkg in packages:
        p = Path(pkg)
        if p.suffix != ".deb" or not p.is_file():
            raise ArtifactError(f"deb payload {p}: not a .deb file")
        out.append(DataSource.from_path(p))
    return out


def docker_meta(containers: list[str]) -> dict:
    """meta-data for the docker module: the images to run, no data files."""
    if not containers:
        raise ArtifactError("the docker module needs at least one container image")
    return {"containers": list(containers)}
