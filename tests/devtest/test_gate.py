"""The device test gate: release, publish and rollout refuse an image that did not pass
`buildctl test` (one line naming the board, exit 1, nothing written or sent) unless told
--untested; the verdict travels in the bundle, covered by its checksums and provenance."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.release.helpers import deploy_for, device_tested, release_product

BOARDS = ("qemux86-64", "qemuarm64")


@pytest.fixture
def product(tmp_path) -> Path:
    prod = release_product(tmp_path, BOARDS)
    for b in BOARDS:
        deploy_for(tmp_path, b)
    return prod


def board_dir(tmp_path: Path, board: str) -> Path:
    return tmp_path / "out" / "demo" / f"{board}-release"


def release(tmp_path: Path, prod: Path, *extra: str):
    return run_cli("release", str(prod), "--json", *extra, cwd=tmp_path)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_release_names_each_board_whose_test_is_missing_or_failed(tmp_path, product):
    r = release(tmp_path, product)
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert "release refused" in line
    assert "qemux86-64-release (no device test of this image)" in line
    assert "qemuarm64-release (no device test of this image)" in line and "--untested" in line
    assert not (tmp_path / "release").exists() or not any((tmp_path / "release").rglob("*.json"))

    device_tested(board_dir(tmp_path, "qemux86-64"))
    device_tested(board_dir(tmp_path, "qemuarm64"), verdict="failed")
    r = release(tmp_path, product)
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert "qemuarm64-release (device test failed)" in line and "qemux86-64" not in line

    # a rebuilt image is not the one that was tested
    device_tested(board_dir(tmp_path, "qemuarm64"))
    image = next((board_dir(tmp_path, "qemux86-64") / "deploy").glob("*.uefiimg"))
    image.resolve().write_bytes(image.read_bytes() + b"rebuilt")
    r = release(tmp_path, product)
    assert r.returncode == 1
    assert "not tested: qemux86-64-release (no device test of this image)" in one_line(r.stderr)

    device_tested(board_dir(tmp_path, "qemux86-64"))
    r = release(tmp_path, product)
    assert r.returncode == 0, r.stderr
    boards = {b["dir"]: b["test"] for b in json.loads(r.stdout)["boards"]}
    assert boards == {f"{b}-release": {"verdict": "passed",
                                       "report": f"{b}-release/devtest-report.json"}
                      for b in BOARDS}
    text = run_cli("release", str(product), "--out", "again", cwd=tmp_path).stdout
    assert "qemuarm64-release: gate pass, device test passed" in text


@pytest.fixture(scope="module")
def untested_bundle(tmp_path_factory) -> Path:
    """A bundle released --untested: qemux86-64 never tested, qemuarm64's test failed."""
    tmp_path = tmp_path_factory.mktemp("untested")
    prod = release_product(tmp_path, BOARDS)
    for b in BOARDS:
        deploy_for(tmp_path, b)
    device_tested(board_dir(tmp_path, "qemuarm64"), verdict="failed")
    r = release(tmp_path, prod, "--untested-board", "qemuarm64")
    assert r.returncode == 1 and "qemuarm64" not in r.stderr
    assert "not tested: qemux86-64-release (no device test of this image)" in one_line(r.stderr)
    r = release(tmp_path, prod, "--untested")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert {b["dir"]: b["test"]["verdict"] for b in data["boards"]} == {
        "qemux86-64-release": "untested", "qemuarm64-release": "failed"}
    return Path(data["bundle"])


def test_publish_refuses_an_untested_bundle_and_sends_nothing(tmp_path, untested_bundle):
    import shutil

    from tests.publish.conftest import product_with_targets

    bundle = untested_bundle
    # nothing listens there: a refused publish never gets as far as connecting
    prod = product_with_targets(tmp_path, {"dav": {"type": "webdav",
                                                   "url": "http://127.0.0.1:9/releases"}})
    r = run_cli("publish", str(bundle), "--product", str(prod), "--dry-run")
    assert r.returncode == 1 and r.stdout == ""
    line = one_line(r.stderr)
    assert line.endswith("publish refused: not tested: qemux86-64-release (no device test of this "
                         "image), qemuarm64-release (device test failed); run `buildctl test` on "
                         "the board's image, or pass --untested to ship it anyway")
    # excusing one board still refuses the other
    r = run_cli("publish", str(bundle), "--product", str(prod), "--dry-run",
                "--untested-board", "qemux86-64")
    assert r.returncode == 1
    assert one_line(r.stderr).endswith("not tested: qemuarm64-release (device test failed); run "
                                       "`buildctl test` on the board's image, or pass --untested "
                                       "to ship it anyway")
    r = run_cli("publish", str(bundle), "--product", str(prod), "--dry-run",
                "--untested-board", "qemux86-64", "--untested-board", "qemuarm64")
    assert r.returncode == 0, r.stderr
    r = run_cli("publish", str(bundle), "--product", str(prod), "--dry-run", "--untested")
    assert r.returncode == 0, r.stderr
    assert "would PUT http://127.0.0.1:9/releases/demo/1.0/qemuarm64-release/devtest-report.json" \
        in r.stdout

    # the verdict is part of what the bundle's checksums cover: a report edited to "passed"
    # makes the bundle fail verification before the gate is even asked
    bundle = Path(shutil.copytree(bundle, tmp_path / "copy"))
    rep = bundle / "qemuarm64-release" / "devtest-report.json"
    rep.write_text(rep.read_text().replace('"verdict": "failed"', '"verdict": "passed"'))
    r = run_cli("publish", str(bundle), "--product", str(prod), "--dry-run")
    assert r.returncode == 1 and "release verify failed" in r.stderr
    assert "qemuarm64-release/devtest-report.json" in r.stderr


def test_rollout_refuses_an_untested_bundle_before_talking_to_the_server(tmp_path, untested_bundle):
    bundle = untested_bundle
    args = ["rollout", str(bundle), "--server", "http://127.0.0.1:9", "--token", "env:T",
            "--stages", "canary:group=canary", "--state", str(tmp_path / "state.json")]
    r = run_cli(*args, env={"T": "not-a-real-token"})
    assert r.returncode == 1
    assert "rollout refused: not tested: qemux86-64-release" in one_line(r.stderr)
    assert not (tmp_path / "state.json").exists()
    # told --untested, it goes on to the server (here: nothing listens, so that fails instead)
    r = run_cli(*args, "--untested", env={"T": "not-a-real-token"})
    assert r.returncode == 1 and "rollout refused" not in r.stderr
    assert "127.0.0.1:9" in r.stderr and "Connection refused" in r.stderr
