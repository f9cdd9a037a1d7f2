"""A private git server over SSH on 127.0.0.1 for the private-repository tests.

Debian's OpenSSH ``sshd`` on a free port, run by the test (as the test user) with its own host
key and an authorized_keys file that lets one client key run ``git-shell`` only; an
``ssh-agent`` started by the test holds that client key. Everything lives in one temporary
directory; :meth:`SshGitServer.close` stops both processes (by their own ids).
"""
from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers.skips import missing, tool

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SshGitServer:
    def __init__(self, root: Path) -> None:
        if not os.access(SSHD, os.X_OK):
            missing("sshd not installed", "apt-get install openssh-server")
        for name in ("ssh", "ssh-keygen", "ssh-agent", "ssh-add", "git-shell"):
            tool(name, "apt-get install openssh-client git")
        self.root = root
        self.user = getpass.getuser()
        self.port = _free_port()
        self.repos = root / "srv"
        self.repos.mkdir(parents=True)
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
        subprocess.run(keygen + ["-f", str(root / "host_key")], check=True)
        subprocess.run(keygen + ["-C", "buildctl-test-client", "-f", str(root / "client_key")], check=True)
        self.client_key = root / "client_key"
        git_shell = subprocess.run(["sh", "-c", "command -v git-shell"], capture_output=True,
                                   text=True, check=True).stdout.strip()
        pub = (root / "client_key.pub").read_text().strip()
        (root / "authorized_keys").write_text(
            f'restrict,command="{git_shell} -c \\"$SSH_ORIGINAL_COMMAND\\"" {pub}\n')
        host_pub = (root / "host_key.pub").read_text().split()
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
            f"PidFile {root / 'sshd.pid'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
            "StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
            f"AllowUsers {self.user}\nLogLevel ERROR\n")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
        self.sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=open(root / "sshd.log", "w"))
        self.agent_socket = str(root / "agent.sock")
        self.agent = subprocess.Popen(["ssh-agent", "-D", "-a", self.agent_socket],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait()
            subprocess.run(["ssh-add", "-q", str(self.client_key)], check=True, capture_output=True,
                           env=dict(os.environ, SSH_AUTH_SOCK=self.agent_socket))
        except BaseException:
            self.close()
            raise

    def _wait(self, timeout: float = 10) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.sshd.poll() is not None:
                raise RuntimeError("sshd exited: " + (self.root / "sshd.log").read_text()[:500])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    if os.path.exists(self.agent_socket):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("sshd or ssh-agent did not start")

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.repos / name}"

    def publish(self, work_tree: Path, name: str) -> str:
        """A bare copy of work_tree served as ``name``; returns its SSH URL."""
        subprocess.run(["git", "clone", "-q", "--bare", str(work_tree), str(self.repos / name)],
                       check=True, capture_output=True)
        return self.url(name)

    def close(self) -> None:
        for proc in (getattr(self, "agent", None), getattr(self, "sshd", None)):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
