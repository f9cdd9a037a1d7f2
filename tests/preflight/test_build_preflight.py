"""`buildctl build` runs the pre-flight first and stops before anything starts on errors."""
from __future__ import annotations

from tests.conftest import run_cli
from tests.helpers.products import board_data, simple_product, write_yaml


def _broken(tmp_path):
    product = simple_product(tmp_path)
    # storage that cannot hold two root filesystems: an error validate reports
    write_yaml(tmp_path / "machines" / "qemuarm64.yml", board_data(
        "qemuarm64", storage={"device": "/dev/vda", "total_mb": 256, "boot_mb": 64, "data_mb": 128}))
    return product


def test_build_stops_on_preflight_errors_before_anything_starts(tmp_path):
    _broken(tmp_path)
    r = run_cli("build", "products/demo.yml", "--runtime", "host", "--out", "out", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "machines/qemuarm64.yml:" in r.stdout and "(mender-storage)" in r.stdout
    assert r.stderr.strip().splitlines() == [
        "buildctl: error: pre-flight found 1 error(s): nothing was built (fix them, or skip the "
        "checks with --no-preflight)"]
    assert not (tmp_path / "out").exists()  # no workspace, no container, no report


def test_build_of_a_board_without_errors_passes_the_preflight(tmp_path):
    _broken(tmp_path)
    r = run_cli("build", "products/demo.yml", "--board", "qemux86-64", "--runtime", "host",
                "--out", "out", "--parse-only", cwd=tmp_path)
    assert "pre-flight found" not in r.stderr
    assert (tmp_path / "out" / "build-report.json").exists()  # it went on to the build itself


def test_no_preflight_skips_the_checks(tmp_path):
    _broken(tmp_path)
    r = run_cli("build", "products/demo.yml", "--runtime", "host", "--out", "out", "--parse-only",
                "--no-preflight", cwd=tmp_path)
    assert "pre-flight found" not in r.stderr and "(mender-storage)" not in r.stdout
    assert (tmp_path / "out").exists()  # the build itself started
