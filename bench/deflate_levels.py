#!/usr/bin/env python3
"""Benchmark: what each gzip writer choice costs per CPU second, at what size (issue 7 item 9).

The write target (2x mender-artifact 3.9 at no larger output) is a question of deflate CPU
per byte at a given ratio, since both tools already keep both cores busy. This measures, on
samples of this host's files (one thread, CPU time, so other load on the machine matters
little), the current writer (zlib-ng, 1 MiB blocks primed with 32 KiB: one gzip stream) and
the alternatives: zlib-ng 3, libdeflate (PyPI ``deflate``) in independent gzip members
(multi-member gzip: the only way to use it in parallel) at 1 and 4 MiB, and zlib 6.
Size and CPU are relative to the current default (zlib-ng 4).

  python bench/deflate_levels.py [--mib 48]
"""
from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import time
import zlib

TEXT = (".py", ".txt", ".md", ".rst", ".html", ".h", ".pm", ".pod")


def sample(kind: str, size: int) -> bytes:
    buf = bytearray()
    if kind == "docs":
        roots = ["/usr/share/doc", sysconfig.get_paths()["stdlib"], "/usr/share/perl5", "/usr/include"]
        want = lambda p, head: p.endswith(TEXT) or os.path.basename(p) == "copyright"  # noqa: E731
    else:
        roots = ["/usr/lib", "/usr/bin"]
        want = lambda p, head: head == b"\x7fELF"  # noqa: E731
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                if want(path, data[:4]):
                    buf += data
                if len(buf) >= size:
                    return bytes(buf[:size])
    return bytes(buf)


def primed(data: bytes, level: int, mod) -> int:
    """Bytes of the current writer's stream: 1 MiB blocks, 32 KiB dictionary, sync flush."""
    out, prev, block = 0, b"", 1 << 20
    for i in range(0, len(data), block):
        b = data[i:i + block]
        kw = {"zdict": prev} if prev else {}
        c = mod.compressobj(level, zlib.DEFLATED, -15, **kw)
        out += len(c.compress(b)) + len(c.flush(zlib.Z_SYNC_FLUSH))
        prev = b[-32768:]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=48, help="sample size per kind (MiB)")
    args = ap.parse_args()
    from zlib_ng import zlib_ng
    try:
        import deflate
    except ImportError:
        raise SystemExit("pip install deflate (libdeflate) to compare it") from None
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; one thread, CPU seconds")
    print("| sample | writer | bytes | size vs default | CPU s | CPU vs default (>1: cheaper) |")
    print("|---|---|---|---|---|---|")
    for kind in ("docs", "binaries"):
        data = sample(kind, args.mib << 20)
        rows = []

        def measure(label, fn):
            t = time.process_time()
            n = fn()
            rows.append((label, n, time.process_time() - t))

        measure("zlib-ng 4, one stream (default)", lambda: primed(data, 4, zlib_ng))
        measure("zlib-ng 3, one stream", lambda: primed(data, 3, zlib_ng))
        for level in (3, 4, 5, 6):
            for mib in (1, 4):
                step = mib << 20
                measure(f"libdeflate {level}, {mib} MiB members",
                        lambda step=step, level=level: sum(
                            len(deflate.gzip_compress(data[i:i + step], level))
                            for i in range(0, len(data), step)))
        measure("zlib 6, one stream", lambda: len(zlib.compress(data, 6)))
        _, base_n, base_t = rows[0]
        for label, n, t in rows:
            print(f"| {kind} {len(data) >> 20} MiB | {label} | {n} | {n / base_n:.3f} | {t:.2f} | "
                  f"{base_t / t:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
