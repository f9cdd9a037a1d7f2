"""A dual-rootfs device for the OTA round trip: what a Mender qemux86-64 uefiimg is, made small.

The disk (MBR, built without root: mkfs.vfat + mtools, mkfs.ext4 -d, partitions written at
their offsets) holds

  1  ESP (FAT): GRUB (grub-mkstandalone) whose grub.cfg keeps Mender's boot logic, the Debian
     kernel and a small initramfs that loads the virtio disk driver and switches to the root
     partition the kernel command line names
  2  rootfs A (ext4)    3  rootfs B (ext4, empty until an update writes it)
  4  data (ext4): /data/mender (the Mender client's state) and the GRUB environment file

Each rootfs is busybox plus Debian's mender-client 3.4 (the real binary and the shared
libraries it links, copied from this host) with /etc/mender/mender.conf naming /dev/vda2 and
/dev/vda3, /etc/mender/artifact_info, and fw_printenv / fw_setenv: the tools the client sets
the boot environment with, here writing the GRUB environment block in place.

GRUB does what meta-mender's grub integration does: with upgrade_available=1 it counts the
boot (bootcount=1); when the count was already 1 (the new rootfs never committed) it switches
mender_boot_part back and clears upgrade_available. A rootfs that does not mount (a broken
update) makes the initramfs fail and the kernel panic; like meta-mender's GRUB command line,
this one has no panic=N, so the kernel hangs until buildctl resets the VM (a board's
watchdog), and GRUB rolls back.

The kernel is Debian's cloud kernel: it has no AHCI driver, so the disk is on virtio.
"""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.devtest import fixture

MIB = 1 << 20
SIZES_MIB = {"esp": 40, "rootfs": 36, "data": 8}
MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
           "virtio_blk")
ENV_FILE = "grubenv"  # on the data partition

GRUB_CFG = """set root=(hd0,msdos1)
set env=(hd0,msdos4)/grubenv
load_env -f $env
if [ "$upgrade_available" = "1" ]; then
  if [ "$bootcount" = "1" ]; then
    echo "grub: the update did not commit: rolling back"
    if [ "$mender_boot_part" = "2" ]; then set mender_boot_part=3; else set mender_boot_part=2; fi
    set upgrade_available=0
    set bootcount=0
  else
    set bootcount=1
  fi
  save_env -f $env mender_boot_part upgrade_available bootcount
fi
set timeout=0
echo "grub: booting partition $mender_boot_part"
linux /vmlinuz root=/dev/vda$mender_boot_part console=ttyS0 quiet
initrd /initrd.gz
boot
"""

INITRAMFS_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
for m in {modules}; do insmod /lib/modules/$m.ko; done
root=$(sed -n 's/.*root=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
i=0; while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /newroot
mount -t ext4 -o ro "$root" /newroot || echo "initramfs: cannot mount $root"
umount /proc
umount /dev
echo "initramfs: switching to $root"
exec switch_root /newroot /sbin/init
"""

ROOTFS_INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mount -t ext4 /dev/vda4 /data
mkdir -p /data/mender
echo "fixture: $(cat /etc/mender/artifact_info) on $(sed -n 's/.*root=\\([^ ]*\\).*/\\1/p' /proc/cmdline)"
printf '\\nfixture login: ' > /dev/ttyS0
read user < /dev/ttyS0
echo "logged in as $user" > /dev/ttyS0
exec setsid sh -c 'exec sh -i </dev/ttyS0 >/dev/ttyS0 2>&1'
"""

# The boot environment tools the Mender client calls (the U-Boot tools' interface, as
# meta-mender's grub-mender-grubenv provides it): print NAME... as NAME=VALUE lines; set
# from `-s -` (NAME VALUE lines on stdin) or NAME VALUE arguments. The block is rewritten in
# place (same blocks on disk), so GRUB's save_env and this script share one file.
FW_PRINTENV = """#!/bin/sh
env=/data/grubenv
if [ $# -eq 0 ]; then grep -v '^#' $env; exit 0; fi
for name in "$@"; do
  line=$(grep "^$name=" $env) || {{ echo "## Error: \\"$name\\" not defined" >&2; exit 1; }}
  echo "$line"
done
"""

FW_SETENV = """#!/bin/sh
env=/data/grubenv
vars=$(grep -v '^#' $env)
set_one() {{
  vars=$(printf '%s\\n' "$vars" | grep -v "^$1=")
  [ -n "$2" ] && vars=$(printf '%s\\n%s=%s' "$vars" "$1" "$2")
}}
if [ "$1" = "-s" ]; then
  while read -r name value; do [ -n "$name" ] && set_one "$name" "$value"; done
else
  name=$1; shift; set_one "$name" "$*"
fi
block=$(printf '# GRUB Environment Block\\n%s\\n' "$(printf '%s\\n' "$vars" | grep -v '^$')")
pad=$((1024 - ${{#block}} - 1))
{{ printf '%s\\n' "$block"; head -c $pad /dev/zero | tr '\\0' '#'; }} > /tmp/grubenv.new
dd if=/tmp/grubenv.new of=$env conv=notrunc,fsync 2>/dev/null
sync
"""


def missing_tools() -> list[str]:
    miss = fixture.missing_tools() + fixture.missing_disk_tools()
    miss += [t for t in ("mkfs.ext4", "grub-editenv", "ldd") if not shutil.which(t)]
    return miss


def mender_client_dir() -> Path:
    """Debian's mender-client, unpacked (tests/rollout/fleet.py fetches it into .cache)."""
    from tests.rollout import fleet

    return fleet.client_root()


def kernel_modules(cache: Path, kernel: Path) -> Path:
    """The virtio disk driver modules of the fixture kernel, from the same Debian package."""
    version = kernel.name.removeprefix("vmlinuz-")
    dest = cache / "modules" / version
    if all((dest / f"{m}.ko").is_file() for m in MODULES):
        return dest
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run(["apt-get", "download", "-qq", f"linux-image-{version}"], cwd=tmp,
                       check=True, capture_output=True)
        deb = next(Path(tmp).glob("*.deb"))
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", tmp, "--wildcards",
                        *[f"./lib/modules/*/{m}.ko" for m in MODULES]],
                       stdin=tar.stdout, check=True)
        tar.stdout.close()
        tar.wait()
        dest.mkdir(parents=True, exist_ok=True)
        for m in MODULES:
            os.replace(next(Path(tmp).rglob(f"{m}.ko")), dest / f"{m}.ko")
    return dest


