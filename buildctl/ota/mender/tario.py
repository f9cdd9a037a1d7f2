"""Streaming tar: parse and emit 512-byte headers ourselves.

Python's ``tarfile`` reads whole PAX headers into memory and pads archives to 10240 bytes;
for hostile inputs and Go-compatible bytes we need control over both. Only what a Mender
artifact can hold is supported: regular files, directories (skipped by callers), PAX ``x``/``g``
records and GNU long names. Links, devices and FIFOs are reported so callers can refuse them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterator, Protocol

from buildctl.ota.mender.errors import ArtifactError

BLOCK = 512
MAX_META = 64 * 1024  # PAX records / GNU long names larger than this are hostile


class Readable(Protocol):
    def read(self, n: int = -1) -> bytes: ...


@dataclass
class TarHeader:
    name: str
    size: int
    mode: int
    mtime: int
    typeflag: bytes
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    linkname: str = ""
    raw: bytes = b""  # every header block as read (incl. PAX/long-name blocks), for copying

    @property
    def is_file(self) -> bool:
        return self.typeflag in (b"0", b"\0", b"7")

    @property
    def is_dir(self) -> bool:
        return self.typeflag == b"5"

    @property
    def kind(self) -> str:
        return {b"1": "hard link", b"2": "symbolic link", b"3": "character device",
                b"4": "block device", b"5": "directory", b"6": "FIFO"}.get(
                    self.typeflag, f"entry of type {self.typeflag!r}")


def read_exact(src: Readable, n: int, what: str) -> bytes:
    """Exactly n bytes, or an ArtifactError saying the input is truncated."""
    parts = []
    left = n
    while left:
        chunk = src.read(left)
        if not chunk:
            raise ArtifactError(f"truncated: expected {n} bytes, got {n - left}", member=what)
        parts.append(chunk)
        left -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _num(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field[1:], "big")
        return value if not field[0] & 0x40 else -value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ArtifactError(f"tar header has a malformed number {text[:20]!r}", member=what) from None


def _str(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "replace")


def _checksum(block: bytes) -> int:
    return sum(block[:148]) + 8 * 32 + sum(block[156:])


def _parse_pax(data: bytes, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            raise ArtifactError("malformed PAX record", member=what)
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise ArtifactError("malformed PAX record length", member=what) from None
        if length <= 0 or pos + length > len(data) or data[pos + length - 1:pos + length] != b"\n":
            raise ArtifactError("malformed PAX record", member=what)
        key, eq, value = data[sp + 1:pos + length - 1].partition(b"=")
        if not eq:
            raise ArtifactError("malformed PAX record", member=what)
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        pos += length
    return out


class TarStream:
    """Iterate the members of a tar read from a stream, never holding a payload in memory.

    ``for hdr in ts: ts.read(n) ...``; unread content is skipped when the next header is read.
    """

    def __init__(self, src: Readable, what: str = "tar"):
        self.src = src
        self.what = what
        self._left = 0  # content bytes of the current member not yet read
        self._pad = 0
        self.ended = False

    def _skip(self, n: int) -> None:
        while n:
            chunk = self.src.read(min(n, 1 << 20))
            if not chunk:
                raise ArtifactError("truncated inside a member", member=self.what)
            n -= len(chunk)

    def read(self, n: int = 1 << 20) -> bytes:
        """Up to n bytes of the current member's content ("" at its end)."""
        if self._left <= 0:
            return b""
        chunk = self.src.read(min(n, self._left))
        if not chunk:
            raise ArtifactError(f"truncated: {self._left} bytes of member content missing",
                                member=self.what)
        self._left -= len(chunk)
        return chunk

    def read_all(self, limit: int) -> bytes:
        if self._left > limit:
            raise ArtifactError(f"member is {self._left} bytes, more than the {limit} allowed",
                                member=self.what)
        return read_exact(self, self._left, self.what) if self._left else b""

    def _block(self) -> bytes:
        block = self.src.read(BLOCK)
        if len(block) < BLOCK:
            block += read_exact(self.src, BLOCK - len(block), self.what) if block else b""
        return block

    def next(self) -> TarHeader | None:
        if self.ended:
            return None
        self._skip(self._left + self._pad)
        self._left = self._pad = 0
        raw = bytearray()
        pax: dict[str, str] = {}
        longname: str | None = None
        while True:
            block = self._block()
            if not block:
                raise ArtifactError("truncated: archive ends without an end-of-archive marker",
                                    member=self.what)
            if block == bytes(BLOCK):
                if read_exact(self.src, BLOCK, self.what) != bytes(BLOCK):
                    raise ArtifactError("corrupt end-of-archive marker", member=self.what)
                self.ended = True
                return None
            try:
                stored = _num(block[148:156], self.what)
            except ArtifactError:
                stored = -1
            if _checksum(block) != stored:
                raise ArtifactError("tar header checksum mismatch (corrupt or not a tar)",
                                    member=self.what)
            raw += block
            typeflag = block[156:157]
            size = _num(block[124:136], self.what)
            if size < 0:
                raise ArtifactError("tar header has a negative size", member=self.what)
            if typeflag in (b"x", b"g", b"L", b"K"):
                if size > MAX_META:
                    raise ArtifactError(f"oversized tar extended header ({size} bytes)",
                                        member=self.what)
                padded = -size % BLOCK
                data = read_exact(self.src, size + padded, self.what)
                raw += data
                data = data[:size]
                if typeflag == b"x":
                    pax.update(_parse_pax(data, self.what))
                elif typeflag == b"L":
                    longname = data.split(b"\0", 1)[0].decode("utf-8", "replace")
                continue  # global headers and long link names carry nothing we use
            name = _str(block[0:100])
            if block[257:262] == b"ustar" and block[345:500].strip(b"\0"):
                name = _str(block[345:500]) + "/" + name
            if longname is not None:
                name = longname
            if "path" in pax:
                name = pax["path"]
            if "size" in pax:
                try:
                    size = int(pax["size"])
                except ValueError:
                    raise ArtifactError("malformed PAX size", member=self.what) from None
            try:
                mtime = int(float(pax["mtime"])) if "mtime" in pax else 0
            except (ValueError, OverflowError):
                raise ArtifactError("malformed PAX mtime", member=self.what) from None
            hdr = TarHeader(name=name, size=size, mode=_num(block[100:108], self.what),
                            mtime=mtime or _num(block[136:148], self.what),
                            typeflag=typeflag, uid=_num(block[108:116], self.what),
                            gid=_num(block[116:124], self.what), uname=_str(block[265:297]),
                            gname=_str(block[297:329]), linkname=pax.get("linkpath") or _str(block[157:257]),
                            raw=bytes(raw))
            if hdr.typeflag in (b"1", b"2", b"3", b"4", b"5", b"6"):
                content = 0  # links, devices, dirs, fifos carry no data
            else:
                content = size
            self._left = content
            self._pad = -content % BLOCK
            return hdr

    def __iter__(self) -> Iterator[TarHeader]:
        while (hdr := self.next()) is not None:
            yield hdr


