"""What BitBake reads is exactly what the manifest says: composed fragments through BitBake's
own datastore, values with quotes and backslashes included."""
from __future__ import annotations


import pytest
import yaml

from buildctl.compose import compose_board
from buildctl.manifest import load_product
from tests.helpers import bb_oracle
from tests.helpers.products import board_data, simple_product, write_yaml
from tests.helpers import skips

# values BitBake has no escape for: they must arrive exactly as written
AWKWARD = {
    "FOO_QUOTES": 'say "hello" twice',
    "FOO_BACKSLASH": "C:\\path\\to\\",
    "FOO_APOSTROPHE": "it's",
    "FOO_ONE_DQUOTE": 'a "b',
    "FOO_HASH": "a # not a comment",
    "FOO_BOTH": "it's \"quoted\" twice",
    "FOO_SPACES": "  padded  ",
}


@pytest.fixture(autouse=True)
def _need_bitbake():
    skips.require(bb_oracle.available(), "BitBake's bb library cannot be imported here",
                  "pip install bitbake-setup")


def _awkward_product(root):
    path = simple_product(root)
    d = yaml.safe_load(path.read_text())
    d["local_conf"] = {"FOO_QUOTES": "product value, overridden by the board"}
    d["variants"]["debug"]["local_conf"] = {"VARIANT_ONLY": 'v"a\\r"'}
    d["release"]["artifact_name"] = '{product}-"{version}"-{board}\\{variant}'
    d["mender"] = {"server_url": 'https://mender.example.com/a"b\\c', "update_poll_interval_s": 60}
    d["packages"] = ["hello-buildctl"]
    d["image_features"] = ["ssh-server-dropbear"]
    d["board_overrides"] = {"qemuarm64": {"local_conf": {"FOO_HASH": "override wins"}}}
    write_yaml(path, d)
    for b in ("qemux86-64", "qemuarm64"):
        data = board_data(b, storage={"device": "/dev/mmcblk0p", "total_mb": 4096, "boot_mb": 64,
                                      "data_mb": 512, "alignment_kb": 4096})
        data["local_conf"] = dict(AWKWARD, **{"PREFERRED_VERSION_u-boot": {"op": "?=", "value": '2024."%"'}})
        data["packages"] = ["kernel-devicetree"]
        write_yaml(root / "machines" / f"{b}.yml", data)
    return path


def _bitbake_values(kas_file) -> dict[str, str | None]:
    doc = yaml.safe_load(kas_file.read_text())
    text = "".join(doc["local_conf_header"].values())
    names = sorted({line.split()[0].split(":")[0] for line in text.splitlines()
                    if line and not line.startswith("#")})
    return bb_oracle.evaluate(text, names)


@pytest.mark.parametrize("board,variant", [("qemux86-64", "release"), ("qemuarm64", "debug")])
def test_every_composed_variable_reads_back_as_the_manifest_says(tmp_path, board, variant):
    path = _awkward_product(tmp_path / "ws")
    product = load_product(path)
    got = _bitbake_values(compose_board(product, board, variant, tmp_path / "o").kas_file)
    b = product.boards[board]
    s = b.mender.storage
    expected = {
        **AWKWARD,
        "PREFERRED_VERSION_u-boot": '2024."%"',
        "MENDER_DEVICE_TYPE": board,
        "MENDER_DEVICE_TYPES_COMPATIBLE": board,
        "MENDER_STORAGE_DEVICE": "/dev/mmcblk0p",
        "MENDER_STORAGE_TOTAL_SIZE_MB": str(s.total_mb),
        "MENDER_BOOT_PART_SIZE_MB": str(s.boot_mb),
        "MENDER_DATA_PART_SIZE_MB": str(s.data_mb),
        "MENDER_PARTITION_ALIGNMENT": str(4096 * 1024),
        "MENDER_ARTIFACT_NAME": f'demo-"1.0"-{board}\\{variant}',
        "MENDER_SERVER_URL": 'https://mender.example.com/a"b\\c',
        "MENDER_UPDATE_POLL_INTERVAL_SECONDS": "60",
        "MENDER_FEATURES_ENABLE": " mender-grub mender-image-uefi",
        "MENDER_FEATURES_DISABLE": " mender-uboot mender-image-bios mender-image-gpt "
                                   "mender-image-sd mender-image-ubi",
        "INHERIT": " create-spdx",
        "IMAGE_INSTALL": " hello-buildctl kernel-devicetree" + (" " if variant == "debug" else ""),
        "EXTRA_IMAGE_FEATURES": " ssh-server-dropbear" + (" debug-tweaks" if variant == "debug" else ""),
    }
    if board == "qemuarm64":
        expected["FOO_HASH"] = "override wins"  # the board override is written after the board file
    if variant == "debug":
        expected["VARIANT_ONLY"] = 'v"a\\r"'
        expected["IMAGE_INSTALL"] = " hello-buildctl kernel-devicetree"
    # the board's own value wins over the product-wide one (written later)
    assert got.pop("FOO_QUOTES") == AWKWARD["FOO_QUOTES"]
    expected.pop("FOO_QUOTES")
    assert got == expected


def test_more_specific_settings_win(tmp_path):
    root = tmp_path / "ws"
    path = simple_product(root)
    d = yaml.safe_load(path.read_text())
    d["local_conf"] = {"GPU_MEM": "64", "ONLY_PRODUCT": "p"}
    d["board_overrides"] = {"qemuarm64": {"local_conf": {"GPU_MEM": "16"}}}
    write_yaml(path, d)
    data = board_data("qemuarm64")
    data["local_conf"] = {"GPU_MEM": "32"}
    write_yaml(root / "machines" / "qemuarm64.yml", data)
    product = load_product(path)
    arm = _bitbake_values(compose_board(product, "qemuarm64", None, tmp_path / "o").kas_file)
    x86 = _bitbake_values(compose_board(product, "qemux86-64", None, tmp_path / "o").kas_file)
    assert arm["GPU_MEM"] == "16" and arm["ONLY_PRODUCT"] == "p"  # override > board > product
    assert x86["GPU_MEM"] == "64"
