"""Compressions of the header and data tars: none, gzip, xz ("lzma"), zstd.

Compression is chosen by the member name's suffix, as in mender-artifact (no sniffing).
Writers use both cores: gzip is compressed pigz-style in independent 1 MiB blocks (each primed
with the previous 32 KiB) by a thread pool, zstd uses its own worker threads. Output depends
only on the input and the level, never on thread timing.
"""
from __future__ import annotations

import io
import lzma
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from queue import Queue
from typing import BinaryIO

import zstandard

from buildctl.ota.mender.errors import ArtifactError
from buildctl.ota.mender.tario import Readable

try:  # ISA-L: 5-10x faster deflate at levels 0-3, same format
    from isal import isal_zlib as _fast_zlib
except ImportError:  # pragma: no cover - declared dependency, fallback for odd platforms
    _fast_zlib = None

_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, lzma.LZMAError, zlib.error,
                                             zstandard.ZstdError, ValueError)
if _fast_zlib is not None:
    _ERRORS += (_fast_zlib.error,)

SUFFIXES = {"": "none", ".gz": "gzip", ".xz": "lzma", ".zst": "zstd"}


@dataclass(frozen=True)
class Compression:
    """A writer's compression choice, with mender-artifact's CLI ids."""

    kind: str  # none | gzip | lzma | zstd
    level: int | None = None

    @property
    def suffix(self) -> str:
        return {"none": "", "gzip": ".gz", "lzma": ".xz", "zstd": ".zst"}[self.kind]

    @classmethod
    def parse(cls, text: str) -> "Compression":
        ids = {"none": cls("none"), "gzip": cls("gzip"), "lzma": cls("lzma"), "xz": cls("lzma"),
               "zstd": cls("zstd", 3), "zstd_fastest": cls("zstd", 1), "zstd_fast": cls("zstd", 3),
               "zstd_better": cls("zstd", 7), "zstd_best": cls("zstd", 19)}
        name, _, level = text.partition(":")
        if name not in ids:
            raise ValueError(f"unknown compression {text!r} (use one of {', '.join(ids)})")
        base = ids[name]
        return cls(base.kind, int(level)) if level else base


def split_suffix(name: str, stem: str) -> str | None:
    """The compression kind of ``<stem><suffix>``, or None if name is not of that shape."""
    if not name.startswith(stem):
        return None
    return SUFFIXES.get(name[len(stem):])


# --- reading -------------------------------------------------------------------------------

class _Bounded:
    """A reader that fails once more than ``limit`` bytes came out of it."""

    def __init__(self, src, limit: int | None, member: str):
        self.src = src
        self.limit = limit
        self.member = member
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.src.read(n if n > 0 else 1 << 20)
        except ArtifactError:
            raise
        except _ERRORS as exc:
            raise ArtifactError(f"cannot decompress: {exc}", member=self.member) from None
        self.total += len(data)
        if self.limit is not None and self.total > self.limit:
            raise ArtifactError(
                f"decompresses to more than {self.limit} bytes (decompression bomb?)",
                member=self.member)
        return data


def decompressor(src: Readable, kind: str, member: str, limit: int | None = None) -> Readable:
    """A reader of the decompressed bytes; errors name the member; output capped at limit."""
    if kind == "none":
        inner: object = src
    elif kind == "gzip":
        inner = _GzipReader(src, member)
    elif kind == "lzma":
        inner = _XzReader(src, member)
    elif kind == "zstd":
        inner = zstandard.ZstdDecompressor(max_window_size=1 << 27).stream_reader(
            _as_file(src), read_across_frames=True, read_size=1 << 18)
    else:
        raise ArtifactError(f"unsupported compression {kind}", member=member)
    return _Bounded(inner, limit, member)


class _AsFile(io.RawIOBase):
    def __init__(self, src: Readable):
        self.src = src

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.src.read(len(b))
        b[:len(data)] = data
        return len(data)


def _as_file(src: Readable):
    return io.BufferedReader(_AsFile(src), 1 << 18)


class _GzipReader:
    """gzip members one after another; fails on a truncated stream or trailing garbage."""

    def __init__(self, src: Readable, member: str):
        self.src = src
        self.member = member
        self._mod = _fast_zlib or zlib
        self._d = self._mod.decompressobj(31)
        self._buf = b""  # compressed input not yet given to the decompressor
        self._eof = False

    def read(self, n: int) -> bytes:
        while True:
            if self._d.eof:
                rest = self._d.unused_data + self._buf
                self._buf = b""
                if not rest:
                    rest = self.src.read(1 << 18)
                if not rest:
                    return b""
                if len(rest) < 2:
                    rest += self.src.read(1 << 18)
                if rest[:2] != b"\x1f\x8b":
                    raise ArtifactError("trailing garbage after the gzip stream", member=self.member)
                self._d = self._mod.decompressobj(31)
                self._buf = rest
            data = self._d.unconsumed_tail or self._buf
            self._buf = b""
            if not data:
                data = self.src.read(1 << 20)
                if not data:
                    raise ArtifactError("truncated gzip stream", member=self.member)
            out = self._d.decompress(data, n)
            if out:
                return out


class _XzReader:
    """xz streams one after another, with a cap on the decoder's memory (hostile dictionaries)."""

    MEMLIMIT = 256 << 20

    def __init__(self, src: Readable, member: str):
        self.src = src
        self.member = member
        self._d = lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=self.MEMLIMIT)
        self._in = b""

    def read(self, n: int) -> bytes:
        while True:
            if self._d.eof:
                rest = self._d.unused_data or self.src.read(1 << 20)
                if not rest:
                    return b""
                self._d = lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=self.MEMLIMIT)
                self._in = rest
            if self._d.needs_input and not self._in:
                self._in = self.src.read(1 << 20)
                if not self._in:
                    raise ArtifactError("truncated xz stream", member=self.member)
            data, self._in = self._in, b""
            out = self._d.decompress(data, n)
            if out:
                return out


