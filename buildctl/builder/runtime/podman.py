"""Podman through its command line (same image, same entry point as docker).

Verified with Debian's podman 4.3 (runc), rootful and rootless:
- rootful (the caller is root): the image's entry point becomes BUILDCTL_UID/GID, as with docker,
  so outputs belong to the invoking user;
- rootless: the container's root is the caller, and a user the entry point switched to would be
  one of the caller's subordinate ids on the host; the container therefore runs as the caller
  itself (``--userns=keep-id --user UID:GID``), and outputs belong to the caller;
- resource limits: podman 4.3 asks for ``nofile=1048576`` and its own ``nproc`` default, which a
  caller without CAP_SYS_RESOURCE (rootless, or root in an unprivileged container) cannot grant,
  and the container then fails to start ("error setting rlimit"). The limits are passed
  explicitly: the caller's own open-file limits, and processes capped at 32768 (podman runs its
  OCI runtime under that limit; a higher value cannot be set).
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess

from buildctl.builder.runtime.base import (LineSink, ProcessTable, RunSpec, exit_code,
                                           wait_attached)
from buildctl.errors import UserError


PODMAN_NPROC = 32768


def ulimit_args() -> list[str]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    psoft, phard = resource.getrlimit(resource.RLIMIT_NPROC)
    cap = lambda v: PODMAN_NPROC if v == resource.RLIM_INFINITY else min(v, PODMAN_NPROC)  # noqa: E731
    nofile = lambda v: "-1" if v == resource.RLIM_INFINITY else str(v)  # noqa: E731
    return ["--ulimit", f"nofile={nofile(soft)}:{nofile(hard)}",
            "--ulimit", f"nproc={cap(psoft)}:{cap(phard)}"]


class PodmanRuntime:
    name = "podman"

    def __init__(self, image: str | None, binary: str = "podman",
                 rootless: bool | None = None) -> None:
        self.image = image
        self.binary = binary
        self.rootless = os.geteuid() != 0 if rootless is None else rootless
        self._procs = ProcessTable()

    def prepare(self) -> dict:
        if not shutil.which(self.binary):
            raise UserError("podman: not installed (choose --runtime docker|host)")
        if not self.image:
            raise UserError("podman: no builder image (run `buildctl container build`)")
        out = subprocess.run([self.binary, "image", "inspect", self.image],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise UserError(f"podman: image {self.image} not found")
        info = json.loads(out.stdout)[0]
        digest = info.get("Digest") or info.get("Id")
        return {"runtime": "podman", "image": self.image, "image_id": info.get("Id"),
                "image_digest": digest}

    def command(self, spec: RunSpec, tty: bool | None = None) -> tuple[list[str], dict[str, str]]:
        """The podman command line and its environment; ``tty`` not None: attached to the
        caller's stdin (and a terminal when True), as ``buildctl shell`` runs."""
        attached = [] if tty is None else ["-i", "-t"] if tty else ["-i"]
        argv = [self.binary, "run", "--rm", "--init", *attached, "--name", spec.name,
                "--network", "host" if spec.network else "none", "-w", str(spec.workdir),
                *ulimit_args()]
        if self.rootless:
            if spec.owner != (os.getuid(), os.getgid()):
                raise UserError(f"podman (rootless): outputs can only belong to the calling user "
                                f"({os.getuid()}:{os.getgid()}), not {spec.owner[0]}:{spec.owner[1]}")
            argv += ["--userns=keep-id", "--user", f"{spec.owner[0]}:{spec.owner[1]}"]
        for k, v in spec.labels.items():
            argv += ["--label", f"{k}={v}"]
        for m in spec.mounts:
            argv += ["-v", f"{m.path}:{m.path}:{'ro' if m.read_only else 'rw'},z"]
        env = dict(spec.env, BUILDCTL_UID=str(spec.owner[0]), BUILDCTL_GID=str(spec.owner[1]))
        for k in sorted(env):
            argv += ["-e", k]  # values come from the child's environment, not argv (ps)
        return argv + [self.image] + spec.argv, env

    def run(self, spec: RunSpec, on_line: LineSink) -> int:
        argv, env = self.command(spec)
        # podman itself needs the caller's environment (XDG_RUNTIME_DIR, HOME, its config);
        # the container gets only the names passed with -e
        proc = subprocess.Popen(argv, env={**os.environ, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        return self._procs.stream(spec.name, proc, on_line)

    def attach(self, spec: RunSpec, tty: bool) -> int:
        argv, env = self.command(spec, tty)
        return exit_code(wait_attached(subprocess.Popen(argv, env={**os.environ, **env})))

    def stop(self, name: str) -> None:
        subprocess.run([self.binary, "stop", "-t", "15", name], capture_output=True)

    def cleanup(self) -> None:
        for name in self._procs.names():
            self.stop(name)
