"""`release apps` artifacts installed by the real Mender client (Debian's mender-client 3.4,
standalone `mender install`/`commit`), sandboxed like tests/rollout: `unshare -r -m`, /etc and
/usr are overlays whose upper layers live in the device's directory, /var/lib is the device's
own directory (its mender device_type and an empty dpkg database).

What really runs: the client's state machine, buildctl's package module from
layers/meta-buildctl (installed as `deb`, the name an image whose PACKAGE_CLASSES starts with
package_deb gives it), and the host's dpkg with the package's real maintainer scripts, writing
/usr/bin/hello-buildctl into the overlay. The image's `rootfs-image.version` is seeded by a
single-file artifact (a dual-partition rootfs update needs a real device): 3.4 does not install
bootstrap artifacts."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from buildctl.ota.mender import load_private_key
from buildctl.ota.mender.modules import single_file
from buildctl.ota.mender.writer import ArtifactSpec, module_payload, write_artifact
from tests.conftest import run_cli
from tests.helpers import skips
from tests.release.app_feed import IMAGE, app_product, feed_dir, make_deb
from tests.rollout import fleet

ROOT = Path(__file__).resolve().parents[2]
MODULE = (ROOT / "layers" / "meta-buildctl" / "recipes-mender" / "mender-buildctl-pkg-module"
          / "files" / "mender-buildctl-pkg-module-1.0" / "package-module")
SANDBOX = r"""
set -e
D="$1"; shift
for p in etc usr; do
  mount -t overlay overlay -o "lowerdir=/$p,upperdir=$D/ov/$p/up,workdir=$D/ov/$p/work,userxattr" "/$p"
