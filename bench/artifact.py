#!/usr/bin/env python3
"""Benchmark: buildctl vs mender-artifact writing and verifying rootfs-image artifacts.

Two kinds of content, each an ext4 image made with mkfs.ext4 -d from this host's own files
(about 75% full, the rest is free space and filesystem metadata):
  binaries  512 MiB: ELF executables and shared libraries (/usr/bin, /usr/lib, ...)
  docs      256 MiB: documentation and Python/Perl/C-header sources (text)
For each image, alternating the two tools run for run (other load on the machine hits both
alike), best of --reps:
  write:  `buildctl artifact write rootfs-image` (default gzip) vs
          `mender-artifact write rootfs-image` (its default gzip); sizes compared;
  verify: `buildctl artifact verify` vs `mender-artifact read` on the same artifact
          (both fully decompress and hash the payload), for each tool's artifact.
Every buildctl gzip artifact is also read by each gzip reader a device or server uses:
mender-artifact (Go), libarchive's bsdtar (the C++ client's reader) and zlib inflate of a
single stream (a reader that stops after the first gzip member must still see everything).
Each figure is the child's wall time and CPU time (user+sys, from wait4); ratios > 1 mean
buildctl is faster / smaller.

  python bench/artifact.py [--kinds binaries,docs] [--reps 3] [--workdir DIR] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"binaries": 512, "docs": 256}
TEXT = (".py", ".txt", ".md", ".rst", ".html", ".pyi", ".pm", ".pod", ".h")


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _is_text(path: str) -> bool:
    return path.endswith(TEXT) or os.path.basename(path) in ("copyright", "README", "NEWS")


def sources(kind: str):
    if kind == "binaries":
        return ["/usr/bin", "/usr/sbin", "/usr/libexec", "/usr/lib"], _is_elf
    return (["/usr/share/doc", sysconfig.get_paths()["stdlib"], "/usr/lib/python3",
             "/usr/share/perl5", "/usr/include"], _is_text)


def make_image(kind: str, size_mib: int, out: Path) -> tuple[int, int]:
    """An ext4 image of this host's files of one kind; returns (files, bytes of files)."""
    roots, wanted = sources(kind)
    tree = out.with_suffix(".tree")
    shutil.rmtree(tree, ignore_errors=True)
    budget, total, count, seen = int((size_mib << 20) * 0.75), 0, 0, set()
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                if os.path.islink(path) or not os.path.isfile(path) or not wanted(path):
                    continue
                st = os.stat(path)
                if st.st_ino in seen or not st.st_size or total + st.st_size > budget:
                    continue
                seen.add(st.st_ino)
                dst = tree / os.path.relpath(path, "/")
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dst)
                total += st.st_size
                count += 1
    with open(out, "wb") as f:
        f.truncate(size_mib << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-i", "4096", "-E", "root_owner=0:0", "-d", str(tree),
                    str(out)], check=True)
    shutil.rmtree(tree)
    return count, total


def run(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys) of one child; fails loudly."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"failed ({code}): {' '.join(map(str, argv))}\n{err.decode()}")
    return wall, usage.ru_utime + usage.ru_stime


def pair(ours: list[str], theirs: list[str], reps: int):
    """Best wall and best CPU of each, run alternately (ours, theirs, ours, theirs, ...)."""
    a, b = [], []
    for _ in range(reps):
        a.append(run(ours))
        b.append(run(theirs))
    best = lambda runs: (min(r[0] for r in runs), min(r[1] for r in runs))  # noqa: E731
    return best(a), best(b)


