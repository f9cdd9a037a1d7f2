"""Manifest-level pre-flight checks, each with a failing and a passing case."""
from __future__ import annotations

import pytest

from buildctl.manifest import load_product
from buildctl.preflight.manifest_checks import check_board, rootfs_size_bytes
from tests.helpers.products import board_data, simple_product, write_yaml


def _findings(tmp_path, **board_changes):
    path = simple_product(tmp_path)
    data = board_data("qemux86-64")
    for k, v in board_changes.items():
        if k == "mender":
            data["mender"].update(v)
        else:
            data[k] = v
    write_yaml(tmp_path / "machines" / "qemux86-64.yml", data)
    product = load_product(path)
    return check_board(product, product.boards["qemux86-64"], None)


def codes(findings):
    return {f.code for f in findings if f.severity == "error"}


def test_good_board_has_no_findings(tmp_path):
    assert _findings(tmp_path) == []


def test_board_name_and_machine_disagree(tmp_path):
    f = _findings(tmp_path, machine="qemux86")
    assert any(x.code == "board-name" and "machine is 'qemux86'" in x.message and x.line == 1 for x in f)


def test_series_the_board_cannot_follow(tmp_path):
    f = _findings(tmp_path, series=["kirkstone"])
    assert any("cannot follow series scarthgap: it supports kirkstone" in x.message for x in f)


def test_storage_that_does_not_add_up(tmp_path):
    f = _findings(tmp_path, mender={"storage": {"device": "/dev/sda", "total_mb": 1024,
                                                "boot_mb": 256, "data_mb": 700}})
    msg = [x.message for x in f if x.code == "mender-storage"]
    assert msg and "total 1024 MB - boot 256 MB - data 700 MB leaves 24 MB per rootfs" in msg[0]


def test_bootloader_that_the_image_type_cannot_use(tmp_path):
    f = _findings(tmp_path, mender={"bootloader": "u-boot", "image_types": ["uefiimg", "mender"]})
    assert any("image type uefiimg cannot boot with bootloader u-boot (needs grub-efi)" in x.message
               for x in f)


def test_missing_device_type_is_left_to_the_layers(tmp_path):
    path = simple_product(tmp_path)
    data = board_data("qemux86-64")
    del data["mender"]["device_types"]
    write_yaml(tmp_path / "machines" / "qemux86-64.yml", data)
    product = load_product(path)
    assert check_board(product, product.boards["qemux86-64"], None) == []


@pytest.mark.parametrize("mender,message", [
    ({"signing_key": "env:K"}, "releases are signed but devices would accept unsigned artifacts"),
    ({"verify_key": "file:v.pem"}, "devices verify signatures (mender.verify_key) but releases are not signed"),
    ({"signing_key": "env:K", "require_signed": True}, None),
    ({"signing_key": "env:K", "verify_key": "file:v.pem"}, None),
    ({}, None),
])
def test_devices_and_releases_agree_on_signatures(tmp_path, mender, message):
    import yaml
    path = simple_product(tmp_path)
    d = yaml.safe_load(path.read_text())
    d["mender"] = mender
    write_yaml(path, d)
    product = load_product(path)
    found = [f for f in check_board(product, product.boards["qemux86-64"], None) if f.code == "mender-signing"]
    if message is None:
        assert found == []
    else:
        assert len(found) == 1 and message in found[0].message and found[0].severity == "error"
        assert found[0].file.endswith("demo.yml") and found[0].line is not None


def test_floating_ref_unless_locked(tmp_path):
    path = simple_product(tmp_path)
    text = path.read_text()
    import yaml
    d = yaml.safe_load(text)
    commit = d["repos"]["poky"]["refs"]["scarthgap"].pop("commit")
    write_yaml(path, d)
    product = load_product(path)
    f = check_board(product, product.boards["qemux86-64"], None)
    assert any(x.code == "floating-ref" and "poky follows branch scarthgap" in x.message for x in f)
    from buildctl.compose.lockfile import Lock, LockEntry
    lock = Lock(path=tmp_path / "l.yml", repos={"poky": LockEntry(commit=commit)})
    assert "floating-ref" not in codes(check_board(product, product.boards["qemux86-64"], lock))


def test_duplicate_assignment_names_both_places(tmp_path):
    path = simple_product(tmp_path)
    import yaml
    d = yaml.safe_load(path.read_text())
    d["local_conf"] = {"GPU_MEM": "64"}
    write_yaml(path, d)
    f = _findings_for(path, tmp_path, local_conf={"GPU_MEM": "16"})
    dup = [x for x in f if x.code == "assignment-conflict"]
    assert dup and "GPU_MEM" in dup[0].message and "qemux86-64.yml" in dup[0].message \
        and "demo.yml" in dup[0].message


