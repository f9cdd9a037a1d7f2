"""Where a board's commands run: ``docker`` (Engine API), ``podman`` (CLI) or ``host``.

The build logic talks to one interface (:class:`Runtime`: prepare / run / stop / cleanup) and
does not know which one it got. Mounts keep their host paths inside the container, so log
paths in reports are valid on the host too.
"""
from __future__ import annotations

import re

from buildctl.builder.runtime.base import Mount, Runtime, RunSpec, resolve_owner
from buildctl.errors import UserError

RUNTIMES = ("docker", "podman", "host")
# an image reference: [registry[:port]/]name[:tag][@digest], one token of printable characters
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}")


def check_image(image: str | None, what: str = "--image") -> str | None:
    """image, or a UserError before anything is made for a run that could not start."""
    if image is not None and not _IMAGE.fullmatch(image):
        raise UserError(f"{what}: {image!r} is not an image reference (NAME[:TAG][@DIGEST])")
    return image


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


__all__ = ["Mount", "Runtime", "RunSpec", "check_image", "get_runtime", "resolve_owner",
           "RUNTIMES"]
