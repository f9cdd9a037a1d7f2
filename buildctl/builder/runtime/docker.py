"""Docker Engine API (docker SDK): one container per board and phase, removed afterwards."""
from __future__ import annotations

import os
import shutil
import subprocess
import threading

from buildctl.builder.runtime.base import LineSink, RunSpec, exit_code, split_lines, wait_attached
from buildctl.errors import UserError


def docker_client(timeout: int = 120):
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # the SDK raises several types for "no engine"
        raise UserError(f"docker: cannot reach the Docker engine ({exc.__class__.__name__}); "
                        "start dockerd or choose --runtime podman|host") from None
    return client


class DockerRuntime:
    name = "docker"

    def __init__(self, image: str | None) -> None:
        self.image = image
        self._client = None
        self._running: dict[str, object] = {}
        self._lock = threading.Lock()

    @property
    def client(self):
        if self._client is None:
            self._client = docker_client()
        return self._client

    def prepare(self) -> dict:
        import docker.errors

        if not self.image:
            raise UserError("docker: no builder image (run `buildctl container build`)")
        try:
            img = self.client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise UserError(f"docker: image {self.image} not found (run `buildctl container "
                            "build` or set container.image)") from None
        digests = img.attrs.get("RepoDigests") or []
        return {"runtime": "docker", "image": self.image, "image_id": img.id,
                "image_digest": digests[0].split("@", 1)[1] if digests else img.id}

    def run(self, spec: RunSpec, on_line: LineSink) -> int:
        volumes = {str(m.path): {"bind": str(m.path), "mode": "ro" if m.read_only else "rw"}
                   for m in spec.mounts}
        env = dict(spec.env)
        env["BUILDCTL_UID"], env["BUILDCTL_GID"] = map(str, spec.owner)
        container = self.client.containers.create(
            self.image, command=spec.argv, environment=env, volumes=volumes,
            working_dir=str(spec.workdir), network_mode="host" if spec.network else "none",
            name=spec.name, labels={"buildctl": "1", **spec.labels}, init=True,
            stdin_open=False, tty=False, detach=True)
        with self._lock:
            self._running[spec.name] = container
        try:
            container.start()
            split_lines(container.logs(stream=True, follow=True), on_line)
            return int(container.wait().get("StatusCode", 1))
        finally:
            with self._lock:
                self._running.pop(spec.name, None)
            _remove(container)

    def attach(self, spec: RunSpec, tty: bool) -> int:
        """The same container as :meth:`run` (image, mounts, environment, entry point, user),
        attached to the caller's terminal through the ``docker`` client, which relays a TTY
        and its resizes the way users know from ``docker run -it``."""
        binary = shutil.which("docker")
        if not binary:
            raise UserError("docker: the `docker` command-line client is not installed "
                            "(apt-get install docker.io), or choose --runtime podman|host")
        argv, env = self.cli_command(spec, tty, binary)
        return exit_code(wait_attached(subprocess.Popen(argv, env={**os.environ, **env})))

    def cli_command(self, spec: RunSpec, tty: bool,
                    binary: str = "docker") -> tuple[list[str], dict[str, str]]:
        argv = [binary, "run", "--rm", "--init", "-i", *(["-t"] if tty else []),
                "--name", spec.name, "--network", "host" if spec.network else "none",
                "-w", str(spec.workdir), "--label", "buildctl=1"]
        for k, v in spec.labels.items():
            argv += ["--label", f"{k}={v}"]
        for m in spec.mounts:
            argv += ["-v", f"{m.path}:{m.path}:{'ro' if m.read_only else 'rw'}"]
        env = dict(spec.env, BUILDCTL_UID=str(spec.owner[0]), BUILDCTL_GID=str(spec.owner[1]))
        for k in sorted(env):
            argv += ["-e", k]  # values come from the child's environment, not argv (ps)
        return argv + [self.image] + spec.argv, env

    def stop(self, name: str) -> None:
        with self._lock:
            container = self._running.get(name)
        if container is not None:
            try:
                container.kill(signal="SIGINT")  # BitBake finishes running tasks' cleanup
                container.stop(timeout=15)
            except Exception:
                pass

    def cleanup(self) -> None:
        for name in list(self._running):
            self.stop(name)


def _remove(container, attempts: int = 20) -> None:
    """Remove a finished container. A stop() running in another thread (signal, --fail-fast)
    can make the engine refuse for a moment ("removal already in progress", a conflict while
    it stops): retry briefly instead of leaving the container behind."""
    import time

    import docker

    for _ in range(attempts):
        try:
            container.remove(force=True)
            return
        except docker.errors.NotFound:
            return
        except Exception:
            time.sleep(0.5)