done
mount --bind "$D/varlib" /var/lib
exec "$@"
"""


class Device:
    def __init__(self, d: Path, pub: Path):
        self.dir = d
        for p in ("etc", "usr"):
            (d / "ov" / p / "up").mkdir(parents=True)
            (d / "ov" / p / "work").mkdir(parents=True)
        (d / "ov/etc/up/mender").mkdir()
        (d / "ov/etc/up/mender/artifact_info").write_text("artifact_name=factory-0\n")
        (d / "varlib/mender").mkdir(parents=True)
        (d / "varlib/mender/device_type").write_text("device_type=qemux86-64\n")
        for sub in ("info", "updates", "triggers", "alternatives", "parts"):
            (d / "varlib/dpkg" / sub).mkdir(parents=True)
        (d / "varlib/dpkg/status").write_text("")
        (d / "varlib/dpkg/available").write_text("")
        mods = d / "ov/usr/up/share/mender/modules/v3"
        mods.mkdir(parents=True)
        shutil.copy(MODULE, mods / "deb")
        shutil.copy(fleet.client_root() / "usr/share/mender/modules/v3/single-file", mods)
        (d / "data").mkdir()
        (d / "mender.conf").write_text(json.dumps({
            "DBus": {"Enabled": False}, "ArtifactVerifyKey": str(pub),
            "DeviceTypeFile": "/var/lib/mender/device_type", "ModuleTimeoutSeconds": 30,
            "ArtifactScriptsPath": str(d / "data" / "scripts"),
            "RootfsScriptsPath": "/etc/mender/scripts"}))

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["unshare", "-r", "-m", "--propagation", "private", "sh", "-c",
                               SANDBOX, "sandbox", str(self.dir), *argv],
                              capture_output=True, text=True, timeout=120, check=False)

    def mender(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(str(fleet.client_root() / "usr/bin/mender"), "--config",
                        str(self.dir / "mender.conf"), "--data", str(self.dir / "data"),
                        "--no-syslog", "--log-level", "debug", *args)

    def provides(self) -> dict[str, str]:
        r = self.mender("show-provides")
        assert r.returncode == 0, r.stderr
        return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    @property
    def program(self) -> Path:
        return self.dir / "ov/usr/up/bin/hello-buildctl"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if not fleet.userns_ok():
        skips.missing("unshare -r -m does not work: the sandboxed client needs user namespaces")
    skips.tools(["dpkg", "dpkg-deb"])
    fleet.client_root()
    root = tmp_path_factory.mktemp("appclient")
    prod = app_product(root)
    make_deb(feed_dir(root), version="1.0-r0")
    make_deb(root / "feed-bad", version="1.1-r0", postinst_rc=1)
    arts = {}
    for version, extra in (("1.0-r0", []), ("1.1-r0", ["--feed", str(root / "feed-bad")])):
        out = root / f"apps-{version}"
        r = run_cli("release", "apps", str(prod), "--board", "qemux86-64", "--out", str(out),
                    *extra, cwd=root)
        assert r.returncode == 0, r.stderr
        arts[version] = out / "demo" / "1.0" / "qemux86-64-release" / f"hello-buildctl-{version}.mender"
    key = load_private_key(f"file:{root / 'keys' / 'release.pem'}", "test key")
    seeds = {}
    for image in (IMAGE, "another-image-2"):  # what the device's image provides
        src = root / f"seed-{image}" / "image-version"
        src.parent.mkdir()
        src.write_text(image + "\n")
        payload = module_payload("single-file", single_file(src, "/etc/buildctl-image"), image,
                                 provides={"rootfs-image.version": image})
        seeds[image] = write_artifact(ArtifactSpec(image, ["qemux86-64"], payload),
                                      root / f"seed-{image}.mender", key=key)
    return root, arts, seeds, root / "keys" / "release.pub.pem"


def seeded(world, name: str, image: str) -> Device:
    root, _, seeds, pub = world
    dev = Device(root / name, pub)
    for step in (("install", str(seeds[image])), ("commit",)):
        r = dev.mender(*step)
        assert r.returncode == 0, r.stderr[-2000:]
    assert dev.provides()["rootfs-image.version"] == image
    return dev


def test_client_refuses_the_app_on_a_device_running_another_image(world):
    _, arts, _, _ = world
    dev = seeded(world, "other", "another-image-2")
    r = dev.mender("install", str(arts["1.0-r0"]))
    assert r.returncode != 0
    assert 'dependency \\"rootfs-image.version\\" not satisfied' in r.stderr  # logfmt quoting
    assert f"({IMAGE} != another-image-2)" in r.stderr
    assert not dev.program.exists()
    assert "rootfs-image.hello-buildctl.version" not in dev.provides()


def test_client_installs_commits_and_rolls_back_a_failing_post_install(world):
    _, arts, _, _ = world
    dev = seeded(world, "dev", IMAGE)
    r = dev.mender("install", str(arts["1.0-r0"]))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Unpacking hello-buildctl (1.0-r0)" in r.stderr
    assert dev.mender("commit").returncode == 0
    good = dev.program.read_text()
    assert "hello-buildctl 1.0-r0" in good
    prov = dev.provides()
    assert prov["rootfs-image.hello-buildctl.version"] == "1.0-r0"
    assert prov["rootfs-image.version"] == IMAGE  # the app clears only its own provides
    assert prov["artifact_name"] == f"{IMAGE}-hello-buildctl-1.0-r0"

    r = dev.mender("install", str(arts["1.1-r0"]))
    assert r.returncode == 1
    log = r.stdout + r.stderr
    assert "post-installation script subprocess returned error exit status 1" in log
    assert "Module supports rollback" in log and "Rolling back Artifact..." in log
    assert "package-module: rolled back hello-buildctl" in log
    assert dev.program.read_text() == good  # the previous program is back
    q = dev.run("dpkg-query", "-W", "-f", "${Version} ${Status}", "hello-buildctl")
    assert q.stdout == "1.0-r0 install ok installed", q.stderr
    prov = dev.provides()
    assert prov["rootfs-image.hello-buildctl.version"] == "1.0-r0"
    assert prov["artifact_name"] == f"{IMAGE}-hello-buildctl-1.0-r0"
    assert dev.mender("commit").returncode != 0  # nothing left to commit


def test_module_parses_in_busybox_ash_the_shell_of_yocto_devices():
    """The run above uses the host's /bin/sh (dash); devices run the module with busybox ash
    (whose static Debian build prefers its own dpkg applet, so it cannot stand in for the whole
    run): the module must at least parse there."""
    busybox = skips.tool("busybox", "apt-get install busybox-static")
    r = subprocess.run([busybox, "sh", "-n", str(MODULE)], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stderr
