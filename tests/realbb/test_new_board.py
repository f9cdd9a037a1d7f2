"""A board scaffolded by `buildctl new-board`, as real BitBake computes its configuration.

The `new_board` fixture (conftest.py) runs new-board non-interactively on a MACHINE of the
kit's BSP layers, composes the generated manifest into products/demo.yml narrowed to that board,
checks it out with kas and runs BitBake's `bitbake -e`. Expected values are what new-board was
told (NEW_BOARD_ARGS) and what it wrote (the generated machines/<board>.yml): nothing here is
copied from BitBake's output.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from tests.realbb.conftest import NEW_BOARD_ARGS


def _arg(flag: str) -> str:
    return NEW_BOARD_ARGS[NEW_BOARD_ARGS.index(flag) + 1]


def test_machine_is_the_one_new_board_was_given(new_board):
    assert new_board.manifest["machine"] == _arg("--machine")
    assert new_board.env["MACHINE"] == _arg("--machine")
    # the machine conf BitBake read is the BSP layer's own, from the kas checkout
    assert "meta-yocto-bsp" in new_board.env["BBLAYERS"]
    assert new_board.env["BB_NO_NETWORK"] == "1"


def test_storage_new_board_chose_reaches_bitbake(new_board):
    storage = new_board.manifest["mender"]["storage"]
    assert (storage["device"], storage["total_mb"], storage["boot_mb"], storage["data_mb"]) == \
        (_arg("--device"), int(_arg("--total-mb")), int(_arg("--boot-mb")), int(_arg("--data-mb")))
    env = new_board.env
    assert env["MENDER_STORAGE_DEVICE"] == storage["device"]
    assert env["MENDER_STORAGE_TOTAL_SIZE_MB"] == str(storage["total_mb"])
    assert env["MENDER_BOOT_PART_SIZE_MB"] == str(storage["boot_mb"])
    assert env["MENDER_DATA_PART_SIZE_MB"] == str(storage["data_mb"])
    # meta-mender derives the partitions from them: the A/B rootfs parts fit what is left
    assert env["MENDER_STORAGE_DEVICE_BASE"] == "/dev/nvme0n1p"
    assert env["MENDER_ROOTFS_PART_A"] == "/dev/nvme0n1p2"
    assert env["MENDER_DEVICE_TYPE"] == new_board.manifest["mender"]["device_types"][0]


def test_bootloader_new_board_probed_is_the_one_bitbake_uses(new_board):
    """genericx86-64's machine conf says EFI (GRUB): new-board proposed grub-efi, and the
    composed configuration turns Mender's GRUB/UEFI integration on and U-Boot off."""
    assert new_board.manifest["mender"]["bootloader"] == "grub-efi"
    features = new_board.env["MENDER_FEATURES"].split()
    assert "mender-grub" in features and "mender-image-uefi" in features
    assert "mender-uboot" not in features and "mender-image-sd" not in features
    assert new_board.env["EFI_PROVIDER"] == "grub-efi"
    fstypes = new_board.env["IMAGE_FSTYPES"].split()
    for t in new_board.manifest["mender"]["image_types"]:
        assert t in fstypes, (t, fstypes)
    removed = new_board.manifest["local_conf"]["IMAGE_FSTYPES:remove"].split()
    assert removed and not set(removed) & set(fstypes), (removed, fstypes)


def test_verify_key_is_the_signing_keys_public_half(new_board, stack):
    key = Path(new_board.env["MENDER_ARTIFACT_VERIFY_KEY"])
    text = key.read_text()
    assert "PUBLIC KEY" in text and "PRIVATE" not in text
    ours = subprocess.run(["openssl", "pkey", "-in", str(stack.signing_key), "-pubout"],
                          capture_output=True, text=True, check=True).stdout
    assert text.strip() == ours.strip()
