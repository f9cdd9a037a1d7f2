#!/usr/bin/env python3
"""Benchmark: delta artifacts (buildctl release delta) against the full gzip artifact.

Two ext4 images of --size MiB (default 512), 70% full of generated files, the new one with
--share (default 2%) of its files changed (tests/helpers/ext4_images.py: mke2fs -d, fixed
UUID, hash seed and times, so the same arguments give the same images). Then, in one run:

  reference  `mender-artifact write rootfs-image` (Debian's, gzip) of the new image: size, time
  buildctl   `buildctl release delta` on two bundles holding the two images: the delta
             artifact's size and write time (xdelta3 encode + artifact), the apply time
             (xdelta3 decode, as on the device), and the ratio to the reference's size
  apply      the device module (layers/meta-buildctl/.../rootfs-delta) installing the delta
             onto a file standing for the inactive partition: both passes (verify, write)
  --compare  the encoders considered, on the same images: xdelta3 -3 and -9 with secondary
             compression none/djw/lzma and the whole image as window, xdelta3's defaults, zchunk (zck + zck_delta_size: what a device would
             download), bsdiff (memory 17x the image, and minutes per 16 MiB: only for --size <= 16)

  python bench/delta.py [--size 512] [--share 0.02] [--workdir DIR] [--compare]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.ext4_images import make_pair  # noqa: E402


def mib(n: int) -> str:
    return f"{n / (1 << 20):8.2f} MiB"


def timed(cmd: list[str], **kw) -> float:
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.monotonic() - start


def full_reference(new: Path, work: Path) -> tuple[int, float]:
    out = work / "full.mender"
    t = timed(["mender-artifact", "write", "rootfs-image", "-f", str(new), "-n", "bench-2",
               "-t", "qemux86-64", "-o", str(out), "--no-progress"])
    return out.stat().st_size, t


def bundles(old: Path, new: Path, work: Path) -> tuple[Path, Path]:
    """Two minimal release bundles (release.json + the full artifact) around the images."""
    from buildctl.ota.mender.writer import ArtifactSpec, rootfs_payload, write_artifact
    out = []
    for version, image in (("1", old), ("2", new)):
        b = work / "bundles" / version
        d = b / "qemux86-64-release"
        d.mkdir(parents=True, exist_ok=True)
        name = f"bench-{version}"
        write_artifact(ArtifactSpec(name, ["qemux86-64"], rootfs_payload(image, name)),
                       d / "image.mender")
        (b / "release.json").write_text(json.dumps({
            "product": "bench", "version": version,
            "boards": [{"board": "qemux86-64", "dir": "qemux86-64-release"}],
            "files": [{"path": "qemux86-64-release/image.mender", "kind": "mender"}]}))
        out.append(b)
    return out[0], out[1]


def delta_cli(old_b: Path, new_b: Path, work: Path) -> dict:
    out = work / "deltas"
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([sys.executable, "-m", "buildctl", "release", "delta", "--from", str(old_b),
                        "--to", str(new_b), "--out", str(out), "--json"], cwd=work,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"release delta failed: {r.stderr}")
    data = json.loads(r.stdout)
    data["path"] = out / data["boards"][0]["dir"] / data["boards"][0]["artifact"]
    return data


def apply_module(delta: Path, old: Path, new: Path, work: Path) -> float:
    """The device module, both passes, onto a file standing for the inactive partition."""
    import hashlib
    from tests.helpers.delta_device import device, module_tree
    tree = work / "module-tree"
    shutil.rmtree(tree, ignore_errors=True)
    module_tree(delta, tree)
    dev = device(work / "device", old)
    start = time.monotonic()
    r = dev.run("ArtifactInstall", tree)
    t = time.monotonic() - start
    if r.returncode or dev.bootvars()["mender_boot_part"] != "3":
        sys.exit(f"the module failed: {r.stderr}")
    h = hashlib.sha256()
    with open(dev.part_b, "rb") as f:
        h.update(f.read(new.stat().st_size))
    with open(new, "rb") as f:
        if h.hexdigest() != hashlib.file_digest(f, "sha256").hexdigest():
            sys.exit("the module wrote something else than the new image")
    shutil.rmtree(work / "device")
    return t


def compare(old: Path, new: Path, work: Path, size_mib: int) -> list[tuple[str, int, float, float]]:
    rows = []
    window = str(min(1 << 30, old.stat().st_size))
    for level, sec in (("-3", "none"), ("-3", "djw"), ("-3", "lzma"), ("-9", "none"),
                       ("-9", "djw"), ("-9", "lzma")):
        d = work / f"x{level}-{sec}.vcdiff"
        te = timed(["xdelta3", "-e", level, "-S", sec, "-B", window, "-f", "-s", str(old),
                    str(new), str(d)])
        td = timed(["xdelta3", "-d", "-f", "-s", str(old), str(d), str(work / "out.img")])
        rows.append((f"xdelta3 {level} -S {sec} -B <image>", d.stat().st_size, te, td))
    d = work / "x-default.vcdiff"
    te = timed(["xdelta3", "-e", "-f", "-s", str(old), str(new), str(d)])
    td = timed(["xdelta3", "-d", "-f", "-s", str(old), str(d), str(work / "out.img")])
    rows.append(("xdelta3 defaults (-3, 64 MiB window)", d.stat().st_size, te, td))
    if shutil.which("zck"):
        zo, zn = work / "old.ext4.zck", work / "new.ext4.zck"
        timed(["zck", "-o", str(zo), str(old)])
        te = timed(["zck", "-o", str(zn), str(new)])
        r = subprocess.run(["zck_delta_size", str(zo), str(zn)], capture_output=True, text=True)
        size = _zck_download(r.stdout)
        rows.append(("zchunk (zck, download of changed chunks)", size, te, float("nan")))
    if shutil.which("bsdiff") and size_mib <= 16:
        d = work / "b.bsdiff"
        te = timed(["bsdiff", str(old), str(new), str(d)])
        td = timed(["bspatch", str(old), str(work / "out.img"), str(d)])
        rows.append(("bsdiff", d.stat().st_size, te, td))
    (work / "out.img").unlink(missing_ok=True)
    return rows


def _zck_download(text: str) -> int:
    # "Would download N of M bytes" (zchunk 1.2)
    for line in text.splitlines():
        words = line.split()
        if "download" in words:
            i = words.index("download")
            return int(words[i + 1])
    return -1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512, help="image size in MiB")
    ap.add_argument("--share", type=float, default=0.02, help="share of files changed")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--compare", action="store_true", help="also measure the alternatives")
    args = ap.parse_args()
    for tool in ("xdelta3", "mender-artifact", "mke2fs", "debugfs"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not installed (see .ci/run)")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-delta-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    pair = make_pair(work / "images", args.size, args.share)
    print(f"images: 2 x {args.size} MiB ext4, {pair.files} files, {pair.changed} changed "
          f"({pair.changed / pair.files:.1%}), made in {time.monotonic() - t0:.1f} s")
    full_size, full_t = full_reference(pair.new, work)
    print(f"reference  mender-artifact write rootfs-image (gzip): {mib(full_size)} in {full_t:6.1f} s")
    old_b, new_b = bundles(pair.old, pair.new, work)
    d = delta_cli(old_b, new_b, work)
    f = d["boards"][0]
    print(f"buildctl   release delta (xdelta3 VCDIFF artifact):    {mib(f['delta_size'])}, "
          f"write {f['write_seconds']:6.1f} s, apply {f['apply_seconds']:6.1f} s (host decode)")
    ratio = f["delta_size"] / full_size
    print(f"ratio      delta / full gzip artifact: {ratio:.2%} "
          f"(target < 10%: {'met' if ratio < 0.10 else 'NOT met'})")
    t = apply_module(d["path"], pair.old, pair.new, work)
    print(f"apply      device module, verify pass + write pass + check: {t:6.1f} s")
    if args.compare:
        print(f"\n{'encoder':44} {'size':>12} {'encode':>8} {'decode':>8}  % of full gzip")
        for name, size, te, td in compare(pair.old, pair.new, work, args.size):
            print(f"{name:44} {mib(size)} {te:7.1f}s {td:7.1f}s  {size / full_size:6.2%}")
    if not args.workdir:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
