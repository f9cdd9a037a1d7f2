"""The OTA round trip of `buildctl test` against real QEMU (TCG), a real GRUB and Debian's real
mender-client 3.4 inside the guest. What is fixture: the device (tests/devtest/ota_fixture.py:
a busybox rootfs and an initramfs instead of a Yocto image, on virtio because Debian's cloud
kernel has no AHCI driver) and the boot environment tools the client calls (fw_printenv and
fw_setenv as shell scripts over GRUB's environment block)."""
from __future__ import annotations

import json

import pytest

from buildctl.manifest import load_product
from buildctl.ota.mender.writer import ArtifactSpec, rootfs_payload, write_artifact
from tests.conftest import ROOT, run_cli
from tests.devtest.conftest import processes_using
from tests.helpers import skips

BOARD = "qemux86-64"


@pytest.fixture(scope="module")
def device(tmp_path_factory) -> dict:
    """out/demo/qemux86-64-release/deploy as a build of the fixture device leaves it: the disk
    image (running the release's artifact on partition 2) and the release's .mender."""
    from tests.devtest import fixture, ota_fixture

    missing = ota_fixture.missing_tools()
    if missing:
        skips.missing(f"the OTA fixture needs {', '.join(missing)}", ".ci/run installs them")
    name = load_product(ROOT / "products" / "demo.yml").artifact_name(BOARD, "release")
    out = tmp_path_factory.mktemp("ota") / "out"
    deploy = out / f"{BOARD}-release" / "deploy"
    deploy.mkdir(parents=True)
    image = ota_fixture.disk_image(deploy / f"core-image-minimal-{BOARD}.uefiimg",
                                   fixture.kernel(), name, BOARD)
    rootfs = ota_fixture.rootfs_image(deploy.parent / "rootfs.ext4", name)
    artifact = deploy / f"core-image-minimal-{BOARD}.mender"
    write_artifact(ArtifactSpec(name=name, device_types=[BOARD],
                                payload=rootfs_payload(rootfs, name)), artifact)
    wrong = deploy.parent / "for-another-board.mender"
    write_artifact(ArtifactSpec(name=name, device_types=["raspberrypi4-64"],
                                payload=rootfs_payload(rootfs, name)), wrong)
    rootfs.unlink()
    return {"out": out, "image": image, "artifact": artifact, "wrong": wrong, "name": name}


def buildctl_test(device: dict, *extra: str):
    return run_cli("test", "products/demo.yml", "--board", BOARD, "--out", str(device["out"]),
                   "--accel", "tcg", "--disk-interface", "virtio", "--boot-timeout", "120",
                   "--memory", "256",
                   "--json", *extra, cwd=ROOT)


def test_update_is_installed_committed_and_a_failing_one_rolled_back(device):
    r = buildctl_test(device)
    data = json.loads(r.stdout)
    by = {s["name"]: s for s in data["steps"]}
    status = {n: s["status"] for n, s in by.items()}
    # the fixture has no systemd: that smoke check fails, and so the run
    assert r.returncode == 1 and status.pop("services") == "failed", r.stderr
    assert status == dict.fromkeys(
        ["boot", "login", "kernel", "mender-artifact", "ota-install", "ota-reboot",
         "ota-new-rootfs", "ota-commit", "ota-install-bad", "ota-rollback-reboot",
         "ota-rollback"], "passed"), {n: by[n]["message"] for n in status}
    name = device["name"]
    # what a user notices: the partition booted before and after, the committed artifact
    assert f"root=/dev/vda2\nartifact={name}" in by["ota-install"]["output"]
    assert by["ota-new-rootfs"]["output"] == f"root=/dev/vda3\nartifact={name}"
    assert "Committing Artifact" in by["ota-commit"]["output"]
    assert by["ota-commit"]["output"].endswith(f"root=/dev/vda3\nartifact={name}")
    assert "Wrote 4194304/4194304 bytes to the inactive partition" in by["ota-install-bad"]["output"]
    # the failing update never started: GRUB's boot counter sent the device back
    assert "Kernel Offset:" in by["ota-rollback-reboot"]["serial"]  # the end of the panic
    # the fixture's kernel, like meta-mender's GRUB command line, does not reboot on panic:
    # the runner resets the VM as a board's watchdog would
    assert "the kernel panicked and did not reboot within 10 s: the VM was reset" in \
        by["ota-rollback-reboot"]["message"]
    assert "the VM was reset" not in by["ota-reboot"]["message"]
    assert "grub: the update did not commit: rolling back" in by["ota-rollback-reboot"]["serial"]
    assert by["ota-rollback"]["output"] == f"root=/dev/vda3\nartifact={name}"
    assert data["facts"]["ota_artifact_sha256"]
    assert processes_using(device["image"]) == []


def test_an_update_the_client_refuses_fails_the_round_trip(device):
    r = buildctl_test(device, "--ota-artifact", str(device["wrong"]), "--report",
                      str(device["out"] / "wrong.json"))
    assert r.returncode == 1, r.stderr
    steps = json.loads(r.stdout)["steps"]
    by = {s["name"]: s for s in steps}
    assert by["ota-install"]["status"] == "failed" and by["ota-install"]["exit_code"] == 1
    assert "raspberrypi4-64" in by["ota-install"]["serial"]  # the client says why
    assert [s["status"] for s in steps[-6:]] == ["skipped"] * 6
    assert by["ota-rollback"]["message"] == "ota-install failed"
    assert processes_using(device["image"]) == []
