"""Opt-in: real BitBake 2.8 + openembedded-core (scarthgap) through `buildctl build`.

Set BUILDCTL_TEST_BITBAKE and BUILDCTL_TEST_OE_CORE to local git repositories (bitbake at a
2.8 commit, openembedded-core at a scarthgap commit; HEAD is built). Uses the full `scarthgap`
builder image (about 4 minutes to build cold, cached by its tag). Not part of the default run:
it needs those repositories, which CI does not have offline, and takes minutes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WT = Path(__file__).resolve().parents[2]
BB = os.environ.get("BUILDCTL_TEST_BITBAKE")
OE = os.environ.get("BUILDCTL_TEST_OE_CORE")

pytestmark = [pytest.mark.docker, pytest.mark.slow,
              pytest.mark.skipif(not (BB and OE), reason="BUILDCTL_TEST_BITBAKE/OE_CORE not set")]


def head(repo: str) -> str:
    return subprocess.run(["git", "-c", "safe.directory=*", "-C", repo, "rev-parse", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()


def test_real_bitbake_parses_and_plans_with_shared_caches(tmp_path, docker_engine):
    import docker

    from buildctl.builder.image import ImageSpec, ensure_image

    image = ensure_image(docker.DockerClient(base_url=docker_engine, timeout=1800),
                         ImageSpec(profile="scarthgap"), log=lambda m: None).tag
    os.chmod(tmp_path, 0o755)
    kas = tmp_path / "oe.yml"
    kas.write_text(yaml.safe_dump({
        "header": {"version": 14}, "machine": "qemux86-64", "distro": "nodistro",
        "target": "core-image-minimal",
        "repos": {"bitbake": {"url": f"file://{BB}", "commit": head(BB), "layers": {".": "disabled"}},
                  "openembedded-core": {"url": f"file://{OE}", "commit": head(OE),
                                        "layers": {"meta": None}}},
        "local_conf_header": {"offline": 'CONNECTIVITY_CHECK_URIS = ""\n'}}))
    env = dict(os.environ, PYTHONPATH=str(WT), BUILDCTL_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-m", "buildctl", "build", str(kas), "--dry-run",
                        "--image", image, "--out", str(tmp_path / "out"), "--json"],
                       env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(r.stdout)
    board = data["boards"][0]
    assert data["hashserve"]["mode"] == "shared"
    assert board["bitbake"]["tasks_total"] > 1000 and board["bitbake"]["errors"] == []
    assert Path(data["hashserve"]["database"]).is_file()
