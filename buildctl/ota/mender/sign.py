"""Sign an existing artifact: insert (or replace) manifest.sig, copy everything else as is.

Like ``mender-artifact sign``: no repacking; every other member keeps its header and bytes.
The artifact is fully verified first (a tampered artifact must never get a valid signature).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from buildctl.fsutil import special_file
from buildctl.ota.mender.errors import ArtifactError
from buildctl.ota.mender.keys import PrivateKey
from buildctl.ota.mender.reader import Limits, read_artifact
from buildctl.ota.mender.tario import END, TarStream, header_bytes, padding


def sign_artifact(src: str | os.PathLike, key: PrivateKey, output: str | os.PathLike | None = None,
                  *, force: bool = False, verify: bool = True, limits: Limits = Limits()) -> Path:
    """Sign src with key into output (default: src itself, replaced atomically)."""
    src_path = Path(src)
    out_path = Path(output) if output is not None else src_path
    if (what := special_file(out_path)) is not None:
        raise ArtifactError(f"cannot write {out_path}: it is {what}, not a file")
    if verify:
        read_artifact(src_path, limits=limits)
    fd, tmp_name = tempfile.mkstemp(prefix=".buildctl-sign-", dir=out_path.parent or Path("."))
    tmp = Path(tmp_name)
    try:
        with open(src_path, "rb", buffering=1 << 20) as f, os.fdopen(fd, "wb", buffering=1 << 20) as out:
            ts = TarStream(f, "artifact")
            hdr = ts.next()
            if hdr is None or hdr.name != "version":
                raise ArtifactError("first member must be 'version'", path=str(src_path))
            out.write(hdr.raw + ts.read_all(limits.small_member) + padding(hdr.size))
            hdr = ts.next()
            if hdr is None or hdr.name != "manifest":
                raise ArtifactError("'manifest' must follow 'version'", path=str(src_path))
            manifest = ts.read_all(limits.small_member)
            out.write(hdr.raw + manifest + padding(hdr.size))
            sig = key.sign(manifest)
            out.write(header_bytes("manifest.sig", len(sig), mode=0o644, mtime=hdr.mtime))
            out.write(sig + padding(len(sig)))
            while (hdr := ts.next()) is not None:
                if hdr.name == "manifest.sig":
                    if not force:
                        raise ArtifactError("artifact is already signed; use --force to replace "
                                            "the signature", path=str(src_path))
                    continue
                out.write(hdr.raw)
                size = hdr.size if hdr.is_file else 0
                while chunk := ts.read(1 << 20):
                    out.write(chunk)
                out.write(padding(size))
            out.write(END)
        os.chmod(tmp, src_path.stat().st_mode & 0o777)
        os.replace(tmp, out_path)
    except ArtifactError as exc:
        raise exc.located(str(src_path)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return out_path
