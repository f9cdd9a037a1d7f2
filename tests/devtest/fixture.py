"""A bootable fixture for the QEMU runner: a Debian kernel and a busybox initramfs.

The kernel is extracted (not installed) from the Debian package linux-image-cloud-<arch>
depends on, fetched with `apt-get download` into a cache directory; the initramfs is built
from Debian's busybox-static with cpio. Its /init behaves like a small device: kernel
messages, then "<name> login: " on the serial console (ttyS0, ttyAMA0 on arm64), reads the
user name, and runs a shell there; with `hang=True` it never gets to the prompt.

For another architecture than the host's (qemuarm64 on an amd64 host) nothing is installed
and dpkg gets no foreign architecture: apt runs with a private state directory in the cache
whose architecture is arm64 (`apt-get update` of the same sources there, once), and
`apt-get download` fetches the arm64 kernel and busybox-static packages, which are only
unpacked.
"""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

KERNEL_META = "linux-image-cloud-{arch}"
CONSOLE = {"amd64": "ttyS0", "arm64": "ttyAMA0"}

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "fixture: init started"
{hang}
printf '\\nfixture login: ' > /dev/{tty}
read user < /dev/{tty}
echo "logged in as $user" > /dev/{tty}
exec setsid sh -c 'exec sh -i </dev/{tty} >/dev/{tty} 2>&1'
"""


GRUB_CFG = """search --no-floppy --file /vmlinuz --set=root
set timeout=0
linux /vmlinuz console=ttyS0 panic=-1 quiet
initrd /initrd.gz
boot
"""


def cache_dir() -> Path:
    d = Path(os.environ.get("BUILDCTL_DEVTEST_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "buildctl-tests" / "devtest")
    d.mkdir(parents=True, exist_ok=True)
    return d


def missing_tools() -> list[str]:
    need = ["qemu-system-x86_64", "apt-get", "apt-cache", "dpkg-deb", "cpio"]
    miss = [t for t in need if not shutil.which(t)]
    if not Path("/bin/busybox").is_file() and not shutil.which("busybox"):
        miss.append("busybox (busybox-static)")
    return miss


def host_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True,
                          text=True).stdout.strip()


def apt_options(arch: str) -> list[str]:
    """apt's options for packages of arch: none for the host's; for another, a private state
    directory in the cache (its package lists fetched once with `apt-get update`)."""
    if arch == host_arch():
        return []
    root = cache_dir() / f"apt-{arch}"
    opts = ["-o", f"Dir::State={root}/state", "-o", f"Dir::State::status={root}/status",
            "-o", f"Dir::Cache={root}/cache", "-o", f"APT::Architecture={arch}",
            "-o", f"APT::Architectures::={arch}", "-o", "Acquire::Languages=none"]
    if not any((root / "state" / "lists").glob("*Packages*")):
        for d in ("state/lists/partial", "cache/archives/partial"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "status").touch()
        subprocess.run(["apt-get", "-qq", *opts, "update"], check=True, capture_output=True)
    return opts


def _extract(arch: str, pkg: str, pattern: str, dest: Path) -> Path:
    """Unpack the files matching pattern from the package pkg (apt-get download) into dest."""
    cache = cache_dir()
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run(["apt-get", "download", "-qq", *apt_options(arch), pkg], cwd=tmp,
                       check=True, capture_output=True)
        deb = next(Path(tmp).glob("*.deb"))
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", tmp, "--wildcards", pattern],
                       stdin=tar.stdout, check=True)
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError(f"dpkg-deb could not read {deb}")
        src = next(Path(tmp).glob(pattern.removeprefix("./")))
        dest.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest / src.name)
        return dest / src.name


def kernel(arch: str = "amd64") -> Path:
    """The vmlinuz of the Debian cloud kernel for arch, extracted once into the cache."""
    cache = cache_dir()
    boot = cache / "boot" if arch == "amd64" else cache / arch / "boot"
    found = sorted(boot.glob("vmlinuz-*"))
    if found:
        return found[-1]
    deps = subprocess.run(["apt-cache", *apt_options(arch), "depends",
                           KERNEL_META.format(arch=arch)], check=True, capture_output=True,
                          text=True).stdout
    pkg = next(line.split(":", 1)[1].strip() for line in deps.splitlines()
               if line.strip().startswith("Depends:") and "linux-image-" in line)
    return _extract(arch, pkg, "./boot/vmlinuz-*", boot)


def busybox(arch: str = "amd64") -> Path:
    """busybox from Debian's busybox-static: the host's, or the package of arch unpacked."""
    if arch == host_arch():
        return Path("/bin/busybox") if Path("/bin/busybox").is_file() else Path(shutil.which("busybox"))
    dest = cache_dir() / arch / "bin"
    if (dest / "busybox").is_file():
        return dest / "busybox"
    return _extract(arch, "busybox-static", "./bin/busybox", dest)


def missing_disk_tools() -> list[str]:
    miss = [t for t in ("grub-mkstandalone", "mkfs.vfat", "mcopy", "mmd") if not shutil.which(t)]
    if not Path("/usr/lib/grub/x86_64-efi").is_dir():
        miss.append("grub-efi-amd64-bin")
    if not Path("/usr/share/ovmf/OVMF.fd").is_file():
        miss.append("ovmf")
    return miss


def disk_image(dest: Path, kernel: Path, initrd: Path) -> Path:
    """A disk image booted the way a Yocto uefiimg is: UEFI firmware loads GRUB from
    /EFI/BOOT/BOOTX64.EFI, GRUB loads the kernel and initramfs. One FAT file system over the
    whole disk (no partition table: OVMF reads that too), written with mtools, no mounting."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "grub.cfg"
        cfg.write_text(GRUB_CFG)
        efi = Path(tmp) / "BOOTX64.EFI"
        subprocess.run(["grub-mkstandalone", "-O", "x86_64-efi", "-o", str(efi),
                        f"boot/grub/grub.cfg={cfg}"], check=True, capture_output=True)
        size_kb = (efi.stat().st_size + kernel.stat().st_size + initrd.stat().st_size) // 1024 + 4096
        part = Path(tmp) / "disk.img"
        subprocess.run(["mkfs.vfat", "-C", str(part), str(size_kb)], check=True, capture_output=True)
        img = ["-i", str(part)]
        subprocess.run(["mmd", *img, "::/EFI", "::/EFI/BOOT"], check=True, capture_output=True)
        for src, name in ((efi, "::/EFI/BOOT/BOOTX64.EFI"), (kernel, "::/vmlinuz"), (initrd, "::/initrd.gz")):
            subprocess.run(["mcopy", *img, str(src), name], check=True, capture_output=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(part, dest)
    return dest


def initramfs(dest: Path, *, hang: bool = False, arch: str = "amd64") -> Path:
    """Write a gzip'd newc cpio archive with busybox and the fixture /init to dest."""
    bb = busybox(arch)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for d in ("bin", "proc", "sys", "dev"):
            (root / d).mkdir()
        shutil.copy2(bb, root / "bin" / "busybox")
        init = root / "init"
        init.write_text(INIT.format(hang="while :; do sleep 3600; done" if hang else "",
                                    tty=CONSOLE[arch]))
        init.chmod(0o755)
        names = "\n".join(sorted(str(p.relative_to(root)) for p in root.rglob("*"))) + "\n"
        archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=names.encode(),
                                 check=True, capture_output=True).stdout
    dest.write_bytes(gzip.compress(archive, compresslevel=1))
    return dest
