"""Where a board's commands run: ``docker`` (Engine API), ``podman`` (CLI) or ``host``.

The build logic talks to one interface (:class:`Runtime`: prepare / run / stop / cleanup) and
does not know which one it got. Mounts keep their host paths inside the container, so log
paths in reports are valid on the host too.
"""
from __future__ import annotations

from buildctl.builder.runtime.base import Mount, Runtime, RunSpec, resolve_owner
from buildctl.errors import UserError

RUNTIMES = ("docker", "podman", "host")


def get_runtime(name: str, image: str | None = None) -> Runtime:
    if name == "docker":
        from buildctl.builder.runtime.docker import DockerRuntime
        return DockerRuntime(image)
    if name == "podman":
        from buildctl.builder.runtime.podman import PodmanRuntime
        return PodmanRuntime(image)
    if name == "host":
        from buildctl.builder.runtime.host import HostRuntime
        return HostRuntime()
    raise UserError(f"--runtime: unknown runtime {name!r} (choose from {', '.join(RUNTIMES)})")


__all__ = ["Mount", "Runtime", "RunSpec", "get_runtime", "resolve_owner", "RUNTIMES"]
