"""Pre-flight against the real layers of the shipped product (the yocto-kit): what a manifest
leaves out is judged with the defaults those layers set at the pinned commits."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from buildctl.layers.layerinfo import read_layers
from buildctl.manifest import load_product
from buildctl.preflight.run import board_layer_refs, layer_mender_settings, validate_product
from buildctl.repos import RepoCache
from tests.conftest import ROOT, run_cli
from tests.layers.kit import need_kit


@pytest.fixture(scope="module")
def kit():
    return need_kit()


def _shipped_copy(tmp_path: Path, boards: dict[str, dict] | None = None) -> Path:
    """products/demo.yml + machines/ in tmp_path, the local layers read from the checkout;
    boards: machine file name -> changes (a None value deletes the key)."""
    (tmp_path / "products").mkdir()
    shutil.copytree(ROOT / "machines", tmp_path / "machines")
    product = yaml.safe_load((ROOT / "products" / "demo.yml").read_text())
    product["repos"]["buildctl"]["path"] = str(ROOT)
    product["mender"].pop("signing_key", None)
    product["mender"]["require_signed"] = False
    for name, changes in (boards or {}).items():
        f = tmp_path / "machines" / f"{name}.yml"
        data = yaml.safe_load(f.read_text())
        for key, value in changes.items():
            target, _, leaf = key.rpartition(".")
            node = data
            for part in filter(None, target.split(".")):
                node = node[part]
            if value is None:
                node.pop(leaf, None)
            else:
                node[leaf] = value
        f.write_text(yaml.safe_dump(data, sort_keys=False))
    path = tmp_path / "products" / "demo.yml"
    path.write_text(yaml.safe_dump(product, sort_keys=False))
    return path


def _settings(path: Path, kit: Path, board: str):
    product = load_product(path)
    b = product.boards[board]
    refs, problems = board_layer_refs(product, b, None, RepoCache(ref_dir=kit, offline=True))
    assert problems == []
    return layer_mender_settings(product, b, read_layers(refs))


def test_shipped_product_has_no_findings_against_the_kit(kit):
    r = run_cli("validate", "products/demo.yml", "--repo-ref-dir", str(kit), "--offline", "--json",
                cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] and out["findings"] == [] and len(out["boards"]) == 8


SILENT = {"mender.storage": None, "mender.device_types": None, "mender.image_types": None,
          "mender.bootloader": None}


def test_board_that_leaves_mender_to_its_layers_gets_their_defaults(tmp_path, kit):
    path = _shipped_copy(tmp_path, {"qemux86-64": SILENT, "raspberrypi4-64": SILENT,
                                    "beaglebone-yocto": SILENT})
    q = _settings(path, kit, "qemux86-64")
    # meta-mender-qemu's layer.conf sets /dev/sda for qemux86-64 with mender-update-install;
    # sizes are meta-mender-core's mender-setup.bbclass defaults; GRUB + UEFI from mender-full
    assert (q.device, q.total_mb, q.boot_mb, q.data_mb) == ("/dev/sda", 1024, 16, 128)
    assert (q.bootloader, q.image_types, q.device_types) == ("grub-efi", ("uefiimg", "mender"), ("qemux86-64",))
    assert q.alignment_bytes == 8 * 1024 * 1024
    rpi = _settings(path, kit, "raspberrypi4-64")  # meta-mender-raspberrypi: U-Boot + SD image for rpi
    assert (rpi.bootloader, rpi.image_types, rpi.device) == ("u-boot", ("sdimg", "mender"), "/dev/mmcblk0")
    bb = _settings(path, kit, "beaglebone-yocto")  # mender-full: GRUB; device type gets "-grub"
    assert (bb.bootloader, bb.device_types, bb.image_types) == ("grub-efi", ("beaglebone-yocto-grub",),
                                                                ("sdimg", "mender"))

    product = load_product(path)
    found = validate_product(product, list(product.boards.values()), None,
                             RepoCache(ref_dir=kit, offline=True))
    assert found == []  # builds with upstream defaults: no error


def test_a_manifest_value_is_judged_with_the_layers_defaults_for_the_rest(tmp_path, kit):
    path = _shipped_copy(tmp_path, {"qemux86-64": {"mender.storage": {"total_mb": 256}}})
    product = load_product(path)
    found = validate_product(product, [product.boards["qemux86-64"]], None,
                             RepoCache(ref_dir=kit, offline=True))
    (f,) = found
    assert f.code == "mender-storage" and f.severity == "error"
    # boot 16 and data 128 MB are meta-mender's defaults, the total is the manifest's
    assert "total 256 MB - boot 16 MB - data 128 MB" in f.message
    assert "layers' defaults" in f.message and "storage.data_mb" in f.message
    assert Path(f.file).name == "qemux86-64.yml" and f.line is not None


def test_without_the_repositories_each_one_is_reported_once(tmp_path):
    # no kit, no network, an empty cache: every remote repository is unreadable
    r = run_cli("validate", "products/demo.yml", "--offline", "--json", cwd=ROOT)
    assert r.returncode == 1
    findings = json.loads(r.stdout)["findings"]
    assert {f["code"] for f in findings} == {"repo-unavailable"}  # no knock-on findings
    messages = [f["message"] for f in findings]
    assert len(messages) == len(set(messages)) == 12  # one per repository the product uses
    core = next(f for f in findings if "repo openembedded-core:" in f["message"])
    assert core["board"].split(", ") == sorted(load_product(ROOT / "products" / "demo.yml").boards)
    assert core["file"] == "products/demo.yml" and core["line"] == 17
    for f in findings:  # paths a user can open from here
        assert not Path(f["file"]).is_absolute() and (ROOT / f["file"]).is_file()
