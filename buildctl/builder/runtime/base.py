"""The runtime interface and what a run needs: argv, environment allowlist, mounts, owner."""
from __future__ import annotations

import subprocess
import threading

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

# Host variables a build may see (network proxies and the time zone). Everything else a build
# gets is set explicitly by buildctl; tokens and keys in the caller's environment stay out.
ENV_ALLOWLIST = ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "HTTP_PROXY",
                 "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "TZ")
DEFAULT_BUILD_UID = 1000  # the image's build user; used when buildctl itself runs as root


def resolve_owner() -> tuple[int, int]:
    """Who owns what a build writes: the invoking user, never root.

    Under sudo that is SUDO_UID/SUDO_GID; a plain root login builds as the image's build user
    (BitBake refuses to run as root).
    """
    uid, gid = os.getuid(), os.getgid()
    if uid != 0:
        return uid, gid
    if os.environ.get("SUDO_UID", "").isdigit() and os.environ["SUDO_UID"] != "0":
        return int(os.environ["SUDO_UID"]), int(os.environ.get("SUDO_GID") or os.environ["SUDO_UID"])
    return DEFAULT_BUILD_UID, DEFAULT_BUILD_UID


def allowed_host_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in ENV_ALLOWLIST if k in environ}


@dataclass(frozen=True)
class Mount:
    path: Path  # host path, mounted at the same path inside the container
    read_only: bool = False


@dataclass
class RunSpec:
    name: str  # container name (unique per build and board/phase)
    argv: list[str]
    env: dict[str, str]
    mounts: list[Mount]
    workdir: Path
    owner: tuple[int, int]
    network: bool = False  # True: the host's network; False: none at all
    labels: dict[str, str] = field(default_factory=dict)


LineSink = Callable[[str], None]


class Runtime(Protocol):
    name: str

    def prepare(self) -> dict:
        """Check the engine and image; return facts for the report (image digest ...)."""

    def run(self, spec: RunSpec, on_line: LineSink) -> int:
        """Run to completion, streaming output lines; return the exit code."""

    def attach(self, spec: RunSpec, tty: bool) -> int:
        """Run with the caller's stdin, stdout and stderr (a terminal when ``tty``): what
        ``buildctl shell`` hands the user; return the exit code."""

    def stop(self, name: str) -> None:
        """Stop a run started by :meth:`run` (from another thread)."""

    def cleanup(self) -> None:
        """Remove whatever this runtime started and did not remove yet."""


def wait_attached(proc: "subprocess.Popen") -> int:
    """Wait for a child that owns the terminal. Ctrl-C reaches the whole foreground process
    group: the child (a shell, bitbake) decides what it means, buildctl only waits."""
    import signal

    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGINT, old)


def exit_code(returncode: int) -> int:
    """A child killed by signal N exits the way a shell reports it: 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


class ProcessTable:
    """The child processes a subprocess-based runtime has running, by run name."""

    def __init__(self) -> None:
        self._procs: dict[str, "subprocess.Popen"] = {}
        self._lock = threading.Lock()

    def stream(self, name: str, proc: "subprocess.Popen", on_line: LineSink) -> int:
        """Stream proc's output lines to on_line until it exits; return its exit code."""
        with self._lock:
            self._procs[name] = proc
        try:
            split_lines(iter(lambda: proc.stdout.read1(65536), b""), on_line)
            return proc.wait()
        finally:
            with self._lock:
                self._procs.pop(name, None)

    def get(self, name: str) -> "subprocess.Popen | None":
        with self._lock:
            return self._procs.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._procs)


def split_lines(chunks, on_line: LineSink) -> None:
    """Turn a stream of byte chunks into lines (progress bars end with \\r)."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        while True:
            idx = buf.find(b"\n")
            if idx < 0:
                break
            line, buf = buf[:idx], buf[idx + 1:]
            on_line(line.decode("utf-8", "replace"))
    if buf:
        on_line(buf.decode("utf-8", "replace"))
