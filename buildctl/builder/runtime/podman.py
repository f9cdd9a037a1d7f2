"""Podman through its command line (same image, same entry point as docker)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

from buildctl.builder.runtime.base import LineSink, ProcessTable, RunSpec
from buildctl.errors import UserError


class PodmanRuntime:
    name = "podman"

    def __init__(self, image: str | None, binary: str = "podman") -> None:
        self.image = image
        self.binary = binary
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

    def command(self, spec: RunSpec) -> tuple[list[str], dict[str, str]]:
        argv = [self.binary, "run", "--rm", "--init", "--name", spec.name,
                "--network", "host" if spec.network else "none", "-w", str(spec.workdir)]
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

    def stop(self, name: str) -> None:
        subprocess.run([self.binary, "stop", "-t", "15", name], capture_output=True)

    def cleanup(self) -> None:
        for name in self._procs.names():
            self.stop(name)
