"""Boot an emulated board in QEMU and run smoke checks on its serial console.

QEMU's serial port is a Unix socket in a private temporary directory that QEMU listens on
and waits for: buildctl connects before the guest starts, so nothing of the boot log is lost.
A reader thread collects everything the guest writes; `SerialConsole.expect` waits for a
pattern in what arrived since a given offset.

A check is typed on the console as one line

    echo "@@BC""TL-BEGIN <id>"; <command>; echo "@@BC""TL-END <id> $?"

The guest's echo of that line never matches the markers (the quotes split them), so the
output of the command is what lies between the BEGIN line and the END marker, and the number
after the END marker is its exit status.

QEMU runs in its own process group; `Vm.stop` (always called, from a finally) sends SIGTERM
to the group, then SIGKILL if it has not gone within a few seconds, and reaps it. Should
buildctl itself be killed, the kernel kills QEMU too (PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from buildctl.devtest.report import Step
from buildctl.errors import UserError

ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>78c])")
EXCERPT_LINES = 40


@dataclass(frozen=True)
class QemuMachine:
    """How one emulated board is started: knowledge about QEMU, kept as data."""

    board: str
    binary: str  # qemu-system-* program
    arch: str  # platform.machine() of a host that can run it with KVM
    machine: str
    cpu_tcg: str  # CPU model under TCG (KVM uses "host")
    console: str  # the guest kernel's serial console device
    disk_if: str  # -drive interface for the disk image
    firmware: tuple[str, ...]  # UEFI firmware files to try for disk images (Debian paths)
    debian_package: str  # where `binary` comes from
    firmware_package: str  # where `firmware` comes from (Debian)


MACHINES: dict[str, QemuMachine] = {
    m.board: m for m in (
        QemuMachine(board="qemux86-64", binary="qemu-system-x86_64", arch="x86_64",
                    machine="q35", cpu_tcg="qemu64", console="ttyS0", disk_if="ide",
                    firmware=("/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd"),
                    debian_package="qemu-system-x86", firmware_package="ovmf"),
        QemuMachine(board="qemuarm64", binary="qemu-system-aarch64", arch="aarch64",
                    machine="virt", cpu_tcg="cortex-a57", console="ttyAMA0", disk_if="virtio",
                    firmware=("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
                              "/usr/share/AAVMF/AAVMF_CODE.fd"),
                    debian_package="qemu-system-arm", firmware_package="qemu-efi-aarch64"),
    )
}


def machine_for(board: str) -> QemuMachine:
    try:
        return MACHINES[board]
    except KeyError:
        raise UserError(f"--board {board}: not an emulated board; QEMU boards: "
                        f"{', '.join(MACHINES)} (real boards run in a LAVA lab: --lava URL)") from None


@dataclass(frozen=True)
class BootTarget:
    """What to boot: a disk image (through UEFI firmware), or a kernel with an initramfs.
    `extra` disks (read-only, e.g. an update artifact the device installs) follow the image on
    the same interface; `disk_if` replaces the board's when the image's kernel wants another."""

    image: Path | None = None
    kernel: Path | None = None
    initrd: Path | None = None
    append: str = ""
    extra: tuple[Path, ...] = ()
    disk_if: str | None = None


@dataclass(frozen=True)
class Check:
    """One smoke check: a shell command; passes on `expect_exit` and, when given, output that
    matches `expect_output` (a regular expression, whole stripped output)."""

    name: str
    command: str
    expect_exit: int = 0
    expect_output: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class Reboot:
    """A step that reboots the device and waits until it is back at a shell (an update's
    reboot). The VM is started so that a guest reboot restarts it instead of ending QEMU."""

    name: str = "reboot"
    command: str = "reboot"
    timeout: float = 300.0
    # seconds a panicked kernel may take to reboot itself before the VM is reset, as a
    # board's hardware watchdog resets it (None: wait for the timeout)
    watchdog: float | None = None


PANIC = r"Kernel panic - not syncing"


@dataclass
class Login:
    prompt: str = r"login:\s*$"  # regular expression, at the end of what arrived
    user: str = "root"


def kvm_usable(m: QemuMachine) -> bool:
    if platform.machine() != m.arch:
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def find_firmware(m: QemuMachine) -> Path:
    for p in m.firmware:
        if Path(p).is_file():
            return Path(p)
    raise UserError(f"no UEFI firmware for {m.board} (looked for {', '.join(m.firmware)})")


def command_line(m: QemuMachine, target: BootTarget, serial_socket: Path, *,
                 memory_mb: int = 512, kvm: bool = False, reboot: bool = False,
                 monitor_socket: Path | None = None) -> list[str]:
    cmd = [m.binary, "-M", m.machine, "-m", str(memory_mb), "-smp", "1",
           "-nodefaults", "-no-user-config", "-display", "none", *([] if reboot else ["-no-reboot"]),
           "-chardev", f"socket,id=ser0,path={serial_socket},server=on,wait=on",
           "-serial", "chardev:ser0"]
    if monitor_socket is not None:  # the human monitor, for system_reset
        cmd += ["-monitor", f"unix:{monitor_socket},server=on,wait=off"]
    cmd += ["-accel", "kvm", "-cpu", "host"] if kvm else ["-accel", "tcg", "-cpu", m.cpu_tcg]
    if target.kernel:
        cmd += ["-kernel", str(target.kernel)]
        if target.initrd:
            cmd += ["-initrd", str(target.initrd)]
        cmd += ["-append", f"console={m.console} panic=-1 {target.append}".strip()]
    if target.image:
        if not target.kernel:
            cmd += ["-bios", str(find_firmware(m))]
        # QEMU's option syntax: a comma inside a value is written twice
        image = str(target.image).replace(",", ",,")
        cmd += ["-drive", f"file={image},format=raw,if={target.disk_if or m.disk_if},snapshot=on"]
    for disk in target.extra:
        disk = str(disk).replace(",", ",,")
        cmd += ["-drive", f"file={disk},format=raw,if={target.disk_if or m.disk_if},readonly=on"]
    return cmd


class ConsoleClosed(Exception):
    """The VM went away (QEMU exited or closed the serial socket)."""


def _incomplete_tail(text: str) -> str:
    """The end of text that may continue in the next chunk: a lone \r (a \n may follow) or an
    escape sequence cut in half. Everything else is complete and can be matched now."""
    if text.endswith("\r"):
        return "\r"
    i = text.rfind("\x1b")
    if i >= 0 and len(text) - i < 16 and not ANSI.match(text, i):
        return text[i:]
    return ""


class SerialConsole:
    """The guest's serial port: everything it wrote so far (`text`), and a way to type."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._cond = threading.Condition()
        self._raw: list[str] = []
        self.text = ""  # what arrived, ANSI escapes removed, \r\n as \n
        self.closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        pending = ""
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                pending += data.decode("utf-8", "replace")
                keep = _incomplete_tail(pending)
                ready = pending[:len(pending) - len(keep)]
                pending = keep
                clean = ANSI.sub("", ready).replace("\r\n", "\n").replace("\r", "")
                with self._cond:
                    self.text += clean
                    self._cond.notify_all()
        except OSError:
            pass
        finally:
            with self._cond:
                self.text += ANSI.sub("", pending).replace("\r", "")
                self.closed = True
                self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.text)

    def expect(self, pattern: str | re.Pattern, timeout: float, since: int = 0) -> re.Match:
        """Wait until pattern matches in what arrived since offset `since`.
        Raises TimeoutError, or ConsoleClosed when the VM went away first."""
        rx = re.compile(pattern, re.M) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self.text, since)
                if m:
                    return m
                if self.closed:
                    raise ConsoleClosed()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError()
                self._cond.wait(min(left, 0.5))

    def send(self, text: str) -> None:
        self._sock.sendall(text.encode())

    def excerpt(self, start: int, end: int | None = None) -> str:
        with self._cond:
            part = self.text[start:end]
        lines = part.splitlines()
        return "\n".join(lines[-EXCERPT_LINES:])

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent_fn():
    """A function for Popen's preexec_fn: in the child, before exec, ask the kernel to kill
    QEMU when buildctl dies, even by SIGKILL (Vm.stop's finally never runs then). Everything
    is looked up here, in the parent: the child only makes the one system call."""
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Vm:
    """A running QEMU process and its serial console. Use as a context manager: leaving it
    (normally, on a timeout or on an exception) stops QEMU and removes its files."""

    def __init__(self, machine: QemuMachine, target: BootTarget, *, memory_mb: int = 512,
                 kvm: bool | None = None, reboot: bool = False):
        self.reboot = reboot
        self.machine = machine
        self.target = target
        self.memory_mb = memory_mb
        self.kvm = kvm_usable(machine) if kvm is None else kvm
        self.proc: subprocess.Popen | None = None
        self.console: SerialConsole | None = None
        self._dir: str | None = None
        self._monitor: Path | None = None

    def __enter__(self) -> "Vm":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, connect_timeout: float = 30.0) -> None:
        if not shutil.which(self.machine.binary):
            raise UserError(f"{self.machine.binary} not found (Debian package "
                            f"{self.machine.debian_package})")
        self._dir = tempfile.mkdtemp(prefix="buildctl-qemu-")
        sock_path = Path(self._dir) / "serial.sock"
        self._monitor = Path(self._dir) / "monitor.sock" if self.reboot else None
        self.command = command_line(self.machine, self.target, sock_path,
                                    memory_mb=self.memory_mb, kvm=self.kvm, reboot=self.reboot,
                                    monitor_socket=self._monitor)
        self._stderr = open(Path(self._dir) / "qemu.stderr", "w+")
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                     stdout=self._stderr, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_parent_fn())
        deadline = time.monotonic() + connect_timeout
        while True:
            if self.proc.poll() is not None:
                raise UserError(f"{self.machine.binary} exited with status "
                                f"{self.proc.returncode}: {self.qemu_output().strip()[-500:]}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(sock_path))
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise UserError(f"{self.machine.binary} did not open its serial socket "
                                    f"in {connect_timeout:g} s")
                time.sleep(0.05)
        self.console = SerialConsole(s)

    def reset(self) -> None:
        """Reset the guest (QEMU's system_reset on its monitor), as a watchdog resets a board."""
        if self._monitor is None:
            raise RuntimeError("this VM was started without reboots")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self._monitor))
            s.sendall(b"system_reset\n")
            time.sleep(0.2)  # let the monitor read the command before the socket closes

    def qemu_output(self) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read()
        except (AttributeError, ValueError, OSError):
            return ""
        # QEMU's note that it waits for us on the serial socket is not news
        return "\n".join(line for line in text.splitlines() if "QEMU waiting for connection" not in line)

    def stop(self, grace: float = 5.0) -> None:
        """Stop QEMU and everything in its process group; idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
                if proc.poll() is not None:
                    break
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue
            else:
                proc.wait()
            # the group may hold helpers QEMU started; none may outlive the run
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.console is not None:
            self.console.close()
        if getattr(self, "_stderr", None) is not None:
            self._stderr.close()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- the serial protocol ---------------------------------------------------------------

    def run(self, command: str, timeout: float) -> tuple[int, str, int]:
        """Type command on the console; return (exit status, output, log offset it began at).
        Raises TimeoutError when the end marker does not come in time."""
        con = self.console
        start = con.mark()
        tag = uuid.uuid4().hex[:12]
        con.send(f'echo "@@BC""TL-BEGIN {tag}"; {command}; echo "@@BC""TL-END {tag} $?"\n')
        begin = con.expect(rf"^@@BCTL-BEGIN {tag}\n", timeout, since=start)
        end = con.expect(rf"@@BCTL-END {tag} (\d+)\n", timeout, since=begin.end())
        return int(end.group(1)), con.text[begin.end():end.start()], start


def _step(name: str, status: str, t0: float, message: str = "", **kw) -> Step:
    return Step(name=name, status=status, seconds=round(time.monotonic() - t0, 3),
                message=message, **kw)


def _back_at_login(vm: Vm, r: Reboot, login: Login, since: int, deadline: float) -> int:
    """Wait for the login prompt; a kernel panic that does not end in a reboot within
    r.watchdog seconds gets the VM reset (QEMU's system_reset). Returns the resets made."""
    con = vm.console
    if r.watchdog is None:
        con.expect(login.prompt, deadline - time.monotonic(), since=since)
        return 0
    either = re.compile(f"(?P<login>{login.prompt})|(?P<panic>{PANIC})", re.M)
    resets = 0
    while True:
        m = con.expect(either, deadline - time.monotonic(), since=since)
        if m.group("login"):
            return resets
        since = m.end()
        try:  # a kernel that reboots on panic is back at the firmware soon
            con.expect(login.prompt, min(r.watchdog, max(0.0, deadline - time.monotonic())),
                       since=since)
            return resets
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise
        vm.reset()
        resets += 1
        since = con.mark()


def _reboot(vm: Vm, r: Reboot, login: Login) -> Step:
    con = vm.console
    t = time.monotonic()
    mark = con.mark()
    con.send(r.command + "\n")
    resets = 0
    try:
        resets = _back_at_login(vm, r, login, mark, t + r.timeout)
        back = time.monotonic() - t
        con.send(login.user + "\n")
        vm.run("true", timeout=max(10.0, r.timeout - back))
    except TimeoutError:
        return _step(r.name, "failed", t, f"not back at a shell within {r.timeout:g} s",
                     command=r.command, serial=con.excerpt(mark))
    except ConsoleClosed:
        return _step(r.name, "failed", t, "the VM stopped instead of rebooting",
                     command=r.command, serial=con.excerpt(mark))
    reset = (f"; the kernel panicked and did not reboot within {r.watchdog:g} s: the VM was "
             "reset, as a board's watchdog resets it" if resets else "")
    return _step(r.name, "passed", t, f"back at the login prompt after {back:.1f} s{reset}",
                 command=r.command, serial=con.excerpt(mark))


def boot_and_check(vm: Vm, checks: list[Check | Reboot], *, boot_timeout: float,
                   login: Login | None = None) -> list[Step]:
    """Boot (vm must be started), log in, run the checks. Every step is reported; when the
    boot or the login fails the checks are reported as skipped."""
    login = login or Login()
    con = vm.console
    steps: list[Step] = []
    t0 = time.monotonic()
    accel = "KVM" if vm.kvm else "TCG"
    try:
        con.expect(login.prompt, boot_timeout)
        steps.append(_step("boot", "passed", t0, f"login prompt after {time.monotonic() - t0:.1f} s "
                           f"({accel})", serial=con.excerpt(0)))
        t1 = time.monotonic()
        mark = con.mark()
        con.send(login.user + "\n")
        # the shell is there when a command comes back through the protocol
        status, _, _ = vm.run("true", timeout=max(10.0, boot_timeout - (t1 - t0)))
        steps.append(_step("login", "passed" if status == 0 else "failed", t1,
                           f"logged in as {login.user}", serial=con.excerpt(mark)))
    except (TimeoutError, ConsoleClosed) as exc:
        closed = isinstance(exc, ConsoleClosed)
        what = "boot" if not steps else "login"
        msg = (f"the VM stopped before the {'login prompt' if what == 'boot' else 'shell'} "
               f"({vm.qemu_output().strip()[-300:] or 'no QEMU message'})" if closed else
               f"no {'login prompt' if what == 'boot' else 'shell'} within {boot_timeout:g} s ({accel}"
               + ("; if this host's KVM cannot run the guest, try --accel tcg)" if vm.kvm else ")"))
        steps.append(_step(what, "failed", t0, msg, serial=con.excerpt(0)))
        for c in checks:
            steps.append(Step(name=c.name, status="skipped", message=f"{what} failed",
                              command=c.command))
        return steps
    for i, c in enumerate(checks):
        if isinstance(c, Reboot):
            steps.append(_reboot(vm, c, login))
            if steps[-1].status == "failed":
                for rest in checks[i + 1:]:
                    steps.append(Step(name=rest.name, status="skipped", message=f"{c.name} failed",
                                      command=rest.command))
                break
            continue
        t = time.monotonic()
        mark = con.mark()
        try:
            status, output, mark = vm.run(c.command, c.timeout)
        except TimeoutError:
            steps.append(_step(c.name, "failed", t, f"no end marker within {c.timeout:g} s",
                               command=c.command, serial=con.excerpt(mark)))
            con.send("\x03\n")  # interrupt what hangs so that the next check gets a shell
            continue
        except ConsoleClosed:
            steps.append(_step(c.name, "failed", t, "the VM stopped", command=c.command,
                               serial=con.excerpt(mark)))
            continue
        output = output.strip("\n")
        problems = []
        if status != c.expect_exit:
            problems.append(f"exit status {status}, expected {c.expect_exit}")
        if c.expect_output is not None and not re.fullmatch(c.expect_output, output.strip(), re.S):
            problems.append(f"output {output.strip()[:200]!r} does not match {c.expect_output!r}")
        steps.append(_step(c.name, "failed" if problems else "passed", t, "; ".join(problems),
                           command=c.command, exit_code=status, output=output,
                           serial=con.excerpt(mark)))
    return steps


def run_session(machine: QemuMachine, target: BootTarget, checks: list[Check | Reboot], *,
                boot_timeout: float = 300.0, login: Login | None = None,
                memory_mb: int = 512, kvm: bool | None = None, ota=None) -> tuple[list[Step], dict]:
    """Start the VM, boot, check, then the OTA round trip when `ota` (a devtest.ota.OtaUpdate,
    whose artifacts must be target.extra[0:2]) is given; stop the VM (always). Returns the
    steps and facts about the run."""
    from buildctl.devtest import ota as ota_mod

    reboot = ota is not None or any(isinstance(c, Reboot) for c in checks)
    login = login or Login()
    with Vm(machine, target, memory_mb=memory_mb, kvm=kvm, reboot=reboot) as vm:
        steps = boot_and_check(vm, checks, boot_timeout=boot_timeout, login=login)
        if ota is not None:
            logged_in = any(s.name == "login" and s.status == "passed" for s in steps)
            steps += (ota_mod.round_trip(vm, login, ota, target.disk_if or machine.disk_if)
                      if logged_in else ota_mod.skipped("login failed"))
        facts = {"accelerator": "kvm" if vm.kvm else "tcg", "command": vm.command}
    return steps, facts
