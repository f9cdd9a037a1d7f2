"""`buildctl build PRODUCT` end to end: manifest -> compose -> containers -> reports, exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from build_fixtures import commit_all, init_repo, make_bsp, make_poky
from tests.helpers.products import board_data, write_yaml
from tests.helpers import skips

pytestmark = [pytest.mark.docker, pytest.mark.slow]
WT = Path(__file__).resolve().parents[2]


def product(tmp: Path, fail_board: str | None = None) -> Path:
    os.chmod(tmp, 0o755)
    src = tmp / "src"
    poky = make_poky(src)
    bsp = make_bsp(src, {"boarda": "cortexa53", "boardc": "cortexa7"})
    root = tmp / "product"
    init_repo(root)
    for b, tune in (("boarda", "cortexa53"), ("boardc", "cortexa7")):
        data = board_data(b, repos={"meta-fixture-bsp": {
            "url": bsp[0].as_uri(), "refs": {"scarthgap": {"branch": "main", "commit": bsp[1]}}}})
        data["tune"] = tune
        if b == fail_board:
            data["local_conf"] = {"FIXTURE_FAIL": "hello:do_compile"}
        write_yaml(root / "machines" / f"{b}.yml", data)
    path = write_yaml(root / "products" / "demo.yml", {
        "name": "demo", "series": "scarthgap", "distro": "poky", "target": "core-image-minimal",
        "repos": {"poky": {"url": poky[0].as_uri(),
                           "refs": {"scarthgap": {"branch": "main", "commit": poky[1]}},
                           "layers": ["meta"]}},
        "boards": ["boarda", "boardc"], "release": {"version": "1.0"},
        "variants": {"release": {}, "debug": {"packages": ["strace"]}},
        "cache": {"sstate_dir": str(tmp / "cache/sstate"), "dl_dir": str(tmp / "cache/dl"),
                  "hermetic": True},
    })
    commit_all(root, date="2024-03-04T05:06:07Z")
    return path


def cli(*args: str, env=None):
    return subprocess.run([sys.executable, "-m", "buildctl", "build", *args], cwd=WT,
                          env=dict(os.environ, PYTHONPATH=str(WT), **(env or {})),
                          capture_output=True, text=True, timeout=300)


def test_product_build_json_reports_and_exit_codes(tmp_path, builder_image, docker_engine):
    path = product(tmp_path, fail_board="boardc")
    out = tmp_path / "out"
    sudo = {"SUDO_UID": "2345", "SUDO_GID": "2345"} if os.geteuid() == 0 else None
    r = cli(str(path), "--image", builder_image, "--out", str(out), "--json", "--jobs", "2",
            env=sudo)
    assert r.returncode == 1, r.stderr  # one board failed
    data = json.loads(r.stdout)
    status = {b["board"]: b["status"] for b in data["boards"]}
    assert status == {"boarda": "succeeded", "boardc": "failed"}
    a = next(b for b in data["boards"] if b["board"] == "boarda")
    assert a["source_date_epoch"] == 1709528767  # the product repository's last commit
    assert a["variant"] == "release" and a["layers"]["poky"]["checked_out"]
    assert a["image_digest"] == data["image_digest"] and data["image_digest"].startswith("sha256:")
    kas = out / "boarda-release" / "kas" / "boarda.yml"
    assert "DL_DIR" not in kas.read_text() and "SSTATE_DIR" not in kas.read_text()
    deploy = out / "boarda-release" / "deploy"
    if os.geteuid() == 0:  # under sudo: everything written belongs to SUDO_UID, nothing to root
        for p in [out, *out.rglob("*")]:
            assert p.lstat().st_uid == 2345, p
    assert (deploy / "core-image-minimal-boarda.rootfs.ext4").exists()
    c = next(b for b in data["boards"] if b["board"] == "boardc")
    assert c["bitbake"]["failures"][0]["task"] == "do_compile"
    # plain output (not a terminal): timestamped progress lines and a summary; --board selects
    r = cli(str(path), "--image", builder_image, "--out", str(out), "--board", "boarda", env=sudo)
    assert r.returncode == 0, r.stderr
    assert " boarda: build" in r.stdout and "boardc" not in r.stdout
    assert json.loads((out / "build-report.json").read_text())["order"] == ["boarda"]
    if sudo:  # the caches belong to uid 2345 now: a build as another user is refused up front
        r = cli(str(path), "--image", builder_image, "--out", str(out), "--board", "boarda")
        assert r.returncode == 2 and "owned by uid 2345, the build runs as uid 1000" in r.stderr


def test_product_usage_errors(tmp_path):
    path = product(tmp_path)
    r = cli(str(path), "--board", "nope")
    assert r.returncode == 2 and "'nope' is not in this product" in r.stderr
    assert r.stderr.count("\n") == 1
    r = cli(str(path), "--variant", "nope")
    assert r.returncode == 2 and "unknown variant" in r.stderr


@skips.unless(os.geteuid() == 0, "a root user's own caches need root (CI runs as root)")
def test_root_users_default_caches_under_root_work(tmp_path, builder_image, docker_engine):
    """Run as root with caches in ~/.cache (under /root, mode 0700 in the image too)."""
    import shutil
    import uuid

    import yaml

    path = product(tmp_path)
    caches = Path("/root/.cache") / f"buildctl-test-{uuid.uuid4().hex[:8]}"
    try:
        data = yaml.safe_load(path.read_text())
        data["cache"] = {"sstate_dir": str(caches / "sstate"), "dl_dir": str(caches / "dl")}
        write_yaml(path, data)
        commit_all(path.parent.parent, date="2024-03-04T05:06:07Z")
        out = tmp_path / "out"
        r = cli(str(path), "--image", builder_image, "--out", str(out), "--board", "boarda",
                env={"KAS_REPO_REF_DIR": ""})
        assert r.returncode == 0, r.stdout + r.stderr
        assert any((caches / "sstate").iterdir())  # the build wrote its sstate there
    finally:
        shutil.rmtree(caches, ignore_errors=True)
