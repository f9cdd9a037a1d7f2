"""Dump an artifact's parts (first payload's files, state scripts, meta-data) and the `write`
flags that recreate it, as ``mender-artifact dump`` does.

The flags are printed in mender-artifact's order and spelling (``write module-image ...
--type T --no-default-software-version ... --no-default-clears-provides``, every provide,
depend and clear spelled out), so the same line works with ``buildctl artifact`` and with
mender-artifact. The artifact is fully verified first; nothing is written if it is invalid.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildctl.errors import UserError
from buildctl.ota.mender.model import ArtifactInfo
from buildctl.ota.mender.reader import Limits, read_artifact


def meta_bytes(meta: dict[str, Any]) -> bytes:
    """meta-data as mender-artifact dumps it: Go's JSON (sorted keys, HTML escaped), newline."""
    text = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text.encode() + b"\n"


@dataclass
class Dumped:
    info: ArtifactInfo
    files: list[str] = field(default_factory=list)  # paths as printed (DIR/name)
    scripts: list[str] = field(default_factory=list)
    meta_data: str | None = None


def _prepare(d: str | None, what: str) -> Path | None:
    if d is None:
        return None
    p = Path(d)
    if p.exists() and not p.is_dir():
        raise UserError(f"--{what} {d}: exists and is not a directory")
    return p


def dump_artifact(path: str | os.PathLike, *, files: str | None = None, scripts: str | None = None,
                  meta_data: str | None = None, limits: Limits = Limits()) -> Dumped:
    """Verify path; write the requested parts into their directories (created if missing)."""
    dirs = {w: _prepare(d, w) for w, d in (("files", files), ("scripts", scripts),
                                            ("meta-data", meta_data))}
    script_data: dict[str, tuple[bytes, int]] = {}
    work = None
    created = dirs["files"] is not None and not dirs["files"].exists()
    try:
        if dirs["files"] is not None:
            dirs["files"].mkdir(parents=True, exist_ok=True)
            work = tempfile.mkdtemp(prefix=".buildctl-dump-", dir=dirs["files"])
        info = read_artifact(path, extract_to=work, limits=limits, scripts_into=script_data)
        if len(info.payloads) > 1:
            raise UserError(f"{path}: has {len(info.payloads)} payloads; dump handles the first "
                            "only, like mender-artifact")
        out = Dumped(info)
        payload = info.payloads[0] if info.payloads else None
        targets = ([dirs["files"] / f.name for f in payload.files]
                   if dirs["files"] is not None and payload is not None else [])
        targets += ([dirs["scripts"] / n for n in info.scripts] if dirs["scripts"] is not None
                    else [])
        if dirs["meta-data"] is not None and payload is not None and payload.meta_data is not None:
            targets.append(dirs["meta-data"] / "0000.meta-data")
        if (clash := next((t for t in targets if t.exists() or t.is_symlink()), None)):
            raise UserError(f"{clash}: already exists; dump does not overwrite files")
        created = False  # from here on the directory holds what was asked for
        if dirs["files"] is not None and payload is not None:
            for f in payload.files:
                os.replace(Path(work) / "0000" / f.name, dirs["files"] / f.name)
                out.files.append(f"{files}/{f.name}")
        if dirs["scripts"] is not None:
            dirs["scripts"].mkdir(parents=True, exist_ok=True)
            for name in info.scripts:
                data, mode = script_data[name]
                target = dirs["scripts"] / name
                target.write_bytes(data)
                target.chmod(mode or 0o755)
                out.scripts.append(f"{scripts}/{name}")
        if dirs["meta-data"] is not None:
            dirs["meta-data"].mkdir(parents=True, exist_ok=True)
            if payload is not None and payload.meta_data is not None:
                (dirs["meta-data"] / "0000.meta-data").write_bytes(meta_bytes(payload.meta_data))
                out.meta_data = f"{meta_data}/0000.meta-data"
        return out
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        if created:
            shutil.rmtree(dirs["files"], ignore_errors=True)


def _kv(key: str, value: Any) -> list[str]:
    if isinstance(value, list):  # a depends list: one flag per value
        return [f"{key}:{v}" for v in value]
    return [f"{key}:{value}"]


def write_flags(d: Dumped) -> list[str]:
    """The command line (after the program name) that writes the same artifact."""
    info = d.info
    p = info.payloads[0] if info.payloads else None
    if p is None or p.type is None:
        args = ["write", "bootstrap-artifact", "--artifact-name", info.name]
    else:
        args = ["write", "module-image", "--artifact-name", info.name]
    if info.group:
        args += ["--provides-group", info.group]
    for n in info.depends_artifact_names:
        args += ["--artifact-name-depends", n]
    for t in info.device_types:
        args += ["--device-type", t]
    for g in info.depends_groups:
        args += ["--depends-groups", g]
    if p is None:
        return args
    if p.type is not None:
        args += ["--type", p.type, "--no-default-software-version"]
    for k in sorted(p.provides):
        args += ["--provides", f"{k}:{p.provides[k]}"]
    for k in sorted(p.depends):
        for kv in _kv(k, p.depends[k]):
            args += ["--depends", kv]
    if p.type is not None:
        args.append("--no-default-clears-provides")
    for c in p.clears_provides:
        args += ["--clears-provides", c]
    if d.meta_data:
        args += ["--meta-data", d.meta_data]
    for s in d.scripts:
        args += ["--script", s]
    for f in d.files:
        args += ["--file", f]
    return args
