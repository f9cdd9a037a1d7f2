"""`buildctl build` runs the release after the boards that succeeded: build -> bundle -> verify,
with the stand-in BitBake deploying OE-shaped outputs in the builder container."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "builder"))
from tests.builder.conftest import builder_image, docker_engine  # noqa: E402,F401 (fixtures)
from tests.builder.test_cli_product import cli, product  # noqa: E402
from tests.conftest import run_cli  # noqa: E402

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_build_then_release_then_verify(tmp_path, builder_image):  # noqa: F811
    path = product(tmp_path, fail_board="boardc")
    out = tmp_path / "out"
    r = cli(str(path), "--image", builder_image, "--out", str(out), "--json", "--jobs", "2")
    data = json.loads(r.stdout)
    assert r.returncode == 1  # boardc failed; boarda is released anyway
    rel = data["release"]
    assert rel["status"] == "succeeded", rel
    assert rel["boards"] == ["boarda-release"]
    bundle = Path(rel["bundle"])
    assert bundle == out / "release" / "demo" / "1.0"
    files = {p.name for p in (bundle / "boarda-release").iterdir()}
    # meta-mender empties IMAGE_NAME_SUFFIX: the stable names have no ".rootfs"
    assert {"core-image-minimal-boarda.uefiimg", "core-image-minimal-boarda.mender",
            "core-image-minimal-boarda.spdx.tar.zst", "sbom.spdx.json", "sbom.spdx3.json",
            "cves.json"} <= files
    meta = json.loads((bundle / "release.json").read_text())
    assert meta["builder"]["digest"] and meta["source_date_epoch"] == 1709528767
    assert meta["boards"][0]["gate"]["artifacts"][0]["verdict"] == "pass"
    v = run_cli("release", "verify", str(bundle), "--json")
    assert v.returncode == 0, v.stdout
    # --no-release: no bundle
    out2 = tmp_path / "out2"
    r = cli(str(path), "--image", builder_image, "--out", str(out2), "--json", "--board",
            "boarda", "--no-release")
    assert r.returncode == 0 and "release" not in json.loads(r.stdout)
    assert not (out2 / "release").exists()
