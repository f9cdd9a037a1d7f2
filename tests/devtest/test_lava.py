"""LAVA jobs: every shipped board's job validates with LAVA's own schema (lava-common), and
`buildctl test --lava URL` submits one and follows it through LAVA's REST API."""
from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from buildctl.devtest import checks, lava
from buildctl.manifest import load_board, load_product
from tests.conftest import ROOT, run_cli
from tests.devtest.lava_server import LavaServer
from tests.helpers import skips

SYSTEM_PYTHON = "/usr/bin/python3"  # lava-common is a Debian package for Debian's python3
VALIDATE = """
import sys, yaml
from lava_common.schemas import validate
for path in sys.argv[1:]:
    try:
        validate(yaml.safe_load(open(path)))
        print(path, "valid")
    except Exception as exc:
        print(path, "invalid:", exc)
"""


def lava_validate(paths: list[Path]) -> dict[str, str]:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import lava_common.schemas"], capture_output=True)
    if probe.returncode != 0:
        skips.missing("lava-common (Debian package, for /usr/bin/python3) is not installed",
                      ".ci/run installs it")
    out = subprocess.run([SYSTEM_PYTHON, "-c", VALIDATE, *map(str, paths)], check=True,
                         capture_output=True, text=True).stdout
    return {Path(line.split(" ", 1)[0]).name: line.split(" ", 1)[1] for line in out.splitlines()}


def test_jobs_for_every_shipped_board_validate_with_lava_schema(tmp_path):
    product = load_product(ROOT / "products" / "demo.yml")
    boards = sorted((ROOT / "machines").glob("*.yml"))
    assert len(boards) >= 8
    paths = []
    for path in boards:
        board = load_board(path)
        job = lava.render_job(product, board, "release",
                              checks.for_board(product, board.name, "release"),
                              image_url=f"https://images.example.invalid/{board.name}.img.xz")
        p = tmp_path / f"{board.name}.yml"
        p.write_text(job)
        paths.append(p)
        data = yaml.safe_load(job)
        steps = data["actions"][2]["test"]["definitions"][0]["repository"]["run"]["steps"]
        assert len(steps) == len(checks.for_board(product, board.name))
        assert "demo-1\\.0\\.0-" + board.name + "-release" in steps[1]
        deploy = data["actions"][0]["deploy"]
        assert deploy["to"] == ("tmpfs" if board.family == "qemu" else "flasher")
    assert lava_validate(paths) == {p.name: "valid" for p in paths}


def test_the_schema_check_rejects_a_broken_job(tmp_path):
    product = load_product(ROOT / "products" / "demo.yml")
    board = load_board(ROOT / "machines" / "raspberrypi5.yml")
    data = yaml.safe_load(lava.render_job(product, board, "release", checks.for_board(product, board.name),
                                          image_url="https://images.example.invalid/x.img"))
    del data["actions"][0]["deploy"]["images"]
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(data))
    data["timeouts"]["job"] = {"minutes": 1}  # shorter than its actions' timeouts
    del data["actions"][0]  # (the deploy is fine again by removal)
    (tmp_path / "short.yml").write_text(yaml.safe_dump(data))
    result = lava_validate([tmp_path / "broken.yml", tmp_path / "short.yml"])
    assert "images" in result["broken.yml"]
    assert "larger than job timeout" in result["short.yml"]


def _submit(server: LavaServer, tmp_path: Path, *extra: str):
    return run_cli("test", "products/demo.yml", "--board", "raspberrypi4-64", "--lava", server.url,
                   "--image-url", "https://images.example.invalid/rpi4.img.gz",
                   "--lava-token", "env:LAVA_TEST_TOKEN", "--lava-poll", "0.05",
                   "--junit", str(tmp_path / "junit.xml"), "--json", *extra,
                   cwd=ROOT, env={"LAVA_TEST_TOKEN": "s3cret"})