class Prefetch:
    """Read a stream ahead in a background thread (decompression overlaps hashing).

    Holds at most ``depth`` chunks; exceptions are re-raised in the reading thread.
    """

    def __init__(self, src: Readable, chunk: int = 1 << 20, depth: int = 4):
        self._src = src
        self._chunk = chunk
        self._q: Queue = Queue(depth)
        self._cur = b""
        self._pos = 0
        self._stop = False
        self._done = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        try:
            while not self._stop:
                data = self._src.read(self._chunk)
                self._q.put(data)
                if not data:
                    return
        except BaseException as exc:  # handed over to the consumer
            self._q.put(exc)

    def read(self, n: int = -1) -> bytes:
        if self._pos >= len(self._cur):
            if self._done:
                return b""
            item = self._q.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if not item:
                self._done = True
                return b""
            self._cur, self._pos = item, 0
        if self._pos == 0 and (n < 0 or n >= len(self._cur)):  # hand over whole chunks, no copy
            out, self._cur = self._cur, b""
            return out
        end = len(self._cur) if n < 0 else min(len(self._cur), self._pos + n)
        out = self._cur[self._pos:end]
        self._pos = end
        return out

    def close(self) -> None:
        self._stop = True
        while self._t.is_alive():
            try:
                self._q.get_nowait()
            except Exception:
                self._t.join(0.01)


# --- writing -------------------------------------------------------------------------------

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown


class ParallelGzipWriter(io.RawIOBase):
    """gzip in independent blocks compressed by threads (pigz-style); deterministic bytes."""

    BLOCK = 1 << 20

    def __init__(self, out: BinaryIO, level: int = 2, threads: int = 2):
        self.out = out
        self.level = level
        self._mod = _fast_zlib if (_fast_zlib is not None and level <= 3) else zlib
        self._pool = ThreadPoolExecutor(max(1, threads))
        self._pending: list = []
        self._max_pending = 2 * max(1, threads)
        self._buf = bytearray()
        self._dict = b""
        self._crc = 0
        self._size = 0
        out.write(GZIP_HEADER)

    def writable(self) -> bool:
        return True

    def _compress(self, block: bytes, zdict: bytes) -> bytes:
        kw = {"zdict": zdict} if zdict else {}
        c = self._mod.compressobj(self.level, zlib.DEFLATED, -15, 8, 0, **kw)
        return c.compress(block) + c.flush(zlib.Z_SYNC_FLUSH)

    def _submit(self, block: bytes) -> None:
        self._crc = zlib.crc32(block, self._crc)
        self._size += len(block)
        self._pending.append(self._pool.submit(self._compress, block, self._dict))
        self._dict = block[-32768:]
        while len(self._pending) > self._max_pending:
            self.out.write(self._pending.pop(0).result())

    def write(self, data) -> int:
        n = len(data)
        if not self._buf and n == self.BLOCK:
            self._submit(bytes(data))
            return n
        self._buf += data
        while len(self._buf) >= self.BLOCK:
            self._submit(bytes(self._buf[:self.BLOCK]))
            del self._buf[:self.BLOCK]
        return n

    def close(self) -> None:
        if self.closed:
            return
        if self._buf:
            self._submit(bytes(self._buf))
            self._buf = bytearray()
        for fut in self._pending:
            self.out.write(fut.result())
        self._pending = []
        self._pool.shutdown()
        final = zlib.compressobj(self.level if self.level <= 9 else 9, zlib.DEFLATED, -15)
        self.out.write(final.flush(zlib.Z_FINISH))  # an empty last block ends the stream
        self.out.write(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
        super().close()


class _LzmaWriter(io.RawIOBase):
    def __init__(self, out: BinaryIO, level: int):
        self.out = out
        self._c = lzma.LZMACompressor(lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=level)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.out.write(self._c.compress(data))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.out.write(self._c.flush())
            super().close()


class _PlainWriter(io.RawIOBase):
    def __init__(self, out: BinaryIO):
        self.out = out

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.out.write(data)
        return len(data)


class _ZstdWriter(io.RawIOBase):
    def __init__(self, out: BinaryIO, level: int, threads: int):
        self.out = out
        # worker mode (threads >= 1) gives the same bytes for any thread count; 4 MiB jobs
        # keep memory low (the default job size doubles peak RSS for no better ratio)
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=max(1, threads), job_size=4 << 20, write_checksum=True)
        cctx = zstandard.ZstdCompressor(compression_params=params)
        self._w = cctx.stream_writer(out, closefd=False)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._w.write(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._w.flush(zstandard.FLUSH_FRAME)
            self._w.close()
            super().close()


def compressor(out: BinaryIO, comp: Compression, threads: int = 2) -> io.RawIOBase:
    """A writable that compresses into ``out``; close() finishes the stream (not ``out``)."""
    if comp.kind == "none":
        return _PlainWriter(out)
    if comp.kind == "gzip":
        return ParallelGzipWriter(out, comp.level if comp.level is not None else 2, threads)
    if comp.kind == "lzma":
        return _LzmaWriter(out, comp.level if comp.level is not None else 6)
    if comp.kind == "zstd":
        return _ZstdWriter(out, comp.level if comp.level is not None else 3, threads)
    raise ValueError(comp.kind)


def compress_bytes(data: bytes, comp: Compression) -> bytes:
    buf = io.BytesIO()
    w = compressor(buf, comp, threads=1)
    w.write(data)
    w.close()
    return buf.getvalue()
