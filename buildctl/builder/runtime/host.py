"""Run on the host itself (a CI runner that already is the build environment)."""
from __future__ import annotations

import os
import signal
import subprocess

from buildctl.builder.runtime.base import (LineSink, ProcessTable, RunSpec, exit_code,
                                           wait_attached)


class HostRuntime:
    name = "host"

    def __init__(self) -> None:
        self._procs = ProcessTable()

    def prepare(self) -> dict:
        return {"runtime": "host", "image": None, "image_digest": None}

    def run(self, spec: RunSpec, on_line: LineSink) -> int:
        env, kwargs = _process(spec)
        proc = subprocess.Popen(spec.argv, cwd=spec.workdir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, **kwargs)
        return self._procs.stream(spec.name, proc, on_line)

    def attach(self, spec: RunSpec, tty: bool) -> int:
        env, kwargs = _process(spec)
        proc = subprocess.Popen(spec.argv, cwd=spec.workdir, env=env, **kwargs)
        return exit_code(wait_attached(proc))

    def stop(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGINT)  # BitBake shuts down cleanly on SIGINT
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def cleanup(self) -> None:
        for name in self._procs.names():
            self.stop(name)


def _process(spec: RunSpec) -> tuple[dict[str, str], dict]:
    """The environment and the user (the build's owner when buildctl runs as root)."""
    env = dict(spec.env)
    env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
    kwargs = {}
    if os.geteuid() == 0 and spec.owner[0] != 0:
        kwargs = {"user": spec.owner[0], "group": spec.owner[1], "extra_groups": []}
    return env, kwargs
