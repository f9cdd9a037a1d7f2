"""Rollout fixtures: the Mender test server as a separate process, and release bundles made by
the real release pipeline whose .mender files are module-image artifacts written with
`buildctl artifact write module-image` (signed by the pipeline with the product's key)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.publish.conftest import _stop, start_module

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD, PAT = "ops@example.com", "correct horse battery", "pat.test-token-0123456789"


@dataclass
class MenderServer:
    url: str
    proc: subprocess.Popen

    def _req(self, path: str, data=None, method="GET"):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if data is None else json.dumps(data).encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def faults(self, rules: list[dict]) -> None:
        self._req("/__faults", rules, "POST")

    def log(self) -> list[dict]:
        return self._req("/__log")

    def state(self) -> dict:
        return self._req("/__state")

    def mgmt(self, method: str, path: str, data=None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if data is None else json.dumps(data).encode(),
                                     headers={"Authorization": f"Bearer {PAT}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None


def start_server(*extra: str) -> MenderServer:
    proc, port = start_module("tests.rollout.server.mender", "--user", USER, "--password",
                              PASSWORD, "--token", PAT, *extra)
    return MenderServer(f"http://127.0.0.1:{port}", proc)


@pytest.fixture
def mender_server():
    srv = start_server("--auto-accept")
    try:
        yield srv
    finally:
        _stop(srv.proc)


def module_writer(artifact_name: str, device_types: list[str], *, fail_script: bool = False,
                  payload: str = "hello"):
    """A .mender writer for the deploy fixture: a single-file update of /var/lib/fleet-app/motd."""
    def write(path: Path, fx) -> None:
        src = path.with_name("motd")
        src.write_text(f"{payload} from {artifact_name}\n")
        cmd = [sys.executable, "-m", "buildctl", "artifact", "write", "module-image",
               "-T", "single-file", "-f", str(src), "--dest-dir", "/var/lib/fleet-app",
               "-n", artifact_name, "-o", str(path)]
        for t in device_types:
            cmd += ["-t", t]
        if fail_script:
            script = path.with_name("ArtifactInstall_Enter_50_refuse")
            script.write_text("#!/bin/sh\necho 'refusing this update on purpose' >&2\nexit 3\n")
            script.chmod(0o755)
            cmd += ["-s", str(script)]
        subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True)
        src.unlink()
    return write


def make_bundle(tmp: Path, board: str = "qemux86-64", *, version: str = "1.0",
                signing_key: Path | None = None, **kw) -> Path:
    """A verified one-board release bundle (demo VERSION) holding a module-image artifact,
    signed with ``signing_key`` (a private PEM) when given."""
    from buildctl.release.api import ReleaseArgs, spec_from_product
    from buildctl.release.pipeline import run_release
    from tests.helpers.oe_deploy_fixture import DeployFixture, write_deploy
    from tests.helpers.products import write_yaml
    from tests.release.helpers import device_tested, release_product

    prod = release_product(tmp, boards=(board,))
    data = yaml.safe_load(prod.read_text())
    data["release"]["version"] = version
    write_yaml(prod, data)
    if signing_key is not None:
        shutil.copy(signing_key, tmp / "keys" / "release.pem")
        shutil.copy(signing_key.with_name(signing_key.stem + ".pub.pem"),
                    tmp / "keys" / "release.pub.pem")
    fx = DeployFixture(machine=board, image_types=("uefiimg", "mender"))
    deploy = tmp / "out" / "demo" / f"{board}-release" / "deploy"
    write_deploy(deploy, fx, module_writer(f"demo-{version}-{board}", [board], **kw))
    device_tested(deploy.parent)
    spec = spec_from_product(ReleaseArgs(product=prod, build_out=tmp / "out" / "demo",
                                         out=tmp / "release"))
    return run_release(spec).bundle_dir


def release_key(tmp: Path) -> Path:
    """The public key the release pipeline signed make_bundle(tmp)'s artifacts with."""
    return tmp / "keys" / "release.pub.pem"