def _findings_for(path, tmp_path, **board_changes):
    data = board_data("qemux86-64")
    data.update(board_changes)
    write_yaml(tmp_path / "machines" / "qemux86-64.yml", data)
    product = load_product(path)
    return check_board(product, product.boards["qemux86-64"], None)


@pytest.mark.parametrize("uboot,expected_mb", [(False, 3008), (True, 3000)])
def test_rootfs_size_follows_meta_mender(uboot, expected_mb):
    # 7168 MiB total, boot 100 (aligned up to 104), data 1024, overhead 16 (+16 U-Boot env)
    assert rootfs_size_bytes(7168, 100, 1024, 8 * 1024 * 1024, uboot=uboot) // (1024 * 1024) == expected_mb


def test_dangling_bbappend_is_an_error_unless_the_board_allows_it(tmp_path):
    from buildctl.preflight.run import validate_product
    from buildctl.repos import RepoCache
    from tests.helpers.products import commit_more

    path = simple_product(tmp_path)
    poky = tmp_path / "repos" / "poky"
    import yaml
    d = yaml.safe_load(path.read_text())
    d["repos"]["poky"]["refs"]["scarthgap"]["commit"] = commit_more(
        poky, {"meta-poky/recipes-x/linux/linux-vendor_%.bbappend": "# x\n"})
    write_yaml(path, d)
    product = load_product(path)
    found = [f for f in validate_product(product, [product.boards["qemux86-64"]], None, RepoCache())
             if f.code == "bbappend-dangling"]
    assert found and found[0].severity == "error" and "linux-vendor_%.bbappend" in found[0].message
    write_yaml(tmp_path / "machines" / "qemux86-64.yml",
               board_data("qemux86-64") | {"local_conf": {"BB_DANGLINGAPPENDS_WARNONLY": "1"}})
    product = load_product(path)
    found = [f for f in validate_product(product, [product.boards["qemux86-64"]], None, RepoCache())
             if f.code == "bbappend-dangling"]
    assert found and found[0].severity == "warning"


def test_bbmask_hides_a_masked_bbappend(tmp_path):
    from buildctl.preflight.run import validate_product
    from buildctl.repos import RepoCache
    from tests.helpers.products import commit_more

    path = simple_product(tmp_path)
    import yaml
    d = yaml.safe_load(path.read_text())
    d["repos"]["poky"]["refs"]["scarthgap"]["commit"] = commit_more(
        tmp_path / "repos" / "poky", {"meta-poky/recipes-x/linux/linux-vendor_%.bbappend": "# x\n"})
    write_yaml(path, d)
    write_yaml(tmp_path / "machines" / "qemux86-64.yml", board_data("qemux86-64") | {
        "local_conf": {"BBMASK:append": " meta-poky/recipes-x/linux/linux-vendor_"}})
    product = load_product(path)
    found = validate_product(product, [product.boards["qemux86-64"]], None, RepoCache())
    assert not [f for f in found if f.code == "bbappend-dangling"]


def test_image_target_must_be_a_recipe_of_the_stack(tmp_path):
    from buildctl.preflight.run import validate_product
    from buildctl.repos import RepoCache
    import yaml

    path = simple_product(tmp_path)  # its core layer has core-image-minimal.bb
    d = yaml.safe_load(path.read_text())
    product = load_product(path)
    assert not [f for f in validate_product(product, list(product.boards.values()), None, RepoCache())
                if f.code == "target-missing"]
    d["target"] = "core-image-minimall"
    write_yaml(path, d)
    product = load_product(path)
    found = [f for f in validate_product(product, list(product.boards.values()), None, RepoCache())
             if f.code == "target-missing"]
    assert {f.board for f in found} == {"qemux86-64", "qemuarm64"}
    assert "Nothing PROVIDES 'core-image-minimall'" in found[0].message
    assert found[0].file == str(path) and found[0].line == 4


def test_unknown_distro_points_at_the_product_manifest(tmp_path):
    import yaml

    from buildctl.preflight.run import validate_product
    from buildctl.repos import RepoCache

    path = simple_product(tmp_path)
    d = yaml.safe_load(path.read_text())
    d["distro"] = "pokyy"
    write_yaml(path, d)
    product = load_product(path)
    found = [f for f in validate_product(product, [product.boards["qemux86-64"]], None, RepoCache())
             if f.code == "distro-missing"]
    assert len(found) == 1 and "DISTRO 'pokyy'" in found[0].message
    assert (found[0].file, found[0].line) == (str(path), 3)
