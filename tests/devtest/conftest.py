"""The QEMU fixture (a Debian kernel, busybox initramfs) for the device test stage's tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.devtest import fixture
from tests.helpers import skips


def need_tools() -> None:
    missing = fixture.missing_tools()
    if missing:
        skips.missing(f"device tests need {', '.join(missing)}", ".ci/run installs them")


def need_disk_tools() -> None:
    missing = fixture.missing_disk_tools()
    if missing:
        skips.missing(f"the disk image fixture needs {', '.join(missing)}", ".ci/run installs them")


@pytest.fixture(scope="session")
def kernel() -> Path:
    need_tools()
    return fixture.kernel()


@pytest.fixture
def initrd(tmp_path) -> Path:
    need_tools()
    return fixture.initramfs(tmp_path / "initrd.gz")


@pytest.fixture
def hung_initrd(tmp_path) -> Path:
    need_tools()
    return fixture.initramfs(tmp_path / "hung-initrd.gz", hang=True)


def processes_using(path: Path) -> list[int]:
    """Pids of live processes whose command line names path (our VM, if it is still there)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().decode(errors="replace")
            state = next((l for l in (d / "status").read_text().splitlines() if l.startswith("State:")), "")
        except OSError:
            continue
        if str(path) in cmd and "zombie" not in state:
            pids.append(int(d.name))
    return pids


@pytest.fixture(scope="session")
def arm64_boot(tmp_path_factory) -> tuple[Path, Path]:
    """Debian's arm64 cloud kernel and a busybox-static:arm64 initramfs (fetched with a private
    apt state, see fixture.apt_options: no foreign architecture is added to dpkg)."""
    need_tools()
    skips.tools(["qemu-system-aarch64"], ".ci/run installs qemu-system-arm")
    initrd = fixture.initramfs(tmp_path_factory.mktemp("arm64") / "initrd.gz", arch="arm64")
    return fixture.kernel("arm64"), initrd
