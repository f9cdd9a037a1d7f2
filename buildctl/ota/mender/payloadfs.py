"""Files inside a rootfs-image artifact's filesystem image: read one (``cat``), copy one out,
or copy one in and rewrite the artifact (``cp``), as mender-artifact's cat/cp do.

The image is an ext2/3/4 filesystem, read and changed with debugfs (e2fsprogs). Copying in
rewrites the artifact with the new image: data sums, the ``rootfs-image.checksum`` provide
and the header change, everything else (name, device types, provides, depends, clears,
meta-data, state scripts, compression) is kept. A signed artifact is signed again when a
key is given; without one buildctl refuses (mender-artifact 3.9 silently drops the
signature), unless ``force`` says the unsigned copy is wanted.
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
from buildctl.ota.mender.compression import Compression
from buildctl.ota.mender.keys import PrivateKey
from buildctl.ota.mender.model import ArtifactInfo
from buildctl.ota.mender.reader import Limits, read_artifact
from buildctl.ota.mender.writer import ArtifactSpec, DataSource, PayloadSpec, write_artifact

CHECKSUM_KEYS = ("rootfs-image.checksum", "rootfs_image_checksum")
_EXT_MAGIC_OFFSET = 1080  # s_magic in the superblock (1024 + 56)


def split_ref(text: str) -> tuple[str, str] | None:
    """'ARTIFACT:/path' -> (artifact, /path); None when text names no artifact file."""
    art, sep, inner = text.partition(":")
    if not sep or not art or not Path(art).is_file():
        return None
    if not inner.startswith("/"):
        raise UserError(f"{text}: the path inside the artifact must be absolute (ARTIFACT:/etc/x)")
    if any(c in inner for c in '"\n\r\0') or "/../" in inner + "/":
        raise UserError(f"{text}: unsupported characters or '..' in the path inside the artifact")
    return art, inner


def _debugfs() -> str:
    path = shutil.which("debugfs") or next((p for p in ("/usr/sbin/debugfs", "/sbin/debugfs")
                                            if os.path.isfile(p)), None)
    if not path:
        raise UserError("debugfs not found: install e2fsprogs")
    return path


def _run(image: Path, command: str, *, write: bool = False) -> tuple[bytes, str]:
    """stdout and stderr (banner removed) of one debugfs request on image."""
    args = [_debugfs()] + (["-w"] if write else []) + ["-R", command, str(image)]
    r = subprocess.run(args, capture_output=True)
    err = "\n".join(line for line in r.stderr.decode("utf-8", "replace").splitlines()
                    if line.strip() and not line.startswith("debugfs "))
    if r.returncode != 0:
        raise UserError(f"debugfs failed on the payload image: {err.splitlines()[0] if err else r.returncode}")
    return r.stdout, err


@dataclass
class _Opened:
    info: ArtifactInfo
    image: Path
    scripts: dict[str, tuple[bytes, int]]


def _open(artifact: str, work: Path, limits: Limits) -> _Opened:
    scripts: dict[str, tuple[bytes, int]] = {}
    info = read_artifact(artifact, extract_to=work, limits=limits, scripts_into=scripts)
    if info.augment is not None:
        raise UserError(f"{artifact}: is augmented; cat/cp handle plain artifacts only")
    p = info.payloads[0] if len(info.payloads) == 1 else None
    if p is None or p.type != "rootfs-image" or len(p.files) != 1:
        raise UserError(f"{artifact}: cat/cp need a rootfs-image artifact with one filesystem "
                        "image (this one: " + ", ".join(str(x.type) for x in info.payloads) + ")")
    image = work / "0000" / p.files[0].name
    with open(image, "rb") as f:
        f.seek(_EXT_MAGIC_OFFSET)
        if f.read(2) != b"\x53\xef":
            raise UserError(f"{artifact}: payload {p.files[0].name} is not an ext2/3/4 filesystem "
                            "(cat/cp read ext4 images only)")
    # the magic alone is two bytes: ask debugfs whether it opens the image at all, so that a
    # damaged one is named as the artifact's payload, not as the path asked for
    out, err = _run(image, 'stat "/"')
    if not re.search(rb"Type:\s+directory", out):
        why = err.splitlines()[0].replace(str(image), "it") if err else "no root directory"
        raise UserError(f"{artifact}: payload {p.files[0].name} is not a readable ext2/3/4 "
                        f"filesystem ({why})")
    return _Opened(info, image, scripts)


def _kind(image: Path, inner: str) -> str | None:
    """'regular', 'directory', 'symlink', ... or None when the path does not exist."""
    out, err = _run(image, f'stat "{inner}"')
    m = re.search(rb"Type:\s+(\S+)", out)
    if m is None:
        if "not found" in err:
            return None
        raise UserError(f"{inner}: debugfs cannot read it ({err.splitlines()[0] if err else 'no output'})")
    return m.group(1).decode()


def read_file(artifact: str, inner: str, limits: Limits = Limits()) -> bytes:
    """The bytes of the regular file inner in the artifact's (verified) filesystem image."""
    with tempfile.TemporaryDirectory(prefix="buildctl-cat-") as work:
        o = _open(artifact, Path(work), limits)
        kind = _kind(o.image, inner)
        if kind is None:
            raise UserError(f"{artifact}:{inner}: no such file in the payload image")
        if kind != "regular":
            raise UserError(f"{artifact}:{inner}: is a {kind}, not a regular file")
        out, err = _run(o.image, f'cat "{inner}"')
        if err:
            raise UserError(f"{artifact}:{inner}: {err.splitlines()[0]}")
        return out


