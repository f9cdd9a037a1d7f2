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
from tests.ota.helpers import mender_artifact as mender_artifact_tool

pytestmark = [pytest.mark.docker, pytest.mark.slow]
WT = Path(__file__).resolve().parents[2]


def product(tmp: Path, fail_board: str | None = None,
            local_conf: dict[str, dict] | None = None, local_bsp: bool = False) -> Path:
    os.chmod(tmp, 0o755)
    src = tmp / "src"
    poky = make_poky(src)
    bsp = make_bsp(src, {"boarda": "cortexa53", "boardc": "cortexa7"})
    root = tmp / "product"
    init_repo(root)
    for b, tune in (("boarda", "cortexa53"), ("boardc", "cortexa7")):
        data = board_data(b, repos={"meta-fixture-bsp": {"path": str(bsp[0])} if local_bsp else {
            "url": bsp[0].as_uri(), "refs": {"scarthgap": {"branch": "main", "commit": bsp[1]}}}})
        data["tune"] = tune
        if b == fail_board:
            data["local_conf"] = {"FIXTURE_FAIL": "hello:do_compile"}
        if local_conf and b in local_conf:
            data["local_conf"] = local_conf[b]
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
    # The fixture layers are only what the stand-in BitBake needs, not a stack the pre-flight
    # accepts; build's pre-flight is tested in tests/preflight/test_build_preflight.py.
    return subprocess.run([sys.executable, "-m", "buildctl", "build", "--no-preflight", *args], cwd=WT,
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
    # what OE-core and meta-mender deploy (IMAGE_NAME_SUFFIX is empty on a Mender board): the
    # promised uefiimg and .mender, links to the versioned files, and the image manifest
    for t in ("ext4", "uefiimg", "uefiimg.bmap", "mender", "manifest"):
        link = deploy / f"core-image-minimal-boarda.{t}"
        assert link.is_symlink() and link.resolve().is_file(), t
        assert link.resolve().name.startswith("core-image-minimal-boarda-2")  # -<DATETIME>
    assert "busybox cortexa53 1.0-r0" in (deploy / "core-image-minimal-boarda.manifest").read_text()
    # the .mender is a real artifact: the reference tool reads it, the gate checked it
    mender = deploy / "core-image-minimal-boarda.mender"
    info = subprocess.run([mender_artifact_tool(), "read", str(mender)], capture_output=True,
                          text=True)
    assert info.returncode == 0 and "Name: demo-1.0-boarda\n" in info.stdout, info.stdout
    assert "Compatible devices: '[boarda]'" in info.stdout
    assert a["artifacts"] == [{"path": mender.resolve().name, "problems": []}]
    c = next(b for b in data["boards"] if b["board"] == "boardc")
    assert c["bitbake"]["failures"][0]["task"] == "do_compile"
    # the root cause is the failing tool's own line (from the task's log), in the report...
    assert c["root_cause"] == "make: *** [Makefile:12: all] Error 1"
    assert "hello-1.0-r0 do_compile failed: make: ***" in c["message"]
    # ... and on the console, whole, under the summary table
    r = cli(str(path), "--image", builder_image, "--out", str(out), "--board", "boardc", env=sudo)
    assert r.returncode == 1
    assert "boardc: make: *** [Makefile:12: all] Error 1" in r.stdout
    # plain output (not a terminal): timestamped progress lines and a summary; --board selects
    r = cli(str(path), "--image", builder_image, "--out", str(out), "--board", "boarda", env=sudo)
    assert r.returncode == 0, r.stderr
    assert " boarda: build" in r.stdout and "boardc" not in r.stdout
    assert json.loads((out / "build-report.json").read_text())["order"] == ["boarda"]
    if sudo:  # the caches belong to uid 2345 now: a build as another user is refused up front
        r = cli(str(path), "--image", builder_image, "--out", str(out), "--board", "boarda")
        assert r.returncode == 2 and "owned by uid 2345, the build runs as uid 1000" in r.stderr


def test_gate_fails_a_board_whose_promised_mender_was_not_built(tmp_path, builder_image,
                                                                  docker_engine):
    """The release gate cannot pass by absence: the stand-in is told not to deploy .mender."""
    path = product(tmp_path, local_conf={"boarda": {"FIXTURE_SKIP_FSTYPES": "mender"}})
    out = tmp_path / "out"
    r = cli(str(path), "--image", builder_image, "--out", str(out), "--board", "boarda",
            "--json")
    assert r.returncode == 1, r.stderr
    (a,) = json.loads(r.stdout)["boards"]
    assert a["status"] == "failed"
    assert "core-image-minimal-boarda.mender was not produced" in a["message"]
    assert "core-image-minimal-boarda.mender was not produced" in a["root_cause"]
    assert (out / "boarda-release" / "deploy" / "core-image-minimal-boarda.uefiimg").exists()


def test_report_records_a_dirty_local_repository(tmp_path, builder_image, docker_engine):
    """A path: repository is built as it is on disk: the report says when that is not a commit."""
    path = product(tmp_path, local_bsp=True)
    bsp = tmp_path / "src" / "meta-fixture-bsp"
    out = tmp_path / "out"
    r = cli(str(path), "--image", builder_image, "--out", str(out), "--board", "boarda", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["boards"][0]["layers"]["meta-fixture-bsp"]["dirty"] is False
    (bsp / "conf" / "machine" / "boarda.conf").write_text('DEFAULTTUNE ?= "cortexa53"\n# local edit\n')
    r = cli(str(path), "--image", builder_image, "--out", str(out), "--board", "boarda", "--json")
    assert r.returncode == 0, r.stderr
    layer = json.loads(r.stdout)["boards"][0]["layers"]["meta-fixture-bsp"]
    assert layer["dirty"] is True and layer["path"] == str(bsp)


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
