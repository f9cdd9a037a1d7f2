"""One hash-equivalence server per build, shared by its boards, its database kept with the sstate.

BitBake's ``BB_HASHSERVE = "auto"`` starts a private server per build directory whose database
sits in that directory (scarthgap's bitbake 2.8 ignores ``BB_HASHSERVE_DB_DIR``), so boards and
runs would not share equivalences. Instead buildctl starts ``bitbake-hashserv`` from the
checked-out bitbake once, in the same builder image, bound to a unix socket that every board's
container mounts, with its database ``hashserv-<series>.db`` beside the sstate objects it
describes (one file per series: bitbake versions differ in schema). The server talks to the
product's upstream server when there is one; the boards never need network for it.

The server counts as started once it answers a ``ping`` in its own protocol (OEHASHEQUIV 1.1,
the same in bitbake 2.8 and 2.18), not when its socket appears: 2.8's server listens before it
opens its database, so a database it cannot open leaves a socket behind a server that just died.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from buildctl.builder.runtime.base import Mount, Runtime, RunSpec
from buildctl.errors import UserError


def find_hashserv(work: Path) -> Path | None:
    """``bin/bitbake-hashserv`` of the bitbake checked out under a board's work dir."""
    for cand in sorted(work.glob("*/bin/bitbake-hashserv")) + \
            sorted(work.glob("*/bitbake/bin/bitbake-hashserv")):
        if cand.is_file():
            return cand
    return None


PROTOCOL = b"OEHASHEQUIV 1.1\nneeds-headers: false\n\n"


def answers_ping(sock_path: Path, timeout: float = 2.0) -> bool:
    """True when a hash-equivalence server on the unix socket replies to ``ping``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock_path))
            s.sendall(PROTOCOL + json.dumps({"ping": {}}).encode() + b"\n")
            reply = s.makefile("rb").readline()
        return json.loads(reply or b"{}").get("alive") is True
    except (OSError, ValueError, AttributeError):
        return False


class SharedHashServer:
    def __init__(self, runtime: Runtime, sstate_dir: Path, series: str, owner: tuple[int, int],
                 build_id: str, upstream: str | None = None) -> None:
        self.runtime = runtime
        self.db = sstate_dir / f"hashserv-{series or 'default'}.db"
        self.owner = owner
        self.upstream = upstream
        self.name = f"{build_id}-hashserv"
        # unix socket paths are limited to 107 bytes: keep it short, outside the sstate
        tag = hashlib.sha256(str(sstate_dir).encode()).hexdigest()[:8]
        self.sock_dir = Path(tempfile.mkdtemp(prefix=f"buildctl-hs-{tag}-"))
        self.sock = self.sock_dir / "hashserve.sock"
        self.log: list[str] = []
        self._thread: threading.Thread | None = None
        self._code: int | None = None

    @property
    def address(self) -> str:
        return f"unix://{self.sock}"

    def mounts(self) -> list[Mount]:
        return [Mount(self.sock_dir)]

    def start(self, hashserv: Path, work_mount: Path, timeout: float = 60) -> None:
        if os.geteuid() == 0:
            os.chown(self.sock_dir, *self.owner)
        os.chmod(self.sock_dir, 0o755)
        argv = [str(hashserv), "--bind", self.address, "--database", str(self.db),
                "--log", "WARNING"]
        if self.upstream:
            argv += ["--upstream", self.upstream]
        spec = RunSpec(name=self.name, argv=argv, env={"LANG": "C.UTF-8"},
                       mounts=[Mount(self.db.parent), Mount(self.sock_dir),
                               Mount(work_mount, read_only=True)],
                       workdir=self.sock_dir, owner=self.owner, network=bool(self.upstream),
                       labels={"org.buildctl.role": "hashserv"})
        if self.runtime.name == "host":
            spec.env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")

        def serve() -> None:
            try:
                self._code = self.runtime.run(spec, self.log.append)
            except Exception as exc:  # reported by start()/stop(); the build then fails
                self.log.append(f"{exc.__class__.__name__}: {exc}")
                self._code = -1

        self._thread = threading.Thread(target=serve, name="hashserv", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not (self.sock.exists() and answers_ping(self.sock)):
            if self._code is not None or time.monotonic() > deadline:
                self.stop()
                tail = " | ".join(self.log[-3:]) or "no output"
                raise UserError(f"hash-equivalence server did not start ({hashserv}): {tail}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.runtime.stop(self.name)
            self._thread.join(timeout=30)
        shutil.rmtree(self.sock_dir, ignore_errors=True)
