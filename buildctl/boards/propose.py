"""From what the machine configuration says to the Mender settings a board should start with.

Each proposal is a Sourced value whose origin names the probed assignment (file:line) or the
rule that chose a default, so the transcript can say where every value came from.
"""
from __future__ import annotations

from dataclasses import dataclass

from buildctl.boards.model import Sourced
from buildctl.boards.probe import MachineProbe

# Disk-image types a BSP builds that the Mender image replaces (dropped with IMAGE_FSTYPES:remove).
SUPERSEDED_IMAGE_TYPES = ("wic", "wic.gz", "wic.bz2", "wic.xz", "wic.zst", "wic.bmap", "rpi-sdimg",
                          "sdcard", "sdcard.gz")
# Signs in a machine configuration that the root filesystem lives on raw flash (UBI).
FLASH_IMAGE_TYPES = ("ubi", "ubifs", "jffs2", "mtdimg")
FLASH_PACKAGES = ("mtd-utils-ubifs",)

# bootloader -> the Mender disk image that goes with it
IMAGE_FOR_BOOTLOADER = {"u-boot": "sdimg", "grub-efi": "uefiimg", "tegra": "tegraflash", "none": "sdimg"}
# bootloader -> boot partition size (MiB) new boards start from
BOOT_MB = {"u-boot": 64, "grub-efi": 16, "tegra": 0, "none": 16}
DEFAULT_TOTAL_MB = 4096
DEFAULT_DATA_MB = 512


@dataclass(frozen=True)
class Proposal:
    bootloader: Sourced
    ubi: Sourced
    image_type: Sourced
    device: Sourced  # None for UBI: meta-mender's own default (ubi0) applies
    boot_mb: Sourced
    total_mb: Sourced
    data_mb: Sourced
    fstypes_remove: Sourced  # list of BSP image types the Mender image supersedes
    serial_console: Sourced
    kernel_imagetype: Sourced
    uboot_machine: Sourced


def _at(p: MachineProbe, var: str) -> str:
    return f"{var} from {p.values[var].origin}"


def _bootloader(p: MachineProbe) -> Sourced:
    provider = p.get("PREFERRED_PROVIDER_virtual/bootloader")
    if provider.startswith("edk2-firmware-tegra") or "tegra" in p.get("MACHINEOVERRIDES").split(":"):
        return Sourced("tegra", f"probe: {_at(p, 'PREFERRED_PROVIDER_virtual/bootloader')} "
                                f"({provider or 'tegra'}: NVIDIA's UEFI A/B slots)")
    if "u-boot" in provider:
        return Sourced("u-boot", f"probe: {_at(p, 'PREFERRED_PROVIDER_virtual/bootloader')} ({provider})")
    features = p.words("MACHINE_FEATURES")
    if "efi" in features or p.get("EFI_PROVIDER"):
        why = _at(p, "EFI_PROVIDER") if p.get("EFI_PROVIDER") else "MACHINE_FEATURES has efi"
        return Sourced("grub-efi", f"probe: {why}")
    if "x86" in features:
        return Sourced("grub-efi", f"probe: MACHINE_FEATURES has x86 and no U-Boot provider "
                                   f"({p.values['MACHINE_FEATURES'].origin}): UEFI + GRUB")
    if p.get("UBOOT_MACHINE"):
        return Sourced("u-boot", f"probe: {_at(p, 'UBOOT_MACHINE')} ({p.get('UBOOT_MACHINE')})")
    return Sourced("none", "probe: no bootloader provider, EFI or U-Boot config in the machine")


def _ubi(p: MachineProbe) -> Sourced:
    for var in ("MENDER_MTDIDS", "MKUBIFS_ARGS", "UBINIZE_ARGS"):
        if p.get(var):
            return Sourced(True, f"probe: {_at(p, var)}")
    hit = [t for t in p.words("IMAGE_FSTYPES") if t in FLASH_IMAGE_TYPES]
    if hit:
        return Sourced(True, f"probe: IMAGE_FSTYPES has {hit[0]} ({p.values['IMAGE_FSTYPES'].origin})")
    pk = [x for x in p.words("MACHINE_ESSENTIAL_EXTRA_RRECOMMENDS") if x in FLASH_PACKAGES]
    if pk:
        return Sourced(True, f"probe: {_at(p, 'MACHINE_ESSENTIAL_EXTRA_RRECOMMENDS')} ({pk[0]})")
    return Sourced(False, "probe: no UBI/MTD settings in the machine: block storage")


def propose(p: MachineProbe) -> Proposal:
    bl = _bootloader(p)
    ubi = _ubi(p)
    if ubi.value:
        image = Sourced("ubimg", "rule: UBI storage -> mender-full-ubi, .ubimg")
        device = Sourced(None, "rule: UBI storage uses meta-mender's ubi0")
        boot = Sourced(0, "rule: UBI images have no boot partition")
    else:
        image = Sourced(IMAGE_FOR_BOOTLOADER[bl.value], f"rule: bootloader {bl.value}")
        if bl.value == "grub-efi" and "x86" in p.words("MACHINE_FEATURES"):
            device = Sourced("/dev/sda", "rule: x86 UEFI boards boot from the first disk")
        else:
            device = Sourced("/dev/mmcblk0", "rule: first MMC device (SD card or eMMC)")
        boot = Sourced(BOOT_MB[bl.value], f"rule: boot partition for {bl.value}")
    total = p.get("MENDER_STORAGE_TOTAL_SIZE_MB")
    total_s = (Sourced(int(total), f"probe: {_at(p, 'MENDER_STORAGE_TOTAL_SIZE_MB')}") if total.isdigit()
               else Sourced(DEFAULT_TOTAL_MB, "default: 4 GiB medium"))
    data = p.get("MENDER_DATA_PART_SIZE_MB")
    data_s = (Sourced(int(data), f"probe: {_at(p, 'MENDER_DATA_PART_SIZE_MB')}") if data.isdigit()
              else Sourced(DEFAULT_DATA_MB, "default: 512 MiB /data"))
    drop = [t for t in p.words("IMAGE_FSTYPES") if t in SUPERSEDED_IMAGE_TYPES]
    drop_s = Sourced(drop, f"probe: {_at(p, 'IMAGE_FSTYPES')}" if drop else "probe: nothing to drop")
    consoles = p.words("SERIAL_CONSOLES")
    console = consoles[0].split(";")[-1] if consoles else ""
    return Proposal(
        bootloader=bl, ubi=ubi, image_type=image, device=device, boot_mb=boot,
        total_mb=total_s, data_mb=data_s, fstypes_remove=drop_s,
        serial_console=Sourced(console, f"probe: {_at(p, 'SERIAL_CONSOLES')}"),
        kernel_imagetype=Sourced(p.get("KERNEL_IMAGETYPE"), f"probe: {_at(p, 'KERNEL_IMAGETYPE')}"),
        uboot_machine=Sourced(p.get("UBOOT_MACHINE"), f"probe: {_at(p, 'UBOOT_MACHINE')}"),
    )
