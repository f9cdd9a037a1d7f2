"""Benchmark: read real layers (fetch-tool mirrors under /work/.mirror) and check one stack.

    python bench/layers_real.py [--mirror /work/.mirror]

Reads openembedded-core/meta, meta-openembedded/meta-oe + meta-python and meta-raspberrypi at
their scarthgap branches, prints counts, timings and the findings for a Raspberry Pi 4 board.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from buildctl.layers import GitFS, LayerRef, check_stack, read_layers  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", default="/work/.mirror")
    ap.add_argument("--rev", default="scarthgap")
    args = ap.parse_args()
    m = args.mirror
    refs = [
        LayerRef(f"{m}/openembedded+openembedded-core/repo", args.rev, "meta", "openembedded-core"),
        LayerRef(f"{m}/openembedded+meta-openembedded/repo", args.rev, "meta-oe", "meta-openembedded"),
        LayerRef(f"{m}/openembedded+meta-openembedded/repo", args.rev, "meta-python", "meta-openembedded"),
        LayerRef(f"{m}/agherzan+meta-raspberrypi/repo", args.rev, "", "meta-raspberrypi"),
    ]
    missing = [r.repo_path for r in refs if not os.path.isdir(r.repo_path)]
    if missing:
        print(f"mirrors missing: {', '.join(sorted(set(missing)))}")
        return 2
    fs = GitFS()
    t0 = time.perf_counter()
    infos = read_layers(refs, fs=fs)
    t1 = time.perf_counter()
    found = check_stack("rpi4", infos, series="scarthgap", machine="raspberrypi4-64", distro="nodistro", bootloader="u-boot")
    t2 = time.perf_counter()
    for i in infos:
        print(f"{i.name}: collections {i.collection_names}, {len(i.recipes)} recipes, {len(i.bbappends)} bbappends, "
              f"{len(i.machines)} machines")
    print(f"read {t1 - t0:.3f} s, check_stack {t2 - t1:.3f} s, findings: {len(found)}")
    for f in found:
        print(f"  {f}")
    fs.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