def _cpio_gz(root: Path, dest: Path) -> Path:
    names = "\n".join(sorted(str(p.relative_to(root)) for p in root.rglob("*"))) + "\n"
    archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=names.encode(),
                             check=True, capture_output=True).stdout
    dest.write_bytes(gzip.compress(archive, compresslevel=1))
    return dest


def _busybox() -> Path:
    return Path("/bin/busybox") if Path("/bin/busybox").is_file() else Path(shutil.which("busybox"))


def initramfs(dest: Path, modules: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for d in ("bin", "dev", "proc", "lib/modules"):
            (root / d).mkdir(parents=True)
        shutil.copy2(_busybox(), root / "bin" / "busybox")
        for m in MODULES:
            shutil.copy2(modules / f"{m}.ko", root / "lib" / "modules" / f"{m}.ko")
        (root / "init").write_text(INITRAMFS_INIT.format(modules=" ".join(MODULES)))
        (root / "init").chmod(0o755)
        return _cpio_gz(root, dest)


def _libraries(binary: Path) -> list[Path]:
    out = subprocess.run(["ldd", str(binary)], check=True, capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        if "not found" in line:
            raise RuntimeError(f"{binary} needs {line.split()[0]}, which this host lacks "
                               "(.ci/run installs mender-client's dependencies)")
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            libs.append(Path(path))
    return libs


def rootfs_tree(root: Path, artifact_name: str, client: Path) -> Path:
    """A rootfs directory: busybox, the Mender client and its libraries, the boot env tools."""
    for d in ("bin", "sbin", "usr/bin", "etc/mender", "proc", "sys", "dev", "tmp", "run", "data",
              "var/lib", "lib64", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(_busybox(), root / "bin" / "busybox")
    applets = subprocess.run([str(_busybox()), "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    for a in applets:
        if a != "busybox" and not (root / "bin" / a).exists():
            (root / "bin" / a).symlink_to("busybox")
    mender = client / "usr" / "bin" / "mender"
    shutil.copy2(mender, root / "usr" / "bin" / "mender")
    for lib in _libraries(mender):
        dest = root / lib.relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib.resolve(), dest)
    (root / "var" / "lib" / "mender").symlink_to("/data/mender")
    (root / "etc" / "mender" / "mender.conf").write_text(
        '{"RootfsPartA": "/dev/vda2", "RootfsPartB": "/dev/vda3", "UpdatePollIntervalSeconds": 1800}\n')
    (root / "etc" / "mender" / "artifact_info").write_text(f"artifact_name={artifact_name}\n")
    for name, text in (("sbin/init", ROOTFS_INIT), ("usr/bin/fw_printenv", FW_PRINTENV.format()),
                       ("usr/bin/fw_setenv", FW_SETENV.format())):
        (root / name).write_text(text)
        (root / name).chmod(0o755)
    return root


def ext4(dest: Path, tree: Path | None, size_mib: int, label: str) -> Path:
    with open(dest, "wb") as f:
        f.truncate(size_mib * MIB)
    cmd = ["mkfs.ext4", "-q", "-F", "-L", label, "-O", "^has_journal,^metadata_csum,^64bit",
           "-E", "root_owner=0:0"]
    if tree is not None:
        cmd += ["-d", str(tree)]
    subprocess.run([*cmd, str(dest)], check=True, capture_output=True,
                   env=dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000"))
    return dest


def rootfs_image(dest: Path, artifact_name: str) -> Path:
    """An ext4 rootfs image (what a Yocto build's .ext4 is)."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = rootfs_tree(Path(tmp) / "root", artifact_name, mender_client_dir())
        return ext4(dest, tree, SIZES_MIB["rootfs"], "rootfs")


def _esp(dest: Path, kernel: Path, initrd: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "grub.cfg"
        cfg.write_text(GRUB_CFG)
        efi = Path(tmp) / "BOOTX64.EFI"
        subprocess.run(["grub-mkstandalone", "-O", "x86_64-efi", "-o", str(efi),
                        "--modules=part_msdos ext2 fat loadenv linux echo test",
                        f"boot/grub/grub.cfg={cfg}"], check=True, capture_output=True)
        if dest.exists():
            dest.unlink()
        subprocess.run(["mkfs.vfat", "-C", str(dest), str(SIZES_MIB["esp"] * 1024)], check=True,
                       capture_output=True)
        img = ["-i", str(dest)]
        subprocess.run(["mmd", *img, "::/EFI", "::/EFI/BOOT"], check=True, capture_output=True)
        for src, name in ((efi, "::/EFI/BOOT/BOOTX64.EFI"), (kernel, "::/vmlinuz"),
                          (initrd, "::/initrd.gz")):
            subprocess.run(["mcopy", *img, str(src), name], check=True, capture_output=True)
    return dest


def _data(dest: Path, device_type: str) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "data"
        (tree / "mender").mkdir(parents=True)
        # where a Mender image keeps it: the data partition, not the rootfs an update replaces
        (tree / "mender" / "device_type").write_text(f"device_type={device_type}\n")
        env = tree / ENV_FILE
        subprocess.run(["grub-editenv", str(env), "create"], check=True)
        subprocess.run(["grub-editenv", str(env), "set", "mender_boot_part=2",
                        "upgrade_available=0", "bootcount=0"], check=True)
        return ext4(dest, tree, SIZES_MIB["data"], "data")


def _mbr(parts: list[tuple[int, int, int]], boot: int = 0) -> bytes:
    """A DOS partition table: (type, first sector, sectors) per partition."""
    mbr = bytearray(512)
    mbr[440:444] = b"BCTL"
    for i, (ptype, first, count) in enumerate(parts):
        e = 446 + 16 * i
        mbr[e] = 0x80 if i == boot else 0
        mbr[e + 1:e + 4] = b"\xfe\xff\xff"
        mbr[e + 4] = ptype
        mbr[e + 5:e + 8] = b"\xfe\xff\xff"
        mbr[e + 8:e + 12] = first.to_bytes(4, "little")
        mbr[e + 12:e + 16] = count.to_bytes(4, "little")
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def disk_image(dest: Path, kernel: Path, artifact_name: str, device_type: str) -> Path:
    """The whole dual-rootfs disk, rootfs A holding artifact_name, B empty."""
    cache = fixture.cache_dir()
    modules = kernel_modules(cache, kernel)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        pieces = [(0xEF, _esp(t / "esp", kernel, initramfs(t / "initrd.gz", modules))),
                  (0x83, rootfs_image(t / "a", artifact_name)),
                  (0x83, ext4(t / "b", None, SIZES_MIB["rootfs"], "rootfs")),
                  (0x83, _data(t / "data", device_type))]
        table, offset = [], MIB
        for ptype, path in pieces:
            size = path.stat().st_size
            table.append((ptype, offset // 512, size // 512))
            offset += -(-size // MIB) * MIB
        part = dest.with_name(dest.name + ".part")
        with open(part, "wb") as out:
            out.write(_mbr(table))
            for (_, first, _), (_, path) in zip(table, pieces):
                out.seek(first * 512)
                with open(path, "rb") as f:
                    shutil.copyfileobj(f, out, MIB)
            out.truncate(offset)
        os.replace(part, dest)
    return dest
