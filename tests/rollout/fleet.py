"""Real mender-client 3.4 processes as a fleet, each in its own user + mount namespace.

The client's fixed paths are per device: /etc and /usr/share are overlays whose upper layers
live in the device's directory, /var/lib is the device's own directory (bound over it), so each device has its own artifact_info,
device_type, identity script and update modules; config and data are passed explicitly.
The client comes from Debian's mender-client package, unpacked (no install scripts) into a
cache directory by .ci/run (or here, on first use, with apt-get download + dpkg-deb -x).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.helpers import skips

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("BUILDCTL_MENDER_CLIENT_DIR", ROOT / ".cache" / "mender-client"))

SANDBOX = r"""
set -e
D="$1"; shift
for p in etc usr/share; do
  mount -t overlay overlay -o "lowerdir=/$p,upperdir=$D/ov/$p/up,workdir=$D/ov/$p/work" "/$p"
done
mount --bind "$D/varlib" /var/lib
exec "$@"
"""


def client_root() -> Path:
    """The unpacked mender-client package; fetched here when missing, a failure under CI."""
    if (CACHE / "usr" / "bin" / "mender").is_file():
        return CACHE
    if skips.strict():
        pytest.fail(f"mender-client is not unpacked in {CACHE}: .ci/run does that")
    skips.tools(["apt-get", "dpkg-deb"], "to fetch mender-client")
    dl = CACHE.parent / "deb"
    dl.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["apt-get", "download", "mender-client"], cwd=dl, capture_output=True)
    debs = sorted(dl.glob("mender-client_*.deb"))
    if r.returncode or not debs:
        pytest.skip("mender-client package could not be downloaded")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(CACHE)], check=True)
    return CACHE


def userns_ok() -> bool:
    return subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True).returncode == 0


@dataclass
class Device:
    name: str
    mac: str
    device_type: str
    dir: Path
    proc: subprocess.Popen | None = None

    @property
    def installed(self) -> Path:
        """The file the test updates install (inside the device's /var/lib overlay)."""
        return self.dir / "varlib" / "fleet-app" / "motd"

    def log_text(self) -> str:
        p = self.dir / "client.log"
        return p.read_text(errors="replace") if p.exists() else ""


def make_device(base: Path, name: str, mac: str, device_type: str, server_url: str,
                verify_key: Path, artifact_name: str = "factory-0") -> Device:
    root = client_root()
    d = base / name
    for p in ("etc", "usr/share"):
        (d / "ov" / p / "up").mkdir(parents=True, exist_ok=True)
        (d / "ov" / p / "work").mkdir(parents=True, exist_ok=True)
    etc = d / "ov" / "etc" / "up" / "mender"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "artifact_info").write_text(f"artifact_name={artifact_name}\n")
    (etc / "scripts").mkdir(exist_ok=True)
    (etc / "scripts" / "version").write_text("3\n")
    varlib = d / "varlib" / "mender"
    varlib.mkdir(parents=True, exist_ok=True)
    (varlib / "device_type").write_text(f"device_type={device_type}\n")
    share = d / "ov" / "usr/share" / "up" / "mender"
    shutil.copytree(root / "usr/share/mender/modules", share / "modules", dirs_exist_ok=True)
    ident = share / "identity" / "mender-device-identity"
    ident.parent.mkdir(parents=True, exist_ok=True)
    ident.write_text(f"#!/bin/sh\necho mac={mac}\n")
    ident.chmod(0o755)
    (share / "inventory").mkdir(exist_ok=True)
    data = d / "data"
    data.mkdir(exist_ok=True)
    (data / "device_type").write_text(f"device_type={device_type}\n")
    conf = {"ServerURL": server_url, "DBus": {"Enabled": False},
            "UpdatePollIntervalSeconds": 1, "InventoryPollIntervalSeconds": 2,
            "RetryPollIntervalSeconds": 1, "ArtifactVerifyKey": str(verify_key),
            "DeviceTypeFile": "/var/lib/mender/device_type",
            "ArtifactScriptsPath": str(d / "artifact-scripts"),
            "RootfsScriptsPath": "/etc/mender/scripts",
            "ModuleTimeoutSeconds": 30}
    (d / "mender.conf").write_text(json.dumps(conf))
    return Device(name, mac, device_type, d)


def start(dev: Device) -> None:
    mender = client_root() / "usr" / "bin" / "mender"
    log = open(dev.dir / "client.log", "wb")
    dev.proc = subprocess.Popen(
        ["unshare", "-r", "-m", "--propagation", "private", "sh", "-c", SANDBOX, "sandbox",
         str(dev.dir), str(mender), "--config", str(dev.dir / "mender.conf"),
         "--data", str(dev.dir / "data"), "--log-level", "debug", "daemon"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()


def stop(dev: Device) -> None:
    if dev.proc and dev.proc.poll() is None:
        os.killpg(dev.proc.pid, signal.SIGTERM)
        try:
            dev.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(dev.proc.pid, signal.SIGKILL)
            dev.proc.wait()


def wait_for(pred, timeout: float, what: str, step: float = 0.3):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")
