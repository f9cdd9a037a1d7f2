"""`buildctl release apps`: module-image artifacts per application package from a package feed
in OE's layout, checked with Debian's mender-artifact (read -k / validate -k)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.helpers import skips
from tests.helpers.products import write_yaml
from tests.release.app_feed import IMAGE, app_product, feed_dir, make_deb, make_ipk
from tests.release.helpers import make_key


def read(art: Path, pub: Path | None) -> str:
    tool = skips.tool("mender-artifact")
    cmd = [tool, "read", *(["-k", str(pub)] if pub else []), str(art)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def validate(art: Path, pub: Path | None) -> subprocess.CompletedProcess:
    tool = skips.tool("mender-artifact")
    return subprocess.run([tool, "validate", *(["-k", str(pub)] if pub else []), str(art)],
                          capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def deb_world(tmp_path_factory):
    skips.tool("dpkg-deb")
    root = tmp_path_factory.mktemp("apps")
    prod = app_product(root)
    make_deb(feed_dir(root))
    r = run_cli("release", "apps", str(prod), "--board", "qemux86-64", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    return root, prod, json.loads(r.stdout)


def test_deb_feed_gives_a_signed_deb_module_artifact_tied_to_the_image(deb_world):
    root, _, data = deb_world
    board = data["boards"][0]
    out = root / "apps" / "demo" / "1.0" / "qemux86-64-release"
    assert Path(board["dir"]) == out and board["format"] == "deb"
    assert sorted(p.name for p in out.iterdir()) == ["apps.json", "hello-buildctl-1.0-r0.mender"]
    art = out / "hello-buildctl-1.0-r0.mender"
    pub = root / "keys" / "release.pub.pem"
    text = read(art, pub)
    assert "Signature: signed and verified correctly" in text
    assert "Type:   deb" in text
    assert "Compatible devices: '[qemux86-64]'" in text
    assert f"    Depends:\n\trootfs-image.version: {IMAGE}\n" in text
    assert "    Provides:\n\trootfs-image.hello-buildctl.version: 1.0-r0\n" in text
    assert '["rootfs-image.hello-buildctl.*"]' in text
    assert "name:     hello-buildctl_1.0-r0_all.deb" in text
    assert validate(art, pub).returncode == 0
    # unsigned check fails: the product signs, so a device with the key refuses a stripped copy
    assert validate(art, None).returncode != 0
    listed = json.loads((out / "apps.json").read_text())
    assert listed["artifacts"][0]["artifact_name"] == f"{IMAGE}-hello-buildctl-1.0-r0"


def test_bundle_form_takes_the_image_version_from_the_signed_bundle_artifact(deb_world,
                                                                              tmp_path):
    root, prod, _ = deb_world
    from buildctl.ota.mender import load_private_key
    from buildctl.ota.mender.writer import ArtifactSpec, rootfs_payload, write_artifact
    img = tmp_path / "rootfs.ext4"
    img.write_bytes(b"\0" * 4096)
    bundle = tmp_path / "bundle"
    (bundle / "qemux86-64-release").mkdir(parents=True)
    image = bundle / "qemux86-64-release" / "core-image-minimal-qemux86-64.rootfs.mender"
    spec = ArtifactSpec("image-from-bundle-7", ["qemux86-64"],
                        rootfs_payload(img, "image-from-bundle-7"))
    other, _ = make_key(tmp_path / "other.pem")
    write_artifact(spec, image, key=load_private_key(f"file:{other}"))
    r = run_cli("release", "apps", str(prod), "--board", "qemux86-64", "--bundle", str(bundle),
                "--out", str(tmp_path / "o"), cwd=root)
    assert r.returncode == 2 and "signature does not verify" in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()
    write_artifact(spec, image, key=load_private_key(f"file:{root / 'keys' / 'release.pem'}"))
    r = run_cli("release", "apps", str(prod), "--board", "qemux86-64", "--bundle", str(bundle),
                "--out", str(tmp_path / "o"), "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    art = tmp_path / "o" / "demo" / "1.0" / "qemux86-64-release" / "hello-buildctl-1.0-r0.mender"
    text = read(art, root / "keys" / "release.pub.pem")
    assert "rootfs-image.version: image-from-bundle-7" in text


def test_ipk_feed_of_a_plain_kas_build_unsigned_product(tmp_path):
    prod = app_product(tmp_path)
    data = yaml.safe_load(prod.read_text())
    del data["mender"]
    write_yaml(prod, data)
    make_ipk(tmp_path / "deploy")
    r = run_cli("release", "apps", str(prod), "-b", "qemux86-64", "--feed",
                str(tmp_path / "deploy"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)["boards"][0]["artifacts"][0]
    assert (a["type"], a["arch"], a["signed"]) == ("ipk", "core2-64", False)
    art = tmp_path / "apps" / "demo" / "1.0" / "qemux86-64-release" / a["file"]
    text = read(art, None)
    assert "Type:   ipk" in text and "Signature: no signature" in text
    assert "name:     hello-buildctl_1.0-r0_core2-64.ipk" in text
    assert validate(art, None).returncode == 0
    # the same run for people: one line per artifact naming the image it needs
    r = run_cli("release", "apps", str(prod), "-b", "qemux86-64", "--feed",
                str(tmp_path / "deploy"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (f"qemux86-64-release: {a['file']} (ipk, depends rootfs-image.version {IMAGE}, "
            "unsigned)") in r.stdout


def test_apps_options_are_refused_by_the_other_release_verbs(tmp_path):
    r = run_cli("release", "verify", str(tmp_path), "--feed", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2
    assert "--feed is an option of `release apps`, not of `release verify`" in r.stderr


@pytest.mark.parametrize("case", ["no-feed", "unknown-package", "unknown-board", "not-in-feed",
                                  "two-feeds"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    skips.tool("dpkg-deb")
    prod = app_product(tmp_path)
    args = ["release", "apps", str(prod), "--board", "qemux86-64"]
    if case != "no-feed":
        make_deb(feed_dir(tmp_path), name="hello-buildctl" if case != "not-in-feed" else "other")
    if case == "unknown-package":
        args += ["--package", "nosuch"]
    if case == "unknown-board":
        args[4] = "nosuch-board"
    if case == "two-feeds":
        make_ipk(feed_dir(tmp_path))
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    expect = {"no-feed": "no package feed in", "unknown-package": "--package nosuch",
              "unknown-board": "board 'nosuch-board' is not in this product",
              "not-in-feed": "package hello-buildctl is not in the feed",
              "two-feeds": "--format"}[case]
    assert expect in lines[0]
    assert not (tmp_path / "apps").exists()
