"""The release gate compares artifacts with the device types the board's layers compute when the
manifest leaves them to the layers, and checks name and signature even when nobody knows them."""
from __future__ import annotations

import json

import yaml

from tests.compose.test_device_types import _fixture_mender
from tests.conftest import run_cli
from tests.helpers.oe_deploy_fixture import DeployFixture, write_deploy
from tests.helpers.products import board_data, write_yaml
from tests.release.helpers import device_tested, mender_writer, release_product


def _product(tmp_path, with_layer: bool):
    """demo with qemuarm64 on grub-efi: the fixture meta-mender names its devices
    'qemuarm64-grub'; the board's manifest says nothing about device types."""
    path = release_product(tmp_path, boards=("qemuarm64",))
    d = yaml.safe_load(path.read_text())
    if with_layer:
        url, commit = _fixture_mender(tmp_path)
        d["repos"]["meta-mender"] = {"url": url, "layers": ["meta-mender-core"],
                                     "refs": {"scarthgap": {"branch": "scarthgap", "commit": commit}}}
    write_yaml(path, d)
    data = board_data("qemuarm64")
    del data["mender"]["device_types"]
    write_yaml(tmp_path / "machines" / "qemuarm64.yml", data)
    return path


def _deploy(tmp_path, device_type: str, name="demo-1.0-qemuarm64") -> None:
    fx = DeployFixture(machine="qemuarm64", image_types=("uefiimg", "mender"))
    board_dir = tmp_path / "out" / "demo" / "qemuarm64-release"
    write_deploy(board_dir / "deploy", fx, mender_writer(name, [device_type]))
    device_tested(board_dir)  # the image passed `buildctl test`: only the gate is in question


def _release(tmp_path, path):
    return run_cli("release", str(path), "--json", cwd=tmp_path)


def test_artifacts_for_machine_name_fail_when_the_layers_say_otherwise(tmp_path):
    path = _product(tmp_path, with_layer=True)
    _deploy(tmp_path, "qemuarm64")  # what a build without the layer's grub suffix would carry
    r = _release(tmp_path, path)
    assert r.returncode == 1
    assert "compatible device types ['qemuarm64'] but the board needs exactly ['qemuarm64-grub']" \
        in r.stderr + r.stdout
    assert not (tmp_path / "release" / "demo" / "1.0").exists()


def test_artifacts_with_the_layers_device_type_pass(tmp_path):
    path = _product(tmp_path, with_layer=True)
    _deploy(tmp_path, "qemuarm64-grub")
    r = _release(tmp_path, path)
    assert r.returncode == 0, r.stderr
    rel = json.loads((tmp_path / "release" / "demo" / "1.0" / "release.json").read_text())
    gate = rel["boards"][0]["gate"]
    assert gate["verdict"] == "pass" and gate["artifacts"]


def test_unknown_device_types_still_check_the_artifact_name(tmp_path):
    """No layer sets a device type here (nothing to compare with): the name is still checked."""
    path = _product(tmp_path, with_layer=False)
    _deploy(tmp_path, "anything", name="demo-0.9-qemuarm64")
    r = _release(tmp_path, path)
    assert r.returncode == 1
    assert "artifact name 'demo-0.9-qemuarm64', expected 'demo-1.0-qemuarm64'" in r.stderr + r.stdout
