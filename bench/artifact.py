#!/usr/bin/env python3
"""Benchmark: write and read/verify a rootfs-image artifact, buildctl vs mender-artifact.

Builds a 1 GiB ext4 image with mkfs.ext4 -d over a generated tree of mixed files (about
half pseudo-random/incompressible, half text-like/compressible, plus the filesystem's own
metadata and free space), then for gzip and zstd:
  write with buildctl and with `mender-artifact write rootfs-image`,
  read/verify each artifact with both tools (`buildctl artifact verify`, `mender-artifact validate`).
Each command runs as a child process; wall time and the child's peak RSS (wait4) are printed.
mender-artifact 3.9 (Debian bookworm) has no zstd (added upstream in 3.10): shown as n/a.

  python bench/artifact.py [--size-mib 1024] [--workdir DIR] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_tree(tree: Path, payload_mib: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    words = [hashlib.sha1(str(i).encode()).hexdigest()[: rng.randrange(2, 12)] for i in range(5000)]
    text_blocks = []
    for i in range(32):
        lines = []
        size = 0
        while size < (1 << 20):
            line = " ".join(rng.choice(words) for _ in range(rng.randrange(3, 14))) + "\n"
            lines.append(line)
            size += len(line)
        text_blocks.append("".join(lines).encode()[: 1 << 20])
    budget = payload_mib << 20
    n = 0
    while budget > 0:
        size = min(budget, rng.choice([4 << 10, 64 << 10, 512 << 10, 2 << 20, 8 << 20]))
        d = tree / f"d{n % 37:02d}"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / f"f{n:05d}.{'bin' if n % 2 else 'txt'}", "wb") as f:
            left = size
            while left > 0:
                take = min(left, 1 << 20)
                if n % 2:
                    f.write(rng.randbytes(take))
                else:
                    f.write(text_blocks[rng.randrange(32)][:take])
                left -= take
        budget -= size
        n += 1


def make_image(path: Path, size_mib: int, workdir: Path) -> None:
    tree = workdir / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    make_tree(tree, int(size_mib * 0.6))
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", str(tree), str(path)], check=True)
    shutil.rmtree(tree)


def _hwm(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_rss(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one child. Peak RSS is the child's own VmHWM, polled every
    10 ms (wait4's ru_maxrss would include the forking Python parent's pages)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _hwm(proc.pid))
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read()
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, argv))}\n{err.decode()}")
    return elapsed, peak


def pair(a: list[str], b: list[str] | None, reps: int):
    """Best time and max peak RSS of a and b, run alternately (a, b, a, b, ...) so that
    load from other processes on the machine hits both tools alike."""
    ra, rb = [], []
    for _ in range(reps):
        ra.append(run_rss(a))
        if b:
            rb.append(run_rss(b))
    fold = lambda runs: (min(r[0] for r in runs), max(r[1] for r in runs)) if runs else None  # noqa: E731
    return fold(ra), fold(rb)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--workdir")
    ap.add_argument("--markdown", help="also write the table as markdown to this file")
    ap.add_argument("--reps", type=int, default=3, help="runs per measurement (best time is shown)")
    args = ap.parse_args()
    ma = shutil.which("mender-artifact")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-artifact-"))
    work.mkdir(parents=True, exist_ok=True)
    img = work / "rootfs.ext4"
    if not img.exists() or img.stat().st_size != args.size_mib << 20:
        print(f"building {args.size_mib} MiB ext4 image in {work} ...", file=sys.stderr)
        make_image(img, args.size_mib, work)
    size = img.stat().st_size
    with open(img, "rb") as f:  # warm the page cache equally for both tools
        while f.read(1 << 24):
            pass
    bc = [sys.executable, "-m", "buildctl", "artifact"]
    rows = []
    for comp in ("gzip", "zstd"):
        bc_out, ma_out = work / f"bc-{comp}.mender", work / f"ma-{comp}.mender"
        for p in (bc_out, ma_out):
            p.unlink(missing_ok=True)
        bc_write = bc + ["write", "rootfs-image", "-f", str(img), "-n", "bench-1", "-t", "dev",
                         "--compression", "zstd_fast" if comp == "zstd" else "gzip", "-o", str(bc_out)]
        ma_write = [ma, "write", "rootfs-image", "-f", str(img), "-n", "bench-1", "-t", "dev",
                    "--compression", "gzip", "--no-progress", "-o", str(ma_out)] if ma else None
        (t_bc, rss_bc), ma_w = pair(bc_write, ma_write if comp == "gzip" else None, args.reps)
        rows.append((f"write {comp}", size, t_bc, rss_bc, ma_w, bc_out.stat().st_size))
        for label, art in (("buildctl-written", bc_out), ("mender-artifact-written", ma_out)):
            if not art.exists():
                continue
            (t, rss), ma_r = pair(bc + ["verify", str(art)],
                                  [ma, "validate", str(art)] if ma and comp == "gzip" else None,
                                  args.reps)
            rows.append((f"read/verify {comp} ({label})", size, t, rss, ma_r, art.stat().st_size))
    mib = size / (1 << 20)
    lines = [f"image: {mib:.0f} MiB ext4 ({img}), {os.cpu_count()} CPUs, "
             f"mender-artifact: {subprocess.run([ma, '--version'], capture_output=True, text=True).stdout.strip() if ma else 'missing'}",
             "",
             "| operation | buildctl MB/s | mender-artifact MB/s | ratio bc/ma | buildctl peak RSS MiB | mender-artifact peak RSS MiB | artifact MiB |",
             "|---|---|---|---|---|---|---|"]
    for op, size_b, t, rss, ma_res, art_size in rows:
        mbs = size_b / 1e6 / t
        if ma_res:
            ma_mbs = size_b / 1e6 / ma_res[0]
            ma_txt, ratio, ma_rss = f"{ma_mbs:.0f}", f"{mbs / ma_mbs:.2f}", f"{ma_res[1]:.0f}"
        else:
            ma_txt = ratio = ma_rss = "n/a (3.9: no zstd)" if "zstd" in op else "n/a"
        lines.append(f"| {op} | {mbs:.0f} | {ma_txt} | {ratio} | {rss:.0f} | {ma_rss} | "
                     f"{art_size / (1 << 20):.0f} |")
    lines.append("")
    lines.append("MB/s = uncompressed image bytes / wall time of the whole command (process start "
                 f"included), best of {args.reps} alternating runs; peak RSS = the child's VmHWM.")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