def copy_in(src: str, artifact: str, inner: str, *, key: PrivateKey | None, force: bool,
            mtime: int, limits: Limits = Limits()) -> Path:
    """Put host file src at inner in the artifact's image; rewrite the artifact in place."""
    source = Path(src)
    if not source.is_file():
        raise UserError(f"{src}: no such file" if not source.exists() else f"{src}: not a regular file")
    with tempfile.TemporaryDirectory(prefix="buildctl-cp-") as w:
        work = Path(w)
        o = _open(artifact, work / "x", limits)
        if o.info.signed and key is None and not force:
            raise UserError(f"{artifact}: is signed; changing it needs the key to sign it again "
                            "(-k KEY), or --force to write it unsigned")
        parent = inner.rsplit("/", 1)[0] or "/"
        if _kind(o.image, parent) != "directory":
            raise UserError(f"{artifact}:{inner}: directory {parent} does not exist in the image")
        kind = _kind(o.image, inner)
        keep = None
        if kind is not None:
            if kind != "regular":
                raise UserError(f"{artifact}:{inner}: is a {kind}; only regular files are replaced")
            out, _ = _run(o.image, f'stat "{inner}"')
            keep = re.search(rb"Mode:\s+(\d+).*?\n.*?User:\s+(\d+)\s+Group:\s+(\d+)", out, re.S)
            _run(o.image, f'rm "{inner}"', write=True)
        # debugfs reads its request as one quoted line: the host file goes in under a name
        # without quotes or spaces, whatever the user's file is called
        staged = work / "source"
        shutil.copyfile(source, staged)
        _, err = _run(o.image, f'write "{staged}" "{inner}"', write=True)
        if _kind(o.image, inner) != "regular":
            raise UserError(f"{artifact}:{inner}: debugfs could not write it ({err[:200]})")
        mode, uid, gid = ((int(keep.group(1), 8), keep.group(2).decode(), keep.group(3).decode())
                          if keep else (source.stat().st_mode & 0o7777, "0", "0"))
        for field_name, value in (("mode", f"0{0o100000 | mode:o}"), ("uid", uid), ("gid", gid)):
            _run(o.image, f'sif "{inner}" {field_name} {value}', write=True)
        return _rewrite(artifact, o, work, key=key, mtime=mtime)


def _rewrite(artifact: str, o: _Opened, work: Path, *, key: PrivateKey | None,
             mtime: int) -> Path:
    info, p = o.info, o.info.payloads[0]
    script_dir = work / "scripts"
    script_dir.mkdir()
    scripts = []
    for name in info.scripts:
        data, mode = o.scripts[name]
        (script_dir / name).write_bytes(data)
        (script_dir / name).chmod(mode or 0o755)
        scripts.append(script_dir / name)
    checksum_key = next((k for k in CHECKSUM_KEYS if k in p.provides), None)
    provides = {k: v for k, v in p.provides.items() if k != checksum_key}
    payload = PayloadSpec(type=p.type, files=[DataSource.from_path(o.image)], provides=provides,
                          depends=dict(p.depends), clears_provides=list(p.clears_provides),
                          meta_data=p.meta_data, checksum_provide=checksum_key)
    spec = ArtifactSpec(name=info.name, device_types=list(info.device_types), payload=payload,
                        group=info.group, depends_artifact_names=list(info.depends_artifact_names),
                        depends_groups=list(info.depends_groups), scripts=scripts,
                        compression=Compression.parse(info.compression))
    return write_artifact(spec, artifact, key=key, mtime=mtime)
