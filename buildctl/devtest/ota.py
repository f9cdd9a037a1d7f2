"""The OTA round trip inside the booted VM: can the device be updated, and does a bad update
come back?

The board's .mender is attached to the VM as a read-only disk and installed by the device's
own Mender client (`mender-update install`, or `mender install` before client 4), the device
reboots into the other rootfs partition, the update is committed and the client reports the
artifact name. Then a deliberately failing update is installed: buildctl writes it itself, a
rootfs-image artifact whose payload is zeros (a rootfs that does not mount, so the kernel
cannot start. A kernel that panics and does not reboot itself within WATCHDOG_S is reset, as
a board's hardware watchdog would reset it, and the boot loader's boot counter then sends the
device back to the committed partition). Each stage is a report step with its serial excerpt:

  ota-install      the client installs the board's artifact into the inactive partition
  ota-reboot       the device reboots
  ota-new-rootfs   it runs from the other partition, the update not yet committed
  ota-commit       the client commits; it reports the artifact's name
  ota-install-bad  the client installs the failing update
  ota-rollback-reboot  the device reboots, fails to start, and is back at a login prompt
  ota-rollback     it runs from the committed partition, and the client still reports the
                   committed artifact
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from buildctl.devtest.report import Step

# the device name of the n-th disk (0: the boot disk) by QEMU -drive interface
DISK_PREFIX = {"virtio": "/dev/vd", "ide": "/dev/sd", "scsi": "/dev/sd"}
CLIENT = "$(command -v mender-update || echo mender)"  # client 4 splits out mender-update
ROOT_DEVICE = "sed -n 's/.*root=\\([^ ]*\\).*/\\1/p' /proc/cmdline"
BAD_PAYLOAD_MIB = 4
# a board resets itself through its watchdog when the new rootfs does not come up; the
# runner does the same for a kernel that panics and does not reboot on its own
WATCHDOG_S = 10.0


@dataclass(frozen=True)
class OtaUpdate:
    """What the round trip installs: the board's artifact and the failing one (as disks)."""

    artifact: Path
    artifact_name: str
    bad: Path
    bad_name: str
    reboot_timeout: float = 300.0


def disk_device(disk_if: str, index: int) -> str:
    return DISK_PREFIX.get(disk_if, "/dev/sd") + "abcdefgh"[index]


def failing_artifact(dest_dir: Path, artifact_name: str, device_types: list[str]) -> tuple[Path, str]:
    """A rootfs-image artifact for these device types whose rootfs does not mount (zeros)."""
    from buildctl.ota.mender.writer import ArtifactSpec, rootfs_payload, write_artifact

    name = f"{artifact_name}-broken"
    payload = Path(dest_dir) / "broken-rootfs.ext4"
    with open(payload, "wb") as f:
        f.truncate(BAD_PAYLOAD_MIB << 20)
    out = Path(dest_dir) / f"{name}.mender"
    write_artifact(ArtifactSpec(name=name, device_types=list(device_types),
                                payload=rootfs_payload(payload, name)), out)
    return out, name


def prepare(artifact: Path, workdir: Path) -> OtaUpdate:
    """The round trip of this artifact: its name and device types read from it, the failing
    update written into workdir."""
    from buildctl.ota.mender import read_artifact

    info = read_artifact(artifact)
    bad, bad_name = failing_artifact(workdir, info.name, list(info.device_types))
    return OtaUpdate(artifact=artifact, artifact_name=info.name, bad=bad, bad_name=bad_name)


def _step(name: str, status: str, t0: float, message: str = "", **kw) -> Step:
    return Step(name=name, status=status, seconds=round(time.monotonic() - t0, 3),
                message=message, **kw)


def round_trip(vm, login, ota: OtaUpdate, disk_if: str) -> list[Step]:
    """Run the round trip on a VM that is logged in; every step reported (after the first
    failure the rest are skipped). The VM must have been started with reboots allowed and the
    two artifacts as disks 1 and 2."""
    from buildctl.devtest import qemu

    con = vm.console
    steps: list[Step] = []
    names = ["ota-install", "ota-reboot", "ota-new-rootfs", "ota-commit", "ota-install-bad",
             "ota-rollback-reboot", "ota-rollback"]

    def run(name: str, command: str, timeout: float = 120.0, check=None) -> bool:
        t = time.monotonic()
        mark = con.mark()
        try:
            status, output, mark = vm.run(command, timeout)
        except (TimeoutError, qemu.ConsoleClosed) as exc:
            what = "the VM stopped" if isinstance(exc, qemu.ConsoleClosed) else \
                f"no end marker within {timeout:g} s"
            steps.append(_step(name, "failed", t, what, command=command, serial=con.excerpt(mark)))
            return False
        output = output.strip("\n")
        problem = f"exit status {status}" if status != 0 else (check(output) if check else "")
        steps.append(_step(name, "failed" if problem else "passed", t, problem or "",
                           command=command, exit_code=status, output=output,
                           serial=con.excerpt(mark)))
        return not problem

    def reboot(name: str) -> bool:
        steps.append(qemu._reboot(vm, qemu.Reboot(name=name, command="sync; reboot -f",
                                                  timeout=ota.reboot_timeout,
                                                  watchdog=WATCHDOG_S), login))
        return steps[-1].status == "passed"

    def state(output: str) -> dict[str, str]:
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    show = f"root=$({ROOT_DEVICE}); echo root=$root; echo artifact=$({CLIENT} show-artifact 2>/dev/null)"
    before: dict[str, str] = {}

    def remember(output: str) -> str:
        before.update(state(output))
        return "" if before.get("root") else "the root device is not on the kernel command line"

    good, bad = disk_device(disk_if, 1), disk_device(disk_if, 2)

    def on_new(output: str) -> str:
        s = state(output)
        if s.get("root") == before["root"]:
            return f"still running from {s.get('root')}: the update did not switch partitions"
        return ""

    def committed(output: str) -> str:
        s = state(output)
        if s.get("artifact") != ota.artifact_name:
            return f"the client reports {s.get('artifact')!r}, not {ota.artifact_name!r}"
        return ""

    new: dict[str, str] = {}

    def rolled_back(output: str) -> str:
        s = state(output)
        if s.get("root") != new.get("root"):
            return (f"running from {s.get('root')}, not the committed partition "
                    f"{new.get('root')}: no rollback")
        if s.get("artifact") != ota.artifact_name:
            return f"the client reports {s.get('artifact')!r} after the rollback, not {ota.artifact_name!r}"
        return ""

    ok = (run("ota-install", f"{show} && {CLIENT} install {good}", 600, remember)
          and reboot("ota-reboot")
          and run("ota-new-rootfs", show, 60, lambda o: (new.update(state(o)), on_new(o))[1])
          and run("ota-commit", f"{CLIENT} commit && {show}", 120, committed)
          and run("ota-install-bad", f"{CLIENT} install {bad}", 300)
          and reboot("ota-rollback-reboot")
          and run("ota-rollback", show, 60, rolled_back))
    if not ok:
        failed = steps[-1].name
        steps += [Step(name=n, status="skipped", message=f"{failed} failed")
                  for n in names[len(steps):]]
    return steps


def skipped(reason: str) -> list[Step]:
    return [Step(name="ota-update", status="skipped", message=reason)]
