"""Stream-read and verify a Mender artifact (format version 3).

One pass over the file, members in the order the format requires; every check listed in
the reference note (version, manifest shape, signature, header checksum, header-info,
type-info, meta-data, state-script names, data file names and sha256 sums, nothing missing,
nothing extra). Payload files are hashed while they stream; nothing is held whole in memory.
Hostile inputs (truncation, bombs, traversal, links, oversized members) fail with an
ArtifactError naming the member.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from buildctl.ota.mender.compression import Prefetch, decompressor, split_suffix
from buildctl.ota.mender.errors import ArtifactError
from buildctl.ota.mender.keys import PublicKey
from buildctl.ota.mender.model import (ArtifactInfo, Augment, DataFile, Payload,
                                       data_name_problem, script_name_problem)
from buildctl.ota.mender.tario import TarHeader, TarStream

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DATA_PATH = re.compile(r"^data/([0-9]{4})/([^/]+)$")
_DATA_MEMBER = re.compile(r"^data/([0-9]{4})\.tar(\.gz|\.xz|\.zst)?$")
_HEADER_FILE = re.compile(r"^headers/([0-9]{4})/(type-info|meta-data)$")


@dataclass(frozen=True)
class Limits:
    """Caps that keep hostile artifacts from exhausting memory, disk or time."""

    small_member: int = 1 << 20  # version, manifest, manifest-augment, manifest.sig
    header: int = 16 << 20  # a header tar, compressed and decompressed
    json: int = 1 << 20  # one JSON member inside a header
    data_bytes: int | None = None  # total size of payload files (None: no cap)
    data_bytes_advice: str = ""  # appended to the refusal (e.g. which flag raises the cap)
    trailing: int = 1 << 20  # zero padding allowed after a data tar's end marker


@dataclass
class _Manifest:
    entries: dict[str, str] = field(default_factory=dict)  # path -> sha256
    seen: set[str] = field(default_factory=set)


def _fail(msg: str, member: str = "") -> ArtifactError:
    return ArtifactError(msg, member=member)


def _parse_manifest(data: bytes, member: str, into: dict[str, str]) -> dict[str, str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("is not UTF-8 text", member) from None
    own: dict[str, str] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split("  ")
        if len(parts) != 2 or not _HEX64.match(parts[0]) or not parts[1] or any(
                c.isspace() for c in parts[1]):
            raise _fail(f"line {lineno} is not '<sha256>  <path>'", member)
        digest, path = parts
        if path in into or path in own:
            raise _fail(f"lists {path} twice", member)
        if path.startswith("data/"):
            m = _DATA_PATH.match(path)
            if not m:
                raise _fail(f"malformed entry {path} (want data/NNNN/<name>)", member)
            if problem := data_name_problem(m.group(2)):
                raise _fail(problem, member)
        own[path] = digest
    into.update(own)
    return own


def _json(data: bytes, member: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(f"is not valid JSON ({exc})", member) from None
    except RecursionError:
        raise _fail("is nested too deeply", member) from None


def _printable(value: Any, what: str, member: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{what} must be a string", member)
    if len(value.encode()) > 256 or not value.isprintable():
        raise _fail(f"{what} must be at most 256 printable characters", member)
    return value


def _str_list(value: Any, what: str, member: str) -> list[str]:
    if not isinstance(value, list):
        raise _fail(f"{what} must be a list of strings", member)
    return [_printable(v, what, member) for v in value]


def _only_keys(obj: Any, allowed: tuple[str, ...], what: str, member: str) -> dict:
    if not isinstance(obj, dict):
        raise _fail(f"{what} must be a JSON object", member)
    for key in obj:
        if key not in allowed:
            raise _fail(f'{what} has unknown field "{key}"', member)
    return obj


def _header_info(data: bytes, member: str, info: ArtifactInfo | None) -> list[str | None]:
    obj = _only_keys(_json(data, member), ("payloads", "artifact_provides", "artifact_depends"),
                     "header-info", member)
    payloads = obj.get("payloads")
    if not isinstance(payloads, list) or not payloads:
        raise _fail("header-info: payloads must be a non-empty list", member)
    types: list[str | None] = []
    for p in payloads:
        p = _only_keys(p, ("type",), "header-info payload", member)
        t = p.get("type")
        if t is not None and not isinstance(t, str):
            raise _fail("header-info: payload type must be a string or null", member)
        if t == "":
            raise _fail("header-info: empty payload type", member)
        types.append(t)
    if info is None:  # augmented header: only the payload types matter
        return types
    prov = _only_keys(obj.get("artifact_provides"), ("artifact_name", "artifact_group"),
                      "header-info artifact_provides", member)
    if not prov.get("artifact_name"):
        raise _fail("header-info: artifact_provides.artifact_name is missing", member)
    info.name = _printable(prov["artifact_name"], "artifact_name", member)
    info.group = _printable(prov.get("artifact_group", ""), "artifact_group", member)
    if "artifact_depends" in obj:
        dep = _only_keys(obj["artifact_depends"], ("artifact_name", "device_type", "artifact_group"),
                         "header-info artifact_depends", member)
        info.device_types = _str_list(dep.get("device_type", []), "device_type", member)
        if not info.device_types:
            raise _fail("header-info: artifact_depends.device_type is missing or empty", member)
        info.depends_artifact_names = _str_list(dep.get("artifact_name", []), "artifact_name", member)
        info.depends_groups = _str_list(dep.get("artifact_group", []), "artifact_group", member)
    return types


def _type_info(data: bytes, member: str, expected: str | None, augment: bool) -> Payload:
    obj = _only_keys(_json(data, member), ("type", "artifact_provides", "artifact_depends",
                                           "clears_artifact_provides"), "type-info", member)
    if "type" not in obj:
        raise _fail("type-info: type is missing", member)
    t = obj["type"]
    if t is not None and not isinstance(t, str):
        raise _fail("type-info: type must be a string or null", member)
    # mender-artifact 3.x wrote "" for rootfs-image payloads; accept that one legacy spelling.
    legacy = t == "" and expected == "rootfs-image"
    if t != expected and not legacy and not augment:
        raise _fail(f"type-info: type {t!r} does not match header-info payload type {expected!r}",
                    member)
    provides = obj.get("artifact_provides") or {}
    if not isinstance(provides, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in provides.items()):
        raise _fail("type-info: artifact_provides must map names to strings", member)
    depends = obj.get("artifact_depends") or {}
    if not isinstance(depends, dict) or not all(
            isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
            for v in depends.values()):
        raise _fail("type-info: artifact_depends must map names to strings or lists of strings",
                    member)
    clears = obj.get("clears_artifact_provides") or []
    if not isinstance(clears, list) or not all(isinstance(c, str) for c in clears):
        raise _fail("type-info: clears_artifact_provides must be a list of strings", member)
    return Payload(index=0, type=expected if legacy else t, provides=dict(provides),
                   depends=dict(depends), clears_provides=list(clears))


def _meta_data(data: bytes, member: str) -> dict | None:
    if not data.strip():
        return None
    obj = _json(data, member)
    if not isinstance(obj, dict):
        raise _fail("top level object in meta-data must be a JSON object", member)
    return obj


def _parse_header(blob: bytes, kind: str, member: str, limits: Limits,
                  info: ArtifactInfo | None,
                  scripts_into: dict[str, tuple[bytes, int]] | None = None,
                  ) -> tuple[list[str | None], list[Payload], list[str]]:
    """header-info types, per-payload type-info/meta-data, script names. info None: augment."""
    ts = TarStream(decompressor(io.BytesIO(blob), kind, member, limits.header), member)
    types: list[str | None] | None = None
    payloads: list[Payload] = []
    meta_seen: set[int] = set()
    scripts: list[str] = []
    stage = 0  # 0 before header-info, 1 scripts, 2 headers
    for hdr in ts:
        name = hdr.name
        if hdr.is_dir:
            continue
        if not hdr.is_file:
            raise _fail(f"{name}: a {hdr.kind} is not allowed in a header", member)
        where = f"{member}/{name}"
        if name.startswith("/") or ".." in name.split("/"):
            raise _fail(f"unsafe path {name!r}", member)
        if name == "header-info":
            if stage:
                raise _fail("header-info must be the first and only header-info member", member)
            types = _header_info(ts.read_all(limits.json), where, info)
            stage = 1
            continue
        if types is None:
            raise _fail(f"first member must be header-info, found {name}", member)
        if name.startswith("scripts/"):
            script = name[len("scripts/"):]
            if info is None:
                raise _fail(f"state scripts are not allowed in an augmented header ({name})", member)
            if stage != 1:
                raise _fail(f"state script {script} after the payload headers", member)
            if "/" in script or (problem := script_name_problem(script)):
                raise _fail(problem or f"state script {script!r} is in a subdirectory", member)
            if script in scripts:
                raise _fail(f"state script {script} appears twice", member)
            scripts.append(script)
            if scripts_into is not None:
                scripts_into[script] = (ts.read_all(limits.header), hdr.mode & 0o7777)
            continue
        m = _HEADER_FILE.match(name)
        if not m:
            raise _fail(f"unsupported file {name}", member)
        stage = 2
        index, what = int(m.group(1)), m.group(2)
        if what == "type-info":
            if index != len(payloads):
                raise _fail(f"{name} out of order (expected headers/{len(payloads):04d}/type-info)",
                            member)
            if index >= len(types):
                raise _fail(f"{name}: header-info lists only {len(types)} payload(s)", member)
            p = _type_info(ts.read_all(limits.json), where, types[index], info is None)
            p.index = index
            payloads.append(p)
        else:
            if index != len(payloads) - 1 or index in meta_seen:
                raise _fail(f"{name} without its type-info, or twice", member)
            payloads[-1].meta_data = _meta_data(ts.read_all(limits.json), where)
            meta_seen.add(index)
    if types is None:
        raise _fail("header-info is missing", member)
    if len(payloads) != len(types):
        raise _fail(f"header-info lists {len(types)} payload(s) but {len(payloads)} type-info "
                    "member(s) follow", member)
    return types, payloads, scripts


def _check_conflicts(info: ArtifactInfo, member: str) -> None:
    header_provides = {"artifact_name", "artifact_group"}
    header_depends = {"artifact_name", "device_type", "artifact_group"}
    for p in info.payloads:
        if clash := header_provides & set(p.provides):
            raise _fail(f"type-info provides {sorted(clash)[0]}, which header-info provides "
                        "already (conflicting keys)", member)
        if clash := header_depends & set(p.depends):
            raise _fail(f"type-info depends on {sorted(clash)[0]}, which header-info already "
                        "depends on (conflicting keys)", member)


def _expect(hdr: TarHeader | None, names: str, seen: list[str]) -> TarHeader:
    if hdr is None:
        raise _fail(f"truncated: the artifact ends where {names} should follow")
    if hdr.name in seen:
        raise _fail(f"duplicate member {hdr.name}")
    if not hdr.is_file:
        raise _fail(f"member {hdr.name} is a {hdr.kind}, not a file")
    return hdr


class _Extractor:
    """Writes verified payload files under one directory; removes everything on failure."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.done: list[Path] = []
        self.partial: Path | None = None

    def open(self, index: int, name: str) -> BinaryIO:
        target = (self.root / f"{index:04d}" / name).resolve()
        if self.root not in target.parents:
            raise _fail(f"{name}: would be written outside {self.root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        self.partial = target.with_name(f".{name}.partial")
        self._target = target
        return open(self.partial, "wb")

    def commit(self) -> None:
        assert self.partial is not None
        os.replace(self.partial, self._target)
        self.done.append(self._target)
        self.partial = None

    def abort(self) -> None:
        for p in ([self.partial] if self.partial else []) + self.done:
            try:
                p.unlink()
            except OSError:
                pass


def read_artifact(source: str | os.PathLike | BinaryIO, *, public_key: PublicKey | None = None,
                  require_signature: bool = False, extract_to: str | os.PathLike | None = None,
                  limits: Limits = Limits(),
                  scripts_into: dict[str, tuple[bytes, int]] | None = None) -> ArtifactInfo:
    """Read and fully verify an artifact; return what it says about itself.

    With ``public_key`` the artifact must be signed by it. ``require_signature`` without a key
    fails: a signature nobody verified proves nothing (mender-artifact's "missing verifier"). ``extract_to``: verified payload files are written
    to ``<dir>/<NNNN>/<name>`` (written as partial files, renamed once their sum matched).
    ``scripts_into``: filled with each state script's name -> (content, mode) (for dump).
    """
    path = str(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<stream>")
    extractor = _Extractor(Path(extract_to)) if extract_to is not None else None
    try:
        if isinstance(source, (str, os.PathLike)):
            try:
                f = open(source, "rb", buffering=1 << 20)
            except OSError as exc:
                raise ArtifactError(f"cannot open: {exc.strerror}", path=path) from None
            with f:
                return _read(f, path, public_key, require_signature, extractor, limits,
                             scripts_into)
        return _read(source, path, public_key, require_signature, extractor, limits, scripts_into)
    except ArtifactError as exc:
        if extractor:
            extractor.abort()
        raise exc.located(path) from None
    except BaseException:
        if extractor:
            extractor.abort()
        raise


def _read(f: BinaryIO, path: str, public_key: PublicKey | None, require_signature: bool,
          extractor: _Extractor | None, limits: Limits,
          scripts_into: dict[str, tuple[bytes, int]] | None = None) -> ArtifactInfo:
    outer = TarStream(f, "artifact")
    seen: list[str] = []
    info = ArtifactInfo(path=path, name="")

    hdr = outer.next()
    if hdr is None or hdr.name != "version":
        raise _fail(f"first member must be 'version', found {hdr.name if hdr else 'nothing'}")
    version_bytes = outer.read_all(limits.small_member)
    seen.append("version")
    version = _only_keys(_json(version_bytes, "version"), ("format", "version"), "version", "version")
    if version.get("format") != "mender" or type(version.get("version")) is not int or \
            version.get("version") != 3:
        raise _fail(f"unsupported format {version.get('format')!r} version {version.get('version')!r}"
                    " (only mender version 3)", "version")

    hdr = _expect(outer.next(), "manifest", seen)
    if hdr.name != "manifest":
        raise _fail(f"member {hdr.name} out of place: 'manifest' must follow 'version'")
    manifest_bytes = outer.read_all(limits.small_member)
    seen.append("manifest")
    checksums: dict[str, str] = {}
    main = _parse_manifest(manifest_bytes, "manifest", checksums)
    if checksums.get("version") != hashlib.sha256(version_bytes).hexdigest():
        raise _fail("checksum mismatch or missing entry for version", "manifest")

    hdr = _expect(outer.next(), "header.tar", seen)
    if hdr.name == "manifest.sig":
        sig = outer.read_all(4096)
        seen.append(hdr.name)
        info.signed = True
        if public_key is not None:
            public_key.verify(manifest_bytes, sig)
            info.signature = "verified"
        else:
            info.signature = "not-verified"
        hdr = _expect(outer.next(), "header.tar", seen)
    if not info.signed and (public_key is not None or require_signature):
        raise _fail("artifact is not signed (manifest.sig missing) but a signature is required")
    if info.signed and require_signature and public_key is None:
        raise _fail("a verified signature is required but no public key was given to verify "
                    "it", "manifest.sig")

    augment_manifest: dict[str, str] | None = None
    if hdr.name == "manifest-augment":
        augment_manifest = _parse_manifest(outer.read_all(limits.small_member), "manifest-augment",
                                           checksums)
        seen.append(hdr.name)
        hdr = _expect(outer.next(), "header.tar", seen)

    kind = split_suffix(hdr.name, "header.tar")
    if kind is None:
        raise _fail(f"member {hdr.name} out of place: expected header.tar[.gz|.xz|.zst]")
    info.compression = kind
    blob = outer.read_all(limits.header)
    seen.append(hdr.name)
    _check_sum(main, hdr.name, hashlib.sha256(blob).hexdigest(), "manifest")
    types, info.payloads, info.scripts = _parse_header(blob, kind, hdr.name, limits, info,
                                                       scripts_into)
    _check_conflicts(info, hdr.name)
    del blob

    hdr = outer.next()
    if augment_manifest is not None:
        hdr = _expect(hdr, "header-augment.tar", seen)
        if split_suffix(hdr.name, "header-augment.tar") != kind:
            raise _fail(f"member {hdr.name} out of place: expected header-augment.tar"
                        f"{_SUFFIX[kind]} (same compression as the header)")
        blob = outer.read_all(limits.header)
        seen.append(hdr.name)
        _check_sum(augment_manifest, hdr.name, hashlib.sha256(blob).hexdigest(), "manifest-augment")
        if None in types:
            raise _fail("an empty (bootstrap) payload cannot be augmented", hdr.name)
        atypes, apayloads, _ = _parse_header(blob, kind, hdr.name, limits, None)
        a = apayloads[0]
        info.augment = Augment(type=a.type if a.type is not None else atypes[0],
                               provides=a.provides, depends=a.depends)
        hdr = outer.next()

    data_seen: set[int] = set()
    total = 0
    while hdr is not None:
        m = _DATA_MEMBER.match(hdr.name)
        if hdr.name in seen:
            raise _fail(f"duplicate member {hdr.name}")
        if not m:
            raise _fail(f"member {hdr.name} out of place: only data/NNNN.tar[.gz|.xz|.zst] may "
                        "follow the header")
        if not hdr.is_file:
            raise _fail(f"member {hdr.name} is a {hdr.kind}, not a file")
        index = int(m.group(1))
        if index >= len(info.payloads):
            raise _fail(f"member {hdr.name} has no payload header (only {len(info.payloads)})")
        if data_seen and index <= max(data_seen):
            raise _fail(f"member {hdr.name} out of order")
        data_seen.add(index)
        seen.append(hdr.name)
        total = _read_data(outer, hdr.name, split_suffix(hdr.name, f"data/{index:04d}.tar") or "none",
                           index, info, checksums, main, augment_manifest, extractor, limits, total)
        hdr = outer.next()

    for p in info.payloads:
        if p.type is not None and p.index not in data_seen:
            raise _fail(f"data/{p.index:04d}.tar{'' if kind == 'none' else _SUFFIX[kind]} is missing")
    missing = [p for p in checksums if p.startswith("data/") and p not in _visited(info)]
    if missing:
        raise _fail("files listed in the manifest are not part of the artifact: "
                    + ", ".join(sorted(missing)))
    effective = info.augment.type if info.augment else (info.payloads[0].type if info.payloads else None)
    for p in info.payloads:
        if effective == "rootfs-image" and p.type == "rootfs-image" and len(p.files) != 1:
            raise _fail(f"a rootfs-image payload must hold exactly one file, found {len(p.files)}",
                        f"data/{p.index:04d}")
    info.members = seen
    if info.augment is not None:
        info.unsigned_parts = (["manifest-augment", f"header-augment.tar{_SUFFIX[kind]}"]
                               + [f"data/0000/{f.name}" for f in info.augment.files])
    return info


_SUFFIX = {"none": "", "gzip": ".gz", "lzma": ".xz", "zstd": ".zst"}


def _visited(info: ArtifactInfo) -> set[str]:
    out = {f"data/{p.index:04d}/{f.name}" for p in info.payloads for f in p.files}
    if info.augment:
        out |= {f"data/0000/{f.name}" for f in info.augment.files}
    return out


def _check_sum(entries: dict[str, str], name: str, actual: str, manifest: str) -> None:
    expected = entries.get(name)
    if expected is None:
        raise _fail(f"{manifest} has no entry for {name}", name)
    if expected != actual:
        raise _fail(f"checksum mismatch: {manifest} says {expected}, content is {actual}", name)


def _read_data(outer: TarStream, member: str, kind: str, index: int, info: ArtifactInfo,
               checksums: dict[str, str], main: dict[str, str],
               augment_manifest: dict[str, str] | None, extractor: _Extractor | None,
               limits: Limits, total: int) -> int:
    stream = Prefetch(decompressor(outer, kind, member))
    try:
        inner = TarStream(stream, member)
        payload = info.payloads[index]
        names: set[str] = set()
        for hdr in inner:
            name = hdr.name
            if not hdr.is_file:
                raise _fail(f"{name}: a {hdr.kind} is not allowed in a payload", member)
            if "/" in name or name in (".", "..") or name.startswith("/"):
                raise _fail(f"unsafe path {name!r}: payload files must be plain names", member)
            if problem := data_name_problem(name):
                raise _fail(problem, member)
            if name in names:
                raise _fail(f"{name} appears twice", member)
            names.add(name)
            key = f"data/{index:04d}/{name}"
            expected = checksums.get(key)
            if expected is None:
                raise _fail(f"{name} is not listed in the manifest", member)
            total += hdr.size
            if limits.data_bytes is not None and total > limits.data_bytes:
                raise _fail(f"{name}: payload files exceed the {limits.data_bytes}-byte limit "
                            f"{limits.data_bytes_advice or '(decompression bomb?)'}", member)
            sha = hashlib.sha256()
            out = extractor.open(index, name) if extractor else None
            try:
                while chunk := inner.read(1 << 20):
                    sha.update(chunk)
                    if out:
                        out.write(chunk)
            finally:
                if out:
                    out.close()
            actual = sha.hexdigest()
            if actual != expected:
                raise _fail(f"{name}: checksum mismatch: manifest says {expected}, content is "
                            f"{actual}", member)
            if out:
                extractor.commit()
            record = DataFile(name=name, size=hdr.size, sha256=actual, mtime=hdr.mtime)
            if key in main or info.augment is None or augment_manifest is None:
                payload.files.append(record)
            else:
                info.augment.files.append(record)
        trailing = 0
        while chunk := stream.read(1 << 16):
            if chunk.count(0) != len(chunk):
                raise _fail("garbage after the end of the payload tar", member)
            trailing += len(chunk)
            if trailing > limits.trailing:
                raise _fail(f"more than {limits.trailing} bytes of padding after the payload tar "
                            "(decompression bomb?)", member)
    finally:
        stream.close()
    return total
