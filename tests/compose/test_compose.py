"""compose writes plain kas files: pinned, deterministic, accepted by real `kas dump`."""
from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from buildctl.compose import compose_board
from buildctl.manifest import load_product
from tests.conftest import run_cli
from tests.helpers.products import board_data, simple_product, write_yaml


@pytest.fixture
def product_path(tmp_path):
    return simple_product(tmp_path / "ws")


def test_compose_writes_one_pinned_kas_file_per_board(product_path, tmp_path):
    r = run_cli("compose", str(product_path), "--out", str(tmp_path / "out"), "--json")
    assert r.returncode == 0, r.stderr
    out = yaml.safe_load(r.stdout)
    assert [c["board"] for c in out] == ["qemux86-64", "qemuarm64"]
    doc = yaml.safe_load((tmp_path / "out" / "qemuarm64.yml").read_text())
    assert doc["machine"] == "qemuarm64" and doc["distro"] == "poky"
    assert doc["header"]["version"] >= 14
    poky = doc["repos"]["poky"]
    assert len(poky["commit"]) == 40 and poky["branch"] == "scarthgap"
    assert set(poky["layers"]) == {"meta", "meta-poky"}
    mender = doc["local_conf_header"]["10-buildctl-mender"]
    assert 'MENDER_DEVICE_TYPE = "qemuarm64"' in mender
    assert 'MENDER_ARTIFACT_NAME = "demo-1.0-qemuarm64"' in mender
    assert "DL_DIR" not in yaml.safe_dump(doc) and "SSTATE_DIR" not in yaml.safe_dump(doc)


def test_compose_is_deterministic(product_path, tmp_path):
    product = load_product(product_path)
    a = compose_board(product, "qemux86-64", None, tmp_path / "a").kas_file.read_bytes()
    b = compose_board(load_product(product_path), "qemux86-64", None, tmp_path / "b").kas_file.read_bytes()
    assert a == b


def test_variant_adds_its_settings_only_to_that_variant(product_path, tmp_path):
    product = load_product(product_path)
    rel = compose_board(product, "qemux86-64", "release", tmp_path / "r").kas_file.read_text()
    dbg = compose_board(product, "qemux86-64", "debug", tmp_path / "d").kas_file.read_text()
    assert "debug-tweaks" in dbg and "debug-tweaks" not in rel


def test_board_filter_and_unknown_board(product_path, tmp_path):
    r = run_cli("compose", str(product_path), "--board", "qemuarm64", "--out", str(tmp_path / "o"))
    assert r.returncode == 0
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["qemuarm64.yml"]
    r = run_cli("compose", str(product_path), "--board", "rpi9", "--out", str(tmp_path / "o2"))
    assert r.returncode == 2 and "board 'rpi9' is not in this product" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o2").exists()


def test_typed_fields_become_bitbake_settings(tmp_path):
    root = tmp_path / "ws"
    path = simple_product(root)
    write_yaml(root / "machines" / "qemuarm64.yml", board_data(
        "qemuarm64", bootloader="u-boot", image_types=["sdimg", "mender"],
        storage={"device": "/dev/mmcblk0", "total_mb": 8192, "boot_mb": 128, "data_mb": 1024}))
    c = compose_board(load_product(path), "qemuarm64", None, tmp_path / "o")
    text = c.kas_file.read_text()
    assert 'MENDER_STORAGE_DEVICE = "/dev/mmcblk0"' in text
    assert 'MENDER_BOOT_PART_SIZE_MB = "128"' in text
    assert "mender-uboot mender-image-sd" in text  # enabled
    assert 'MENDER_FEATURES_DISABLE:append = " mender-grub' in text


def test_real_kas_dump_accepts_composed_file_offline(product_path, tmp_path):
    out = tmp_path / "out"
    assert run_cli("compose", str(product_path), "--out", str(out)).returncode == 0
    work = tmp_path / "kaswork"
    work.mkdir()
    r = subprocess.run(["kas", "dump", str(out / "qemux86-64.yml")], cwd=work, capture_output=True,
                       text=True, env={"PATH": "/usr/bin:/bin:/usr/local/bin:" + shutil.which("kas").rsplit("/", 1)[0],
                                       "HOME": str(tmp_path), "KAS_WORK_DIR": str(work)})
    assert r.returncode == 0, r.stderr
    dumped = yaml.safe_load(r.stdout)
    assert dumped["machine"] == "qemux86-64"
    assert dumped["repos"]["poky"]["commit"] == yaml.safe_load(
        (out / "qemux86-64.yml").read_text())["repos"]["poky"]["commit"]
    assert (work / "poky" / "meta" / "conf" / "layer.conf").exists()  # kas checked it out


def test_board_adds_layers_of_a_core_repo_without_repeating_it(tmp_path):
    root = tmp_path / "ws"
    path = simple_product(root)
    write_yaml(root / "machines" / "qemuarm64.yml",
               board_data("qemuarm64", repos={"poky": {"layers": ["meta-yocto-bsp"]}}))
    product = load_product(path)
    doc = yaml.safe_load(compose_board(product, "qemuarm64", None, tmp_path / "o").kas_file.read_text())
    assert list(doc["repos"]["poky"]["layers"]) == ["meta", "meta-poky", "meta-yocto-bsp"]
    other = yaml.safe_load(compose_board(product, "qemux86-64", None, tmp_path / "o").kas_file.read_text())
    assert list(other["repos"]["poky"]["layers"]) == ["meta", "meta-poky"]
    write_yaml(root / "machines" / "qemuarm64.yml",
               board_data("qemuarm64", repos={"meta-nope": {"layers": ["meta-x"]}}))
    from buildctl.errors import ManifestError
    with pytest.raises(ManifestError, match=r"qemuarm64.yml:\d+: repos.meta-nope: adds layers to core repo"):
        load_product(path)


def test_cache_settings_are_kas_env_defaults_not_local_conf(tmp_path):
    root = tmp_path / "ws"
    path = simple_product(root)
    d = yaml.safe_load(path.read_text())
    d["cache"] = {"hashserve": "auto", "hashserve_upstream": "ws://hashserv.example.com:8686",
                  "sstate_mirrors": ["file://.* https://sstate.example.com/PATH"]}
    write_yaml(path, d)
    kas_file = compose_board(load_product(path), "qemux86-64", None, tmp_path / "o").kas_file
    doc = yaml.safe_load(kas_file.read_text())
    # BitBake reads these from the environment before local.conf: as kas env defaults the
    # build runtime's per-phase values win; a local.conf line would override them
    assert doc["env"] == {"BB_HASHSERVE": "auto",
                          "BB_HASHSERVE_UPSTREAM": "ws://hashserv.example.com:8686",
                          "SSTATE_MIRRORS": "file://.* https://sstate.example.com/PATH"}
    conf = "".join(doc["local_conf_header"].values())
    assert 'BB_SIGNATURE_HANDLER = "OEEquivHash"' in conf
    for var in ("BB_HASHSERVE", "SSTATE_MIRRORS", "DL_DIR", "SSTATE_DIR"):
        assert f"{var} =" not in conf
    work = tmp_path / "kaswork"
    work.mkdir()
    r = subprocess.run(["kas", "dump", str(kas_file)], cwd=work, capture_output=True, text=True,
                       env={**__import__("os").environ, "KAS_WORK_DIR": str(work), "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
