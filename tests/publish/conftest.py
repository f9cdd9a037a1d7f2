"""Publish fixtures: a verified bundle, and real servers as separate processes on 127.0.0.1.

wsgidav (a real WebDAV server) and moto's standalone S3 server sit behind a fault-injecting
proxy (servers/faultproxy.py); the Artifactory test server (servers/artifactory.py) injects
faults itself. Every process is killed when its fixture ends.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers.products import write_yaml

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout=30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: "
                               f"{proc.stderr.read()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    root: Path | None = None

    def faults(self, rules: list[dict]) -> None:
        req = urllib.request.Request(self.url + "/__faults", data=json.dumps(rules).encode(),
                                     method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def log(self) -> list[dict]:
        return json.loads(urllib.request.urlopen(self.url + "/__log", timeout=10).read())

    def clear(self) -> None:
        self.faults([])


def start_module(module: str, *args: str) -> tuple[subprocess.Popen, int]:
    """A python -m process that prints its port on its first line."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        _stop(proc)
        raise RuntimeError(f"{module} did not start: {proc.stderr.read()[-2000:]}")
    return proc, int(line)


def start_proxy(upstream: str) -> Server:
    proc, port = start_module("tests.publish.servers.faultproxy", upstream)
    return Server(f"http://127.0.0.1:{port}", proc)


@pytest.fixture
def webdav(tmp_path):
    """wsgidav on a fresh directory, behind the fault proxy (Server.url is the proxy)."""
    root = tmp_path / "dav"
    root.mkdir()
    port = _free_port()
    proc = subprocess.Popen([shutil.which("wsgidav") or "wsgidav", "--host", "127.0.0.1",
                             "--port", str(port), "--root", str(root), "--auth", "anonymous",
                             "--server", "cheroot", "--no-config", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proxy = None
    try:
        _wait_port(port, proc, "wsgidav")
        proxy = start_proxy(f"http://127.0.0.1:{port}")
        proxy.root = root
        yield proxy
    finally:
        if proxy:
            _stop(proxy.proc)
        _stop(proc)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    """A verified two-board release bundle (demo 1.0), made by the real release pipeline."""
    from buildctl.release.api import ReleaseArgs, spec_from_product
    from buildctl.release.pipeline import run_release
    from tests.release.helpers import deploy_for, device_tested, release_product

    tmp = tmp_path_factory.mktemp("bundle")
    prod = release_product(tmp, boards=("qemux86-64", "qemuarm64"))
    for b in ("qemux86-64", "qemuarm64"):
        device_tested(deploy_for(tmp, b).parent)
    spec = spec_from_product(ReleaseArgs(product=prod, build_out=tmp / "out" / "demo",
                                         out=tmp / "release"))
    return run_release(spec).bundle_dir


def product_with_targets(tmp_path: Path, targets: dict) -> Path:
    """A product manifest whose publish.targets are the given ones."""
    from tests.helpers.products import simple_product

    path = simple_product(tmp_path / "p")
    data = yaml.safe_load(path.read_text())
    data["publish"] = {"targets": targets}
    return write_yaml(path, data)


def run_publish(bundle: Path, targets: dict, *, dry_run: bool = False) -> dict:
    """Publish in-process (as the CLI does, minus the slow SBOM validators, which the CLI tests
    cover) with short backoffs; returns the JSON summary the CLI would print."""
    from buildctl.manifest.loader import SECRET_KEYS
    from buildctl.publish.api import publish
    from buildctl.publish.http import RetryPolicy
    from buildctl.publish.targets import Target
    from buildctl.publish.targets import SecretRef

    ts = []
    for name, d in targets.items():
        secrets = {k: SecretRef.parse(v) for k, v in d.items() if k in SECRET_KEYS}
        opts = {k: v for k, v in d.items() if k not in secrets and k not in ("type", "url")}
        ts.append(Target(name, d["type"], d["url"], opts, secrets))
    res = publish(bundle, ts, dry_run=dry_run, verify_sboms=False,
                  policy=RetryPolicy(attempts=6, base_s=0.05, cap_s=0.5, timeout_s=20))
    return json.loads(json.dumps(res.to_dict()))


ART_TOKEN = "art-token-for-tests"


@pytest.fixture
def artifactory(tmp_path):
    """The Artifactory test server with repositories fw-dev-local and fw-release-local."""
    proc, port = start_module("tests.publish.servers.artifactory", str(tmp_path / "art"),
                              ART_TOKEN, "fw-dev-local", "fw-release-local")
    try:
        yield Server(f"http://127.0.0.1:{port}", proc)
    finally:
        _stop(proc)


def art_target(server: Server, **kw) -> dict:
    return {"type": "artifactory", "url": server.url + "/artifactory",
            "repository": "fw-dev-local", "release_repository": "fw-release-local",
            "token": "env:ART_TOKEN", **kw}


def aql(server: Server, query: str) -> list[dict]:
    req = urllib.request.Request(server.url + "/artifactory/api/search/aql", data=query.encode(),
                                 headers={"Authorization": f"Bearer {ART_TOKEN}",
                                          "Content-Type": "text/plain"}, method="POST")
    return json.loads(urllib.request.urlopen(req, timeout=10).read())["results"]


S3_KEYS = {"S3_ACCESS": "buildctl-test", "S3_SECRET": "buildctl-test-secret"}


@pytest.fixture
def s3(monkeypatch):
    """moto's standalone S3 server with a bucket 'firmware', behind the fault proxy."""
    from buildctl.publish.http import Client
    from buildctl.publish.s3 import Signer

    for k, v in S3_KEYS.items():
        monkeypatch.setenv(k, v)
    port = _free_port()
    proc = subprocess.Popen([shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    proxy = None
    try:
        _wait_port(port, proc, "moto_server")
        c = Client()
        r = c.request("PUT", f"http://127.0.0.1:{port}/firmware",
                      headers={"x-amz-content-sha256": hashlib.sha256(b"").hexdigest()},
                      sign=Signer(S3_KEYS["S3_ACCESS"], S3_KEYS["S3_SECRET"], "us-east-1"))
        c.close()
        assert r.status == 200, r.body
        proxy = start_proxy(f"http://127.0.0.1:{port}")
        yield proxy
    finally:
        if proxy:
            _stop(proxy.proc)
        _stop(proc)


def s3_target(server: Server, **kw) -> dict:
    return {"type": "s3", "url": server.url, "bucket": "firmware", "access_key": "env:S3_ACCESS",
            "secret_key": "env:S3_SECRET", "part_size_mb": 5, **kw}


def s3_objects(server: Server) -> dict[str, tuple[int, str]]:
    """key -> (size, sha256 of the bytes the server returns)."""
    import boto3

    cli = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                       aws_access_key_id=S3_KEYS["S3_ACCESS"],
                       aws_secret_access_key=S3_KEYS["S3_SECRET"])
    out = {}
    for page in cli.get_paginator("list_objects_v2").paginate(Bucket="firmware"):
        for o in page.get("Contents", []):
            body = cli.get_object(Bucket="firmware", Key=o["Key"])["Body"].read()
            out[o["Key"]] = (o["Size"], hashlib.sha256(body).hexdigest())
    return out
