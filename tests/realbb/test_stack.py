"""What a device of the shipped product gets, as real BitBake computes it (see conftest.py).

Expected values come from the manifests (products/demo.yml, machines/<board>.yml): each test
checks that BitBake's final value of a variable is what the manifest says, for every board of
the session (qemux86-64: GRUB/UEFI, raspberrypi4-64: U-Boot/SD card).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.realbb.conftest import BOARDS, PRODUCT, ROOT, TARGET

PRODUCT_DATA = yaml.safe_load(PRODUCT.read_text())


def board_data(board: str) -> dict:
    return yaml.safe_load((ROOT / "machines" / f"{board}.yml").read_text())


@pytest.fixture(params=BOARDS)
def run(request, stack):
    return stack.boards[request.param]


def _public_pem(key: Path, *, private: bool) -> str:
    args = ["openssl", "pkey", "-in", str(key), "-pubout"] if private else \
        ["openssl", "pkey", "-pubin", "-in", str(key), "-pubout"]
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_validate_finds_nothing_in_the_shipped_product(stack):
    assert " 0 errors, 0 warnings" in stack.validate_output, stack.validate_output


def test_machine_and_distro(run):
    assert run.env["MACHINE"] == run.board
    assert run.env["DISTRO"] == PRODUCT_DATA["distro"]
    assert run.env["BB_NO_NETWORK"] == "1"  # the parse really ran offline


def test_mender_storage_and_device_type(run):
    mender = board_data(run.board)["mender"]
    storage = mender["storage"]
    assert run.env["MENDER_STORAGE_DEVICE"] == storage["device"]
    assert run.env["MENDER_STORAGE_TOTAL_SIZE_MB"] == str(storage["total_mb"])
    assert run.env["MENDER_BOOT_PART_SIZE_MB"] == str(storage["boot_mb"])
    assert run.env["MENDER_DATA_PART_SIZE_MB"] == str(storage["data_mb"])
    assert run.env["MENDER_DEVICE_TYPE"] == mender["device_types"][0]
    assert run.env["MENDER_DEVICE_TYPES_COMPATIBLE"].split() == mender["device_types"]
    features = run.env["MENDER_FEATURES"].split()
    if mender["bootloader"] == "u-boot":
        assert "mender-uboot" in features and "mender-grub" not in features
    else:
        assert "mender-grub" in features and "mender-uboot" not in features


def test_artifact_name_and_server(run):
    release = PRODUCT_DATA["release"]
    expected = release["artifact_name"].format(product=PRODUCT_DATA["name"], board=run.board,
                                               version=release["version"], variant="release")
    assert run.env["MENDER_ARTIFACT_NAME"] == expected
    assert run.env["MENDER_SERVER_URL"] == PRODUCT_DATA["mender"]["server_url"]
    assert run.env["MENDER_UPDATE_POLL_INTERVAL_SECONDS"] == \
        str(PRODUCT_DATA["mender"]["update_poll_interval_s"])


def test_devices_get_the_key_that_verifies_signed_artifacts(run, stack):
    """require_signed: the image must carry the public half of mender.signing_key."""
    assert PRODUCT_DATA["mender"]["require_signed"] is True
    key = run.env.get("MENDER_ARTIFACT_VERIFY_KEY", "")
    assert key, "MENDER_ARTIFACT_VERIFY_KEY is not set: devices would accept unsigned artifacts"
    text = Path(key).read_text()
    assert "PRIVATE" not in text  # never the signing key itself
    assert _public_pem(Path(key), private=False) == _public_pem(stack.signing_key, private=True)


def test_image_types(run):
    fstypes = run.env["IMAGE_FSTYPES"].split()
    mender = board_data(run.board)["mender"]
    for t in mender["image_types"]:
        assert t in fstypes, (t, fstypes)
    removed = board_data(run.board).get("local_conf", {}).get("IMAGE_FSTYPES:remove", "").split()
    assert not set(removed) & set(fstypes), removed


def test_spdx_settings(run):
    sbom = PRODUCT_DATA["sbom"]
    assert sbom["spdx"] is True and "create-spdx" in run.env["INHERIT"].split()
    assert run.env["SPDX_INCLUDE_SOURCES"] == ("1" if sbom["include_sources"] else "0")
    assert run.env["SPDX_VERSION"]  # create-spdx's settings are defined: the class is in
    # create-spdx's tasks are in the graph for the image and for our package, and the image's
    # documents are combined into the SBOM archive when the rootfs is made
    assert f'"{TARGET}.do_create_runtime_spdx"' in run.graph
    assert "image_combine_spdx" in run.env["ROOTFS_POSTUNINSTALL_COMMAND"].split()
    assert '"hello-buildctl.do_create_spdx"' in run.graph


def test_hello_buildctl_is_built_into_the_image(run):
    assert "hello-buildctl" in run.buildlist
    for task in ("do_compile", "do_package_write_ipk", "do_populate_lic"):
        assert f'"hello-buildctl.{task}"' in run.graph
    assert "hello-buildctl" in run.env["IMAGE_INSTALL"].split()
    for pkg in PRODUCT_DATA["packages"] + board_data(run.board).get("packages", []):
        assert pkg in run.env["IMAGE_INSTALL"].split()


def test_images_take_app_updates_as_ipk_packages_with_the_module(run):
    """What `buildctl release apps` artifacts need on the device (issue 14): the image's
    package manager and buildctl's package update module, named for IMAGE_PKGTYPE."""
    assert run.env["PACKAGE_CLASSES"].split()[0] == "package_ipk"
    assert run.env["IMAGE_PKGTYPE"] == "ipk"
    assert "package-management" in run.env["IMAGE_FEATURES"].split()
    assert "mender-buildctl-pkg-module" in run.env["IMAGE_INSTALL"].split()
    assert "mender-buildctl-pkg-module" in run.buildlist and "opkg" in run.buildlist
    assert '"mender-buildctl-pkg-module.do_package_write_ipk"' in run.graph


def test_board_local_conf_reaches_bitbake(run):
    for name, value in board_data(run.board).get("local_conf", {}).items():
        if ":" not in name:
            assert run.env[name] == str(value), name
    for name, value in (PRODUCT_DATA.get("board_overrides", {}).get(run.board, {})
                        .get("local_conf", {}).items()):
        assert run.env[name] == str(value), name
