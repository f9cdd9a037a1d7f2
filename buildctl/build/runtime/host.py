"""Run on the host itself (a CI runner that already is the build environment)."""
from __future__ import annotations

import os
import signal
import subprocess
import threading

from buildctl.build.runtime.base import LineSink, RunSpec, split_lines


class HostRuntime:
    name = "host"

    def __init__(self) -> None:
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def prepare(self) -> dict:
        return {"runtime": "host", "image": None, "image_digest": None}

    def run(self, spec: RunSpec, on_line: LineSink) -> int:
        env = dict(spec.env)
        env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
        kwargs = {}
        if os.geteuid() == 0 and spec.owner[0] != 0:
            kwargs = {"user": spec.owner[0], "group": spec.owner[1], "extra_groups": []}
        proc = subprocess.Popen(spec.argv, cwd=spec.workdir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, **kwargs)
        with self._lock:
            self._procs[spec.name] = proc
        try:
            split_lines(iter(lambda: proc.stdout.read1(65536), b""), on_line)
            return proc.wait()
        finally:
            with self._lock:
                self._procs.pop(spec.name, None)

    def stop(self, name: str) -> None:
        with self._lock:
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
        for name in list(self._procs):
            self.stop(name)
