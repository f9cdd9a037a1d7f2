"""A sandboxed device for the rootfs-delta update module: two plain files standing for the A/B
root partitions, a key=value file standing for the bootloader environment (with a small
stand-in for fw_printenv/fw_setenv), and the FILE_TREE a Mender client gives a module, taken
from a real artifact's bytes (header/type-info and meta-data as stored in header.tar*,
files/ from data/0000.tar*)."""
from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "layers/meta-buildctl/recipes-mender/rootfs-delta-module/files/rootfs-delta"

# stands for fw_printenv NAME... / fw_setenv -s - (key=value lines on stdin), on $BOOTENV_FILE
FAKE_ENV = """#!/bin/bash
set -e
case "$1" in
print) shift; for k in "$@"; do grep "^$k=" "$BOOTENV_FILE" || true; done ;;
set) shift; [ "$1" = -s ] && [ "$2" = - ] || { echo "usage: set -s -" >&2; exit 2; }
     cp "$BOOTENV_FILE" "$BOOTENV_FILE.n"
     while IFS='=' read -r k v; do
       [ -n "$k" ] || continue
       grep -v "^$k=" "$BOOTENV_FILE.n" > "$BOOTENV_FILE.m" || true
       echo "$k=$v" >> "$BOOTENV_FILE.m"; mv "$BOOTENV_FILE.m" "$BOOTENV_FILE.n"
     done
     mv "$BOOTENV_FILE.n" "$BOOTENV_FILE" ;;
*) exit 2 ;;
esac
"""


def _member(tar: tarfile.TarFile, prefix: str) -> tuple[str, bytes]:
    for m in tar.getmembers():
        if m.name.startswith(prefix):
            data = tar.extractfile(m).read()
            if m.name.endswith(".gz"):
                data = gzip.decompress(data)
            return m.name, data
    raise KeyError(prefix)


def module_tree(artifact: Path, dest: Path) -> Path:
    """The FILE_TREE of the artifact's payload 0000: header/, files/, tmp/."""
    with tarfile.open(artifact) as outer:
        _, header = _member(outer, "header.tar")
        _, data = _member(outer, "data/0000.tar")
    (dest / "header").mkdir(parents=True)
    (dest / "files").mkdir()
    (dest / "tmp").mkdir()
    with tarfile.open(fileobj=io.BytesIO(header)) as h:
        for name in ("header-info", "headers/0000/type-info", "headers/0000/meta-data"):
            (dest / "header" / Path(name).name).write_bytes(h.extractfile(name).read())
    with tarfile.open(fileobj=io.BytesIO(data)) as d:
        for m in d.getmembers():
            (dest / "files" / m.name).write_bytes(d.extractfile(m).read())
    return dest


@dataclass
class Device:
    root: Path
    part_a: Path  # ".../rootfs-p2": mender_boot_part 2
    part_b: Path  # ".../rootfs-p3"
    bootenv: Path
    env: dict

    def run(self, state: str, tree: Path) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(MODULE), state, str(tree)], env=self.env,
                              capture_output=True, text=True, timeout=300)

    def bootvars(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.bootenv.read_text().splitlines() if line)


def device(root: Path, running: Path, *, spare: int = 1 << 20) -> Device:
    """A device booted from partition A holding ``running`` (plus ``spare`` bytes of other
    data after it, as a partition larger than its filesystem has); B holds other bytes."""
    root.mkdir(parents=True, exist_ok=True)
    a, b = root / "rootfs-p2", root / "rootfs-p3"
    with open(running, "rb") as src, open(a, "wb") as dst:
        shutil.copyfileobj(src, dst)
        dst.write(b"\xa5" * spare)
    size = a.stat().st_size + spare
    with open(b, "wb") as f:  # what an earlier release left there
        f.write(os.urandom(4096) * (size // 4096))
    bootenv = root / "bootenv"
    bootenv.write_text("mender_boot_part=2\nmender_boot_part_hex=2\nupgrade_available=0\n"
                       "bootcount=0\n")
    fake = root / "fw_env"
    fake.write_text(FAKE_ENV)
    fake.chmod(0o755)
    env = dict(os.environ, ROOTFS_DELTA_PART_A=str(a), ROOTFS_DELTA_PART_B=str(b),
               ROOTFS_DELTA_PRINTENV=f"{fake} print", ROOTFS_DELTA_SETENV=f"{fake} set",
               ROOTFS_DELTA_CONF=str(root / "none.conf"),
               ROOTFS_DELTA_MENDER_CONF=str(root / "none.json"), BOOTENV_FILE=str(bootenv))
    return Device(root, a, b, bootenv, env)
