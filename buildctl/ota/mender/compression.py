"""Compressions of the header and data tars: none, gzip, xz ("lzma"), zstd.

Compression is chosen by the member name's suffix, as in mender-artifact (no sniffing).
Writers use both cores: gzip is compressed pigz-style in independent 1 MiB blocks (each primed
with the previous 32 KiB, ended with a sync flush) by a thread pool, so the result is ONE gzip
stream that every gzip reader takes (Go's, zlib's inflate in the C++ client and libarchive,
readers that stop after the first member); zstd uses its own worker threads. Output depends
only on the input and the level, never on thread timing.

The default gzip level is zlib-ng's 4: measured on ext4 images of binaries and of docs and
Python files (bench/artifact.py) it is no larger than mender-artifact 3.9's pgzip output while
costing less CPU than zlib-ng 5-6 or zlib 6 (see docs/benchmarks.md).
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

try:  # ISA-L: fast inflate and crc32 (reading), same format
    from isal import isal_zlib as _fast_zlib
except ImportError:  # pragma: no cover - declared dependency, fallback for odd platforms
    _fast_zlib = None
try:  # zlib-ng: zlib's format and API, a better ratio per CPU second (writing)
    from zlib_ng import zlib_ng as _deflate_mod
except ImportError:  # pragma: no cover - declared dependency, fallback for odd platforms
    _deflate_mod = zlib

DEFAULT_GZIP_LEVEL = 4
_crc32 = _fast_zlib.crc32 if _fast_zlib is not None else zlib.crc32
_crc32_combine = (_fast_zlib.crc32_combine if _fast_zlib is not None
                  else getattr(_deflate_mod, "crc32_combine", None))

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

    PIECE = 1 << 16

    def __init__(self, src: Readable, member: str):
        self.src = src
        self.member = member
        self._mod = _fast_zlib or zlib
        self._d = self._mod.decompressobj(31)
        self._buf = memoryview(b"")  # compressed input not yet given to the decompressor

    def _more(self) -> bool:
        data = self.src.read(1 << 20)
        self._buf = memoryview(data)
        return bool(data)

    def read(self, n: int) -> bytes:
        while True:
            if self._d.eof:
                rest = bytes(self._d.unused_data) + bytes(self._buf)
                if len(rest) < 2:
                    rest += self.src.read(1 << 18)
                if not rest:
                    return b""
                if rest[:2] != b"\x1f\x8b":
                    raise ArtifactError("trailing garbage after the gzip stream", member=self.member)
                self._d = self._mod.decompressobj(31)
                self._buf = memoryview(rest)
            data = self._d.unconsumed_tail
            if not data:
                if not self._buf and not self._more():
                    raise ArtifactError("truncated gzip stream", member=self.member)
                # small input pieces: the tail that max_length leaves over is copied on every
                # call, which is quadratic for a large piece of well-compressed zeros
                data, self._buf = self._buf[:self.PIECE], self._buf[self.PIECE:]
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
    """One gzip stream of independently deflated blocks, compressed by threads (pigz-style).

    Each block is primed with the previous block's last 32 KiB and ended with a sync flush
    (byte-aligned, not final), so the blocks concatenate into a single deflate stream; an
    empty final block and the trailer close it. Workers also compute each block's crc32,
    combined in order here. The bytes depend only on the input and the level.
    """

    BLOCK = 1 << 20

    def __init__(self, out: BinaryIO, level: int = DEFAULT_GZIP_LEVEL, threads: int = 2):
        self.out = out
        self.level = level
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

    def _compress(self, block: bytes, zdict: bytes) -> tuple[bytes, int]:
        kw = {"zdict": zdict} if zdict else {}
        c = _deflate_mod.compressobj(self.level, zlib.DEFLATED, -15, 8, 0, **kw)
        return c.compress(block) + c.flush(zlib.Z_SYNC_FLUSH), _crc32(block)

    def _drain(self, keep: int) -> None:
        while len(self._pending) > keep:
            fut, n = self._pending.pop(0)
            data, crc = fut.result()
            self.out.write(data)
            if _crc32_combine is not None:
                self._crc = _crc32_combine(self._crc, crc, n)
            self._size += n

    def _submit(self, block: bytes) -> None:
        if _crc32_combine is None:  # pragma: no cover - only without isal and zlib-ng
            self._crc = zlib.crc32(block, self._crc)
        self._pending.append((self._pool.submit(self._compress, block, self._dict), len(block)))
        self._dict = block[-32768:]
        self._drain(self._max_pending)

    def write(self, data) -> int:
        n = len(data)
        if not self._buf and n == self.BLOCK:
            self._submit(bytes(data))
            return n
        self._buf += data
        if len(self._buf) >= self.BLOCK:
            view = memoryview(self._buf)
            whole = len(self._buf) - len(self._buf) % self.BLOCK
            for off in range(0, whole, self.BLOCK):
                self._submit(bytes(view[off:off + self.BLOCK]))
            view.release()
            del self._buf[:whole]
        return n

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._buf:
                self._submit(bytes(self._buf))
                self._buf = bytearray()
            self._drain(0)
        finally:
            self._pool.shutdown(cancel_futures=True)
        self.out.write(b"\x03\x00")  # an empty final block (fixed Huffman) ends the stream
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
        return ParallelGzipWriter(out, comp.level if comp.level is not None else DEFAULT_GZIP_LEVEL,
                                  threads)
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
