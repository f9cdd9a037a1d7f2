#!/usr/bin/env python3
"""Benchmark: new-board's machine probe vs BitBake's own datastore on the kit's real BSPs.

For each MACHINE: buildctl reads the stack from git objects (no checkout) and evaluates the
machine conf with its includes (`probe_machine`); the reference parses the same files with
BitBake's `bb` ConfHandler (from the bitbake-setup package) from an exported conf/ tree (the
export is not timed). Then `board check` over the whole meta-mender-community checkout.

  python bench/boards.py [--kit ../shared/yocto-kit] [--repeat 3]
"""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from buildctl.boards import probe  # noqa: E402
from buildctl.boards.check import GitSource, check_repository  # noqa: E402
from buildctl.layers.gitfs import GitFS  # noqa: E402
from buildctl.layers.layerinfo import LayerRef  # noqa: E402
from tests.helpers import bb_oracle  # noqa: E402

CORE = ("git.openembedded.org.openembedded-core", "meta", "openembedded-core")
STACKS = {
    "raspberrypi4-64": [CORE, ("github.com.agherzan.meta-raspberrypi.git", "", "meta-raspberrypi")],
    "olimex-imx8mp-evb": [CORE, ("github.com.Freescale.meta-freescale.git", "", "meta-freescale"),
                          ("github.com.Freescale.meta-freescale-3rdparty.git", "", "meta-freescale-3rdparty")],
    "jetson-orin-nano-devkit": [CORE, ("github.com.OE4T.meta-tegra.git", "", "meta-tegra")],
    "qemux86-64": [CORE],
    "vexpress-qemu-flash": [CORE, ("github.com.mendersoftware.meta-mender.git", "meta-mender-qemu", "meta-mender")],
}


def export(kit: Path, repo: str, layer: str, dest: Path) -> Path:
    prefix = f"{layer}/conf" if layer else "conf"
    data = subprocess.run(["git", f"--git-dir={kit / repo}", "archive", "--format=tar", "scarthgap", prefix],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        tf.extractall(dest / repo, filter="data")
    return dest / repo / layer if layer else dest / repo


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kit", type=Path, default=ROOT.parent / "shared" / "yocto-kit")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"{'machine':26} {'buildctl cold':>14} {'buildctl warm':>14} {'bitbake bb':>11}  same values")
    for machine, stack in STACKS.items():
        refs = [LayerRef(str(a.kit / r), "scarthgap", l, n) for r, l, n in stack]
        t = time.perf_counter()
        fs = GitFS()
        layers = probe.read_stack(refs, fs=fs)
        mine = probe.probe_machine(layers, machine)
        cold = time.perf_counter() - t
        warm = min(_timed(lambda: probe.probe_machine(probe.read_stack(refs, fs=fs), machine))
                   for _ in range(a.repeat))
        with tempfile.TemporaryDirectory() as tmp:
            dirs = [export(a.kit, r, l, Path(tmp)) for r, l, _ in stack]
            text = probe.PROBE_BEFORE + f"require conf/machine/{machine}.conf\n" + probe.PROBE_AFTER
            names = ["KERNEL_IMAGETYPE", "IMAGE_FSTYPES", "SERIAL_CONSOLES", "MACHINE_FEATURES",
                     "PREFERRED_PROVIDER_virtual/bootloader", "EFI_PROVIDER", "UBOOT_MACHINE"]
            init = {"MACHINE": machine, "BBPATH": ":".join(map(str, dirs))}
            ref = min(_timed(lambda: bb_oracle.evaluate(text, names, init)) for _ in range(a.repeat))
            theirs = bb_oracle.evaluate(text, names, init)
        same = all(" ".join((theirs[n] or "").split()) == (mine.values[n].value or "") for n in names)
        print(f"{machine:26} {cold * 1000:11.0f} ms {warm * 1000:11.0f} ms {ref * 1000:8.0f} ms  {same}")
    src = GitSource(str(a.kit / "github.com.mendersoftware.meta-mender-community.git"), "scarthgap")
    t = time.perf_counter()
    found = check_repository(src, "scarthgap")
    print(f"board check, meta-mender-community scarthgap (whole checkout): "
          f"{(time.perf_counter() - t) * 1000:.0f} ms, {len(found)} findings")
    return 0


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    raise SystemExit(main())
