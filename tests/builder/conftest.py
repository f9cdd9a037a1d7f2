"""Fixtures for the build tests: a real Docker engine and the builder image.

``docker_engine`` uses a running engine (DOCKER_HOST or the default socket) or starts its own
``dockerd --bridge=none --iptables=false`` with a private data-root (kept across runs so the
builder image, tagged by the hash of its inputs, is built once) and stops it at the end. When
no engine can be had the docker tests skip locally and fail in CI (tests/helpers/skips.py).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import skips

DATA_ROOT = Path(os.environ.get("BUILDCTL_TEST_DOCKER_ROOT", "/var/lib/buildctl-test-docker"))
RUN_DIR = Path("/run/buildctl-test-docker")
IMAGE_PROFILE = "minimal"  # the test-sized variant of the scarthgap image (same Dockerfile)


def _ping(host: str | None) -> bool:
    import docker

    try:
        client = docker.DockerClient(base_url=host, timeout=5) if host else docker.from_env(timeout=5)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


def _unavailable(reason: str):
    skips.missing(f"no docker engine: {reason}")


@pytest.fixture(scope="session")
def docker_engine():
    """Yield a DOCKER_HOST URL of a working engine (set in os.environ for the session)."""
    host = os.environ.get("DOCKER_HOST")
    if host and _ping(host):
        yield host
        return
    if not host and _ping(None):
        yield "unix:///var/run/docker.sock"
        return
    own = f"unix://{RUN_DIR}/docker.sock"
    if _ping(own):  # left running by a previous session that was killed
        os.environ["DOCKER_HOST"] = own
        yield own
        return
    dockerd = shutil.which("dockerd")
    if not dockerd:
        _unavailable("dockerd not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        _unavailable("starting dockerd needs root")
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    log = open(RUN_DIR / "dockerd.log", "ab")
    proc = subprocess.Popen(
        [dockerd, "--bridge=none", "--iptables=false", "--ip-masq=false",
         "--data-root", str(DATA_ROOT), "--exec-root", str(RUN_DIR / "exec"),
         "--pidfile", str(RUN_DIR / "dockerd.pid"), "-H", own],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _ping(own):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            tail = (RUN_DIR / "dockerd.log").read_text(errors="replace")[-400:]
            _unavailable(f"dockerd did not start: {tail}")
        time.sleep(0.3)
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = own
    try:
        yield own
    finally:
        if old is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = old
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def builder_image(docker_engine) -> str:
    """The test-profile builder image, made by the registry-less path (cached by its tag)."""
    import docker

    from buildctl.builder.image import ImageSpec, ensure_image

    client = docker.DockerClient(base_url=docker_engine, timeout=900)
    t0 = time.monotonic()
    result = ensure_image(client, ImageSpec(profile=IMAGE_PROFILE), log=lambda m: None)
    print(f"\nbuilder image {result.tag}: {'built' if result.built else 'cached'} "
          f"in {time.monotonic() - t0:.1f}s {result.seconds}")
    return result.tag


@pytest.fixture(scope="session")
def kit_bitbake(tmp_path_factory) -> Path:
    """The kit's bitbake 2.8 (bin/bitbake-hashserv, lib/hashserv, lib/bb), exported once."""
    from build_fixtures import export_kit_bitbake

    return export_kit_bitbake(tmp_path_factory.mktemp("bitbake") / "bitbake")
