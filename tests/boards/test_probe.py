"""Probing real machine configurations from the kit, with BitBake's own datastore as the oracle."""
from __future__ import annotations

import pytest

from buildctl.boards import probe
from buildctl.boards.probe import ProbeError, probe_machine, read_stack
from buildctl.boards.propose import propose
from tests.boards import kit
from tests.helpers import bb_oracle
from tests.helpers import skips

# The values new-board's proposals are made from.
COMPARED = ("KERNEL_IMAGETYPE", "TRANSLATED_TARGET_ARCH", "MACHINEOVERRIDES", "IMAGE_FSTYPES", "SERIAL_CONSOLES",
            "PREFERRED_PROVIDER_virtual/bootloader", "MACHINE_FEATURES", "EFI_PROVIDER",
            "UBOOT_MACHINE", "MENDER_MTDIDS", "MENDER_STORAGE_PEB_SIZE")

CORE = (kit.OE_CORE, "meta", "openembedded-core")
STACKS = {
    "raspberrypi4-64": [CORE, (kit.RPI, "", "meta-raspberrypi")],
    "olimex-imx8mp-evb": [CORE, (kit.FSL, "", "meta-freescale"), (kit.FSL3, "", "meta-freescale-3rdparty")],
    "jetson-orin-nano-devkit": [CORE, (kit.TEGRA, "", "meta-tegra")],
    "qemux86-64": [CORE],
    "vexpress-qemu-flash": [CORE, (kit.MENDER, "meta-mender-qemu", "meta-mender")],
    "colibri-imx7-nand": [CORE, (kit.FSL, "", "meta-freescale"), (kit.FSL3, "", "meta-freescale-3rdparty")],
    "genericx86-64": [CORE, (kit.YOCTO, "meta-yocto-bsp", "meta-yocto")],
}


def _stack(machine):
    kit.need_kit()
    return read_stack([kit.ref(r, l, n) for r, l, n in STACKS[machine]])


def _oracle(machine, tmp_path):
    skips.require(bb_oracle.available(), "BitBake's bb library cannot be imported here",
                  "pip install bitbake-setup")
    dirs = [kit.export_conf(r, l, tmp_path) for r, l, _ in STACKS[machine]]
    text = (probe.PROBE_BEFORE + f"require conf/machine/{machine}.conf\n" + probe.PROBE_AFTER)
    got = bb_oracle.evaluate(text, list(COMPARED), {"MACHINE": machine,
                                                     "BBPATH": ":".join(map(str, dirs))})
    return {k: (" ".join(v.split()) if v is not None else None) for k, v in got.items()}


@pytest.mark.parametrize("machine", sorted(STACKS))
def test_probe_matches_bitbake(machine, tmp_path):
    p = probe_machine(_stack(machine), machine)
    expected = _oracle(machine, tmp_path)
    mine = {k: p.values[k].value for k in COMPARED}
    assert mine == expected
    assert all(p.values[k].computable for k in COMPARED)


def test_probe_names_where_values_come_from():
    p = probe_machine(_stack("raspberrypi4-64"), "raspberrypi4-64")
    assert p.conf_file == "meta-raspberrypi/conf/machine/raspberrypi4-64.conf"
    assert p.values["SERIAL_CONSOLES"].origin == "meta-raspberrypi/conf/machine/raspberrypi4-64.conf:26"
    assert p.values["KERNEL_IMAGETYPE"].origin.startswith("meta-raspberrypi/conf/machine/include/rpi-base.inc:")
    assert p.values["EFI_PROVIDER"].origin == "not set"


def test_unknown_machine_names_the_stack_and_a_near_miss():
    with pytest.raises(ProbeError, match=r"'raspberrypi4-46' is not defined .*did you mean raspberrypi4-64"):
        probe_machine(_stack("raspberrypi4-64"), "raspberrypi4-46")


@pytest.mark.parametrize("machine, bootloader, ubi, image, device", [
    ("raspberrypi4-64", "u-boot", False, "sdimg", "/dev/mmcblk0"),
    ("olimex-imx8mp-evb", "u-boot", False, "sdimg", "/dev/mmcblk0"),
    ("jetson-orin-nano-devkit", "tegra", False, "tegraflash", "/dev/mmcblk0"),
    ("qemux86-64", "grub-efi", False, "uefiimg", "/dev/sda"),
    ("vexpress-qemu-flash", "u-boot", True, "ubimg", None),
    ("colibri-imx7-nand", "u-boot", True, "ubimg", None),
    ("genericx86-64", "grub-efi", False, "uefiimg", "/dev/sda"),
])
def test_proposals_follow_the_machine(machine, bootloader, ubi, image, device):
    prop = propose(probe_machine(_stack(machine), machine))
    assert prop.bootloader.value == bootloader
    assert prop.ubi.value is ubi
    assert prop.image_type.value == image
    assert prop.device.value == device
    assert prop.bootloader.origin  # every proposal says why