def test_lava_submission_is_followed_to_its_results(tmp_path):
    with LavaServer("s3cret") as server:
        r = _submit(server, tmp_path, "--lava-job", str(tmp_path / "job.yml"))
    assert r.returncode == 1, r.stderr  # this host has no Mender client: that check fails
    data = json.loads(r.stdout)
    status = {s["name"]: s["status"] for s in data["steps"]}
    # the steps ran for real in the test server's shell: uname says Linux, mender is missing
    assert status["job"] == "passed" and status["kernel"] == "passed"
    assert status["mender-artifact"] == "failed"
    by = {s["name"]: s for s in data["steps"]}
    assert "mender --log-level error show-artifact" in by["mender-artifact"]["serial"]  # its own log lines
    assert "uname -sr" not in by["mender-artifact"]["serial"]
    assert "uname -sr" in by["kernel"]["serial"]
    assert "box login: root" in by["job"]["serial"]
    assert data["runner"] == "lava" and data["target"]["job"] == "100"
    assert ("POST", "/api/v0.2/jobs/") in server.requests
    assert sum(1 for m, p in server.requests if p == "/api/v0.2/jobs/100/") >= 2  # followed
    assert any("page=2" in p for _, p in server.requests)  # read every page of results
    assert server.jobs[100]["definition"] == (tmp_path / "job.yml").read_text()
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite.find("testcase[@name='mender-artifact']/failure") is not None
    assert "s3cret" not in r.stdout + r.stderr


def test_an_incomplete_lava_job_fails_and_a_bad_token_is_one_line(tmp_path):
    with LavaServer("s3cret", health="Incomplete") as server:
        r = _submit(server, tmp_path)
    assert r.returncode == 1
    steps = json.loads(r.stdout)["steps"]
    assert steps[0]["name"] == "job" and steps[0]["status"] == "failed"
    assert "Incomplete" in steps[0]["message"]
    assert {s["status"] for s in steps[1:]} == {"failed"}
    with LavaServer("other") as server:
        r = _submit(server, tmp_path)
    assert r.returncode == 2 and "HTTP 401" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "s3cret" not in r.stderr
    r = run_cli("test", "products/demo.yml", "--board", "raspberrypi4-64", "--lava", "ftp://x", cwd=ROOT)
    assert r.returncode == 2 and "--image-url" in r.stderr
    r = run_cli("test", "products/demo.yml", "--board", "raspberrypi4-64", "--lava", "ftp://x",
                "--image-url", "https://images.example.invalid/a.img", cwd=ROOT)
    assert r.returncode == 2 and "not an http(s) URL" in r.stderr


def test_lava_run_of_the_deploy_outputs_leaves_its_report_for_the_release_gate(tmp_path):
    from buildctl.devtest import report

    bdir = tmp_path / "out" / "raspberrypi4-64-release"
    image = bdir / "deploy" / "core-image-minimal-raspberrypi4-64.sdimg"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"an sdimg the lab fetches\n")
    with LavaServer("s3cret") as server:
        r = run_cli("test", "products/demo.yml", "--board", "raspberrypi4-64", "--lava", server.url,
                    "--out", str(tmp_path / "out"), "--image-url", "http://files.example.invalid/ci/",
                    "--lava-token", "env:LAVA_TEST_TOKEN", "--lava-poll", "0.05", cwd=ROOT,
                    env={"LAVA_TEST_TOKEN": "s3cret"})
        definition = yaml.safe_load(server.jobs[100]["definition"])
    assert r.returncode == 1, r.stderr  # the lab's shell has no Mender client
    # a base URL ending in "/" is where the out dir is served: the lab fetches this image
    deploy = next(a["deploy"] for a in definition["actions"] if "deploy" in a)
    assert ("http://files.example.invalid/ci/raspberrypi4-64-release/deploy/"
            "core-image-minimal-raspberrypi4-64.sdimg") in json.dumps(deploy)
    rep = json.loads((bdir / report.REPORT_NAME).read_text())
    assert rep["runner"] == "lava" and rep["facts"]["image_sha256"] == report.sha256_file(image)
    assert report.tested_verdict(bdir, image) == "failed"