# --- writing -------------------------------------------------------------------------------

def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\0"


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


def _ustar_block(name: bytes, size: int, mode: int, mtime: int, typeflag: bytes,
                 uid: int = 0, gid: int = 0, uname: str = "", gname: str = "") -> bytes:
    b = bytearray(BLOCK)
    b[0:len(name)] = name
    b[100:108] = _octal(mode, 8)
    b[108:116] = _octal(uid, 8)
    b[116:124] = _octal(gid, 8)
    b[124:136] = _octal(size, 12)
    b[136:148] = _octal(mtime, 12)
    b[148:156] = b" " * 8
    b[156:157] = typeflag
    b[257:263] = b"ustar\0"
    b[263:265] = b"00"
    b[265:265 + len(uname)] = uname.encode()
    b[297:297 + len(gname)] = gname.encode()
    b[329:337] = _octal(0, 8)  # devmajor/devminor as Go writes them
    b[337:345] = _octal(0, 8)
    b[148:156] = f"{_checksum(bytes(b)):06o}".encode() + b"\0 "
    return bytes(b)


def header_bytes(name: str, size: int, *, mode: int = 0o600, mtime: int = 0,
                 uid: int = 0, gid: int = 0, uname: str = "", gname: str = "",
                 pax_size: bool = False) -> bytes:
    """The header block(s) of a regular file: USTAR when it fits, else a PAX record first.

    pax_size: always carry the size in a fixed-width PAX record, so that a header written
    before the size is known can be rewritten in place with the same length.
    """
    bname = name.encode()
    records = b""
    if len(bname) > 100:
        records += _pax_record("path", name)
        bname = bname[:100]
    if pax_size:
        records += _pax_record("size", f"{size:020d}")
    elif size >= 8 ** 11:
        records += _pax_record("size", str(size))
    out = b""
    if records:
        pax_name = b"PaxHeaders/" + bname[-80:]
        out += _ustar_block(pax_name, len(records), 0o600, mtime, b"x")
        out += records + bytes(-len(records) % BLOCK)
    return out + _ustar_block(bname, min(size, 8 ** 11 - 1), mode, mtime, b"0", uid, gid,
                              uname, gname)


def padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


END = bytes(2 * BLOCK)


class TarWriter:
    """Write a tar to a binary stream: members from bytes or from a stream of known size."""

    def __init__(self, out: BinaryIO, *, mtime: int = 0):
        self.out = out
        self.mtime = mtime

    def add_bytes(self, name: str, data: bytes, *, mode: int = 0o600) -> None:
        self.out.write(header_bytes(name, len(data), mode=mode, mtime=self.mtime))
        self.out.write(data)
        self.out.write(padding(len(data)))

    def add_stream(self, name: str, size: int, chunks: Iterator[bytes], *, mode: int = 0o600) -> None:
        self.out.write(header_bytes(name, size, mode=mode, mtime=self.mtime))
        written = 0
        for chunk in chunks:
            written += len(chunk)
            if written > size:
                break
            self.out.write(chunk)
        if written != size:
            raise ArtifactError(f"changed size while being written ({written} != {size} bytes)",
                                member=name)
        self.out.write(padding(size))

    def close(self) -> None:
        self.out.write(END)
