"""The device type devices report is the one their layers compute, unless the manifest sets one."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from buildctl.compose import compose_board
from buildctl.manifest import load_product
from tests.conftest import run_cli
from tests.helpers.products import board_data, make_repo, simple_product, write_yaml
from tests.helpers import skips

KIT = Path(__file__).resolve().parents[2].parent / "shared" / "yocto-kit"
META_MENDER = KIT / "github.com.mendersoftware.meta-mender.git"
SCARTHGAP_MENDER = "7412e59dd5da65f33ec853a42951097be0b62d7c"  # what products/demo.yml pins

# a stand-in integration layer: the shape of meta-mender's defaults, a BSP-specific suffix
SETUP_CLASS = """\
MENDER_DEVICE_TYPE ??= "${MENDER_DEVICE_TYPE_DEFAULT}"
MENDER_DEVICE_TYPE_DEFAULT = "${MACHINE}"
MENDER_DEVICE_TYPE_DEFAULT:qemuarm64:mender-grub = "${MACHINE}-grub"
MENDER_DEVICE_TYPES_COMPATIBLE ??= "${MENDER_DEVICE_TYPE}"

python () {
    pass
}
"""
LAYER_CONF = """\
BBPATH .= ":${LAYERDIR}"
BBFILE_COLLECTIONS += "mender"
BBFILE_PATTERN_mender = "^${LAYERDIR}/"
LAYERSERIES_COMPAT_mender = "scarthgap"
"""


def _product(tmp_path, mender_url: str, commit: str, layer: str, arm_types=None):
    root = tmp_path / "ws"
    path = simple_product(root)
    d = yaml.safe_load(path.read_text())
    d["repos"]["meta-mender"] = {"url": mender_url, "refs": {"scarthgap": {"branch": "scarthgap",
                                                                          "commit": commit}},
                                 "layers": [layer]}
    write_yaml(path, d)
    for b in ("qemux86-64", "qemuarm64"):
        data = board_data(b)
        del data["mender"]["device_types"]
        if b == "qemuarm64" and arm_types:
            data["mender"]["device_types"] = arm_types
        write_yaml(root / "machines" / f"{b}.yml", data)
    return path


def _fixture_mender(tmp_path) -> tuple[str, str]:
    repo = tmp_path / "meta-mender"
    commit = make_repo(repo, {"meta-mender-core/conf/layer.conf": LAYER_CONF,
                              "meta-mender-core/classes/mender-setup.bbclass": SETUP_CLASS})
    return repo.as_uri(), commit


def test_compose_leaves_the_device_type_to_the_layers_unless_set(tmp_path):
    url, commit = _fixture_mender(tmp_path)
    path = _product(tmp_path, url, commit, "meta-mender-core", arm_types=["arm-a", "arm-b"])
    product = load_product(path)
    x86 = compose_board(product, "qemux86-64", None, tmp_path / "o").kas_file.read_text()
    arm = compose_board(product, "qemuarm64", None, tmp_path / "o").kas_file.read_text()
    assert "MENDER_DEVICE_TYPE" not in x86
    assert 'MENDER_DEVICE_TYPE = "arm-a"' in arm and 'MENDER_DEVICE_TYPES_COMPATIBLE = "arm-a arm-b"' in arm


def test_explain_and_validate_print_the_effective_device_types(tmp_path):
    url, commit = _fixture_mender(tmp_path)
    path = _product(tmp_path, url, commit, "meta-mender-core")
    r = run_cli("compose", str(path), "--explain", "--json")
    assert r.returncode == 0, r.stderr
    got = {t["board"]: t for t in json.loads(r.stdout)}
    assert got["qemux86-64"]["device_type"] == "qemux86-64"
    # grub-efi enables mender-grub: the layer's override for this machine applies
    assert got["qemuarm64"]["device_type"] == "qemuarm64-grub"
    assert got["qemuarm64"]["compatible"] == ["qemuarm64-grub"]
    assert "mender-setup.bbclass" in got["qemuarm64"]["source"]
    assert not (tmp_path / "out").exists()
    r = run_cli("validate", str(path))
    assert "qemuarm64: device type qemuarm64-grub (from meta-mender/meta-mender-core/classes/" \
           "mender-setup.bbclass)" in r.stdout


@skips.unless(META_MENDER.is_dir(), "the yocto kit (../shared/yocto-kit) is not here")
def test_real_meta_mender_gives_beaglebone_with_grub_its_grub_device_type(tmp_path):
    root = tmp_path / "ws"
    path = simple_product(root, boards=("beaglebone-yocto",))
    d = yaml.safe_load(path.read_text())
    d["repos"]["meta-mender"] = {"url": META_MENDER.as_uri(), "refs": {"scarthgap": {
        "branch": "scarthgap", "commit": SCARTHGAP_MENDER}}, "layers": ["meta-mender-core"]}
    write_yaml(path, d)
    for bootloader, expected in (("grub-efi", "beaglebone-yocto-grub"), ("u-boot", "beaglebone-yocto")):
        data = board_data("beaglebone-yocto", bootloader=bootloader,
                          image_types=["sdimg", "mender"] if bootloader == "u-boot" else ["uefiimg", "mender"])
        del data["mender"]["device_types"]
        write_yaml(root / "machines" / "beaglebone-yocto.yml", data)
        r = run_cli("compose", str(path), "--explain", "--json")
        assert r.returncode == 0, r.stderr
        (t,) = json.loads(r.stdout)
        assert (t["device_type"], t["compatible"]) == (expected, [expected])
        assert t["source"] == "meta-mender/meta-mender-core/classes/mender-setup.bbclass"


@skips.unless(META_MENDER.is_dir(), "the yocto kit (../shared/yocto-kit) is not here")
def test_an_integration_layer_conf_sets_its_own_device_type(tmp_path):
    """meta-mender-qemu's layer.conf names qemux86-64 with GRUB on BIOS `<machine>-bios`."""
    root = tmp_path / "ws"
    path = simple_product(root, boards=("qemux86-64",))
    d = yaml.safe_load(path.read_text())
    d["repos"]["meta-mender"] = {"url": META_MENDER.as_uri(), "refs": {"scarthgap": {
        "branch": "scarthgap", "commit": SCARTHGAP_MENDER}},
        "layers": ["meta-mender-core", "meta-mender-qemu"]}
    write_yaml(path, d)
    data = board_data("qemux86-64", bootloader="grub-bios", image_types=["biosimg", "mender"])
    del data["mender"]["device_types"]
    write_yaml(root / "machines" / "qemux86-64.yml", data)
    r = run_cli("compose", str(path), "--explain", "--json")
    assert r.returncode == 0, r.stderr
    (t,) = json.loads(r.stdout)
    assert t["device_type"] == "qemux86-64-bios" and t["compatible"] == ["qemux86-64-bios"]
    assert "meta-mender-qemu/conf/layer.conf" in t["source"]
