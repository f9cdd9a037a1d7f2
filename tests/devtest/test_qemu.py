"""The QEMU runner against real QEMU (TCG, so that it behaves the same on every host)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from buildctl.devtest import qemu, report
from tests.conftest import ROOT, run_cli
from tests.devtest import fixture
from tests.devtest.conftest import processes_using

X86 = qemu.MACHINES["qemux86-64"]


def test_boot_checks_and_reboots_with_serial_excerpts(kernel, initrd):
    before = "touch /tmp/before-reboot && cat /proc/sys/kernel/random/boot_id"
    checks = [qemu.Check("kernel", "uname -r", expect_output=r"\d+\.\d+\.\d+-\S+"),
              qemu.Check("missing-file", "cat /etc/no-such-file"),
              qemu.Check("wrong-output", "echo hello", expect_output="goodbye"),
              qemu.Check("mark", before),
              qemu.Reboot(command="reboot -f", timeout=60),
              qemu.Check("fresh", "test ! -e /tmp/before-reboot && cat /proc/sys/kernel/random/boot_id"),
              qemu.Reboot(name="reboot-again", command="echo not rebooting", timeout=5),
              qemu.Check("after", "true")]
    steps, facts = qemu.run_session(X86, qemu.BootTarget(kernel=kernel, initrd=initrd, append="quiet"),
                                    checks, boot_timeout=60, kvm=False)
    by = {s.name: s for s in steps}
    assert [s.name for s in steps] == ["boot", "login", "kernel", "missing-file", "wrong-output",
                                       "mark", "reboot", "fresh", "reboot-again", "after"]
    assert by["boot"].status == "passed" and "fixture login:" in by["boot"].serial
    assert by["login"].status == "passed"
    assert by["kernel"].status == "passed"
    assert kernel.name.removeprefix("vmlinuz-") == by["kernel"].output  # the guest's uname
    miss = by["missing-file"]
    assert miss.status == "failed" and miss.exit_code == 1
    assert "exit status 1" in miss.message
    assert "no-such-file" in miss.serial and "No such file" in miss.serial
    wrong = by["wrong-output"]
    assert wrong.status == "failed" and wrong.exit_code == 0 and wrong.output == "hello"
    assert "goodbye" in wrong.message
    assert facts["accelerator"] == "tcg"
    # a reboot step (an update's reboot): QEMU restarts the guest, the runner logs in again
    assert "-no-reboot" not in facts["command"]
    assert by["reboot"].status == "passed", by["reboot"].serial
    assert by["fresh"].status == "passed"  # a new boot: the file is gone, another boot id
    assert by["fresh"].output != by["mark"].output and len(by["fresh"].output) == 36
    assert by["reboot-again"].status == "failed" and "within 5 s" in by["reboot-again"].message
    assert by["after"].status == "skipped"
    assert processes_using(initrd) == []


def test_hung_boot_ends_at_its_timeout_and_leaves_nothing_running(kernel, hung_initrd):
    t0 = time.monotonic()
    steps, _ = qemu.run_session(X86, qemu.BootTarget(kernel=kernel, initrd=hung_initrd),
                                [qemu.Check("kernel", "uname -r")], boot_timeout=15, kvm=False)
    elapsed = time.monotonic() - t0
    assert 15 <= elapsed < 30  # the timeout, plus stopping QEMU (a loaded CI host is slow)
    assert steps[0].name == "boot" and steps[0].status == "failed"
    assert "no login prompt within 15 s" in steps[0].message
    assert "fixture: init started" in steps[0].serial  # how far it got
    assert [(s.name, s.status) for s in steps[1:]] == [("kernel", "skipped")]
    assert processes_using(hung_initrd) == []


def test_vm_is_stopped_when_the_caller_fails(kernel, hung_initrd):
    try:
        with qemu.Vm(X86, qemu.BootTarget(kernel=kernel, initrd=hung_initrd), kvm=False) as vm:
            assert processes_using(hung_initrd) == [vm.proc.pid]
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert processes_using(hung_initrd) == []


def test_vm_goes_when_buildctl_is_killed(kernel, hung_initrd):
    """A CI job timeout may SIGKILL buildctl: no finally runs, the VM must still go."""
    code = ("import sys, time\n"
            "from buildctl.devtest import qemu\n"
            "vm = qemu.Vm(qemu.MACHINES['qemux86-64'], qemu.BootTarget(kernel=sys.argv[1], "
            "initrd=sys.argv[2]), kvm=False)\n"
            "vm.start(); print(vm.proc.pid, vm._dir, flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(kernel), str(hung_initrd)], cwd=ROOT,
                         stdout=subprocess.PIPE, text=True)
    try:
        pid_text, vm_dir = p.stdout.readline().split()
        qemu_pid = int(pid_text)
        assert qemu_pid in processes_using(hung_initrd)
        p.kill()
        p.wait()
        deadline = time.monotonic() + 10
        while processes_using(hung_initrd) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_using(hung_initrd) == []
    finally:
        p.kill()
        p.wait()
        if "vm_dir" in locals():  # a killed buildctl cannot remove it; the test does
            shutil.rmtree(vm_dir, ignore_errors=True)


def test_cli_reports_each_step_as_json_and_junit(kernel, initrd, tmp_path):
    junit, rep = tmp_path / "junit.xml", tmp_path / "report.json"
    r = run_cli("test", "products/demo.yml", "--board", "qemux86-64", "--kernel", str(kernel),
                "--initrd", str(initrd), "--accel", "tcg", "--boot-timeout", "60", "--json",
                "--junit", str(junit), "--report", str(rep), cwd=ROOT)
    assert r.returncode == 1, r.stderr  # the fixture has no Mender client
    data = json.loads(r.stdout)
    assert data == json.loads(rep.read_text())
    status = {s["name"]: s["status"] for s in data["steps"]}
    assert status == {"boot": "passed", "login": "passed", "kernel": "passed",
                      "mender-artifact": "failed", "services": "failed", "ota-update": "skipped"}
    ota = next(s for s in data["steps"] if s["name"] == "ota-update")
    assert ota["message"].startswith("no .mender to install")  # a kernel boot has no artifact
    assert data["verdict"] == "failed" and data["board"] == "qemux86-64"
    mender = next(s for s in data["steps"] if s["name"] == "mender-artifact")
    assert "mender: not found" in mender["serial"]
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "2", "1")
    case = suite.find("testcase[@name='mender-artifact']")
    assert case.find("failure") is not None
    assert "mender: not found" in case.find("system-out").text
    assert suite.find("testcase[@name='kernel']").find("failure") is None
    assert processes_using(initrd) == []


def test_cli_boots_the_deploy_outputs_through_uefi_firmware(kernel, initrd, tmp_path):
    from tests.devtest.conftest import need_disk_tools

    need_disk_tools()
    deploy = tmp_path / "out" / "qemux86-64-release" / "deploy"
    image = fixture.disk_image(deploy / "core-image-minimal-qemux86-64.uefiimg", kernel, initrd)
    r = run_cli("test", "products/demo.yml", "--board", "qemux86-64", "--out", str(tmp_path / "out"),
                "--accel", "tcg", "--boot-timeout", "90", cwd=ROOT)
    assert r.returncode == 1, r.stderr  # booted and logged in; the fixture has no Mender client
    assert "passed  boot" in r.stdout and "failed  mender-artifact" in r.stdout
    rep = json.loads((tmp_path / "out" / "qemux86-64-release" / "devtest-report.json").read_text())
    assert rep["target"] == {"image": str(image)}
    assert "-bios" in rep["facts"]["command"]
    assert [s["status"] for s in rep["steps"][:3]] == ["passed", "passed", "passed"]
    assert processes_using(image) == []
    # a release step asks for the verdict of this very image; a rebuilt image is untested
    board_dir = tmp_path / "out" / "qemux86-64-release"
    assert report.tested_verdict(board_dir, image) == "failed"
    with open(image, "ab") as f:
        f.write(b"rebuilt")
    assert report.tested_verdict(board_dir, image) is None
    assert report.tested_verdict(tmp_path, image) is None  # no report there


def test_cli_bad_input_is_one_line(tmp_path):
    r = run_cli("test", "products/demo.yml", "--board", "raspberrypi5", cwd=ROOT)
    assert r.returncode == 2 and "not an emulated board" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_cli("test", "products/demo.yml", "--board", "qemux86-64", "--out", str(tmp_path), cwd=ROOT)
    assert r.returncode == 2 and "no deploy outputs" in r.stderr
    (tmp_path / "qemux86-64-release" / "deploy").mkdir(parents=True)
    r = run_cli("test", "products/demo.yml", "--board", "qemux86-64", "--out", str(tmp_path), cwd=ROOT)
    assert r.returncode == 2 and "no disk image (*.uefiimg)" in r.stderr
    r = run_cli("test", "products/demo.yml", "--board", "qemux86-64", "--kernel", str(tmp_path / "nope"), cwd=ROOT)
    assert r.returncode == 2 and "nope: no such file" in r.stderr
    junk = tmp_path / "vmlinuz"
    junk.write_text("not a kernel\n")
    for artifact, message in ((tmp_path / "nope.mender", "nope.mender: no such file"),
                              (junk, "vmlinuz: artifact: truncated")):
        r = run_cli("test", "products/demo.yml", "--board", "qemux86-64", "--kernel", str(junk),
                    "--ota-artifact", str(artifact), cwd=ROOT)
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("test", "products/demo.yml", "--board", "qemux86-64", "--kernel", str(junk),
                "--accel", "tcg", cwd=ROOT)
    assert r.returncode == 1 and r.stderr == ""  # QEMU started: its refusal is the boot's result
    assert "failed  boot the VM stopped before the login prompt" in r.stdout
    assert "qemu: invalid kernel header" in r.stdout and "waiting for connection" not in r.stdout
    assert list(tmp_path.rglob("*.json")) == []


def test_qemuarm64_boots_its_arm64_kernel_and_runs_the_checks(arm64_boot):
    kernel, initrd = arm64_boot
    r = run_cli("test", "products/demo.yml", "--board", "qemuarm64", "--kernel", str(kernel),
                "--initrd", str(initrd), "--accel", "tcg", "--boot-timeout", "120", "--json", cwd=ROOT)
    assert r.returncode == 1, r.stderr  # booted; the fixture has no Mender client, no systemd
    data = json.loads(r.stdout)
    by = {s["name"]: s for s in data["steps"]}
    assert [by[n]["status"] for n in ("boot", "login", "kernel")] == ["passed"] * 3
    # the guest runs the arm64 kernel it was given, on an emulated Cortex-A57 (virt machine)
    assert by["kernel"]["output"] == "Linux " + kernel.name.removeprefix("vmlinuz-")
    assert by["kernel"]["output"].endswith("-arm64")
    cmd = data["facts"]["command"]
    assert cmd[0] == "qemu-system-aarch64" and cmd[cmd.index("-M") + 1] == "virt"
    assert "console=ttyAMA0" in cmd[cmd.index("-append") + 1]
    assert processes_using(initrd) == []