def readers_check(artifact: Path, image: Path) -> str:
    """Every gzip reader sees the whole payload of buildctl's artifact."""
    want = hashlib.sha256(image.read_bytes()).hexdigest()
    with tarfile.open(artifact) as t:
        member = next(n for n in t.getnames() if n.startswith("data/"))
        blob = t.extractfile(member).read()
    d = zlib.decompressobj(31)  # stops at the end of the first gzip member
    inner = d.decompress(blob)
    with tarfile.open(fileobj=io.BytesIO(inner)) as t:
        got = hashlib.sha256(t.extractfile(image.name).read()).hexdigest()
    single = got == want and d.eof and not d.unused_data
    del inner
    out = ["zlib single stream: " + ("ok" if single else "FAILED")]
    bsdtar = shutil.which("bsdtar")
    if bsdtar:
        tmp = artifact.with_suffix(".data.tar.gz")
        tmp.write_bytes(blob)
        got = subprocess.run([bsdtar, "-xOf", str(tmp), image.name], capture_output=True).stdout
        tmp.unlink()
        out.append("libarchive: " + ("ok" if hashlib.sha256(got).hexdigest() == want else "FAILED"))
    ok = subprocess.run(["mender-artifact", "validate", str(artifact)], capture_output=True)
    out.append("mender-artifact validate: " + ("ok" if ok.returncode == 0 else "FAILED"))
    return ", ".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", default="binaries,docs")
    ap.add_argument("--reps", type=int, default=3, help="runs per measurement (best is shown)")
    ap.add_argument("--workdir")
    ap.add_argument("--markdown", help="also write the table as markdown to this file")
    args = ap.parse_args()
    ma = shutil.which("mender-artifact")
    if not ma:
        raise SystemExit("mender-artifact is needed (apt-get install -y mender-artifact)")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-artifact-"))
    work.mkdir(parents=True, exist_ok=True)
    bc = [sys.executable, "-m", "buildctl", "artifact"]
    version = subprocess.run([ma, "--version"], capture_output=True, text=True).stdout.strip()
    lines = [f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.1f}, {version}", "",
             "| image | operation | buildctl wall s | ref wall s | wall ratio | buildctl CPU s "
             "| ref CPU s | CPU ratio | buildctl MiB | ref MiB | size bc/ref |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for kind in args.kinds.split(","):
        size = KINDS[kind]
        img = work / f"{kind}.ext4"
        if not img.exists() or img.stat().st_size != size << 20:
            print(f"building {size} MiB ext4 of {kind} in {work} ...", file=sys.stderr)
            n, total = make_image(kind, size, img)
            notes.append(f"{kind}: {n} files, {total / (1 << 20):.0f} MiB of files in {size} MiB")
        with open(img, "rb") as f:  # warm the page cache equally for both tools
            while f.read(1 << 24):
                pass
        ours, theirs = work / f"bc-{kind}.mender", work / f"ma-{kind}.mender"
        w_bc, w_ma = pair(bc + ["write", "rootfs-image", "-f", str(img), "-n", "bench-1", "-t", "dev",
                                "-o", str(ours)],
                          [ma, "write", "rootfs-image", "-f", str(img), "-n", "bench-1", "-t", "dev",
                           "--no-progress", "-o", str(theirs)], args.reps)
        s_bc, s_ma = ours.stat().st_size, theirs.stat().st_size
        rows = [("write gzip (default)", w_bc, w_ma, s_bc, s_ma)]
        for label, art in (("buildctl's", ours), ("mender-artifact's", theirs)):
            v_bc, v_ma = pair(bc + ["verify", str(art)], [ma, "read", str(art)], args.reps)
            rows.append((f"verify vs read ({label} artifact)", v_bc, v_ma, art.stat().st_size,
                         art.stat().st_size))
        for op, (wb, cb), (wm, cm), sb, sm in rows:
            lines.append(f"| {kind} {size} MiB | {op} | {wb:.2f} | {wm:.2f} | {wm / wb:.2f} | "
                         f"{cb:.2f} | {cm:.2f} | {cm / cb:.2f} | {sb / (1 << 20):.1f} | "
                         f"{sm / (1 << 20):.1f} | {sb / sm:.3f} |")
        notes.append(f"{kind}: readers of buildctl's artifact: {readers_check(ours, img)}")
    lines += ["", f"load average after: {os.getloadavg()[0]:.1f}; best of {args.reps} alternating "
              "runs; ratio = mender-artifact / buildctl (> 1: buildctl faster); size bc/ref < 1: "
              "buildctl smaller.", *notes]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
