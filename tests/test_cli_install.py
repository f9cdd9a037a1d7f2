"""`pip install buildctl` from a wheel (not -e) carries what a build needs: the builder image
inputs and buildctl's own layers, found without the checkout."""
from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*argv, cwd, env=None, timeout=600):
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_wheel_install_finds_image_inputs_and_layers(tmp_path):
    wheels = tmp_path / "wheels"
    r = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT),
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = wheels.glob("buildctl-*.whl")
    # a fresh venv; its dependencies come from this interpreter's site-packages (offline), the
    # package itself only from the wheel
    venv = tmp_path / "venv"
    r = _run(sys.executable, "-m", "venv", "--system-site-packages", str(venv), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    py = venv / "bin" / "python"
    r = _run(str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    elsewhere = tmp_path / "elsewhere"  # not the checkout: nothing found by accident
    elsewhere.mkdir()

    r = _run(str(py), "-c", "import buildctl, buildctl.resources as r; print(buildctl.__file__); "
             "print(r.containers_dir()); print(r.layers_dir())", cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr
    pkg, containers, layers = (Path(x) for x in r.stdout.split())
    assert venv in pkg.parents, f"buildctl imported from {pkg}, not from the wheel"
    assert venv in containers.parents and venv in layers.parents
    assert not layers.is_symlink()  # a copy, not a link back into a checkout

    # the image inputs: same files, so the same image tag as the checkout computes
    cmp = filecmp.dircmp(ROOT / "buildctl" / "data" / "containers", containers)
    assert not (cmp.left_only or cmp.right_only or cmp.diff_files), cmp.report()
    buildctl = venv / "bin" / "buildctl"
    r = _run(str(buildctl), "container", "build", "--help", cwd=elsewhere, env=env)
    assert r.returncode == 0 and "debootstrap" in r.stdout, r.stderr
    tag_wheel = _run(str(buildctl), "container", "tag", "--profile", "minimal", cwd=elsewhere, env=env)
    tag_src = _run(sys.executable, "-m", "buildctl", "container", "tag", "--profile", "minimal",
                   cwd=ROOT, env=dict(env, PYTHONPATH=str(ROOT)))
    assert tag_wheel.returncode == 0, tag_wheel.stderr
    assert tag_wheel.stdout.strip() == tag_src.stdout.strip() != ""

    # the layers: every file of the checkout's layers/, byte for byte
    src_files = sorted(p.relative_to(ROOT / "layers") for p in (ROOT / "layers").rglob("*")
                       if p.is_file())
    assert Path("meta-buildctl/conf/layer.conf") in src_files
    for rel in src_files:
        assert (layers / rel).read_bytes() == (ROOT / "layers" / rel).read_bytes(), rel
    r = _run(str(py), "-m", "buildctl.resources", "layers", cwd=elsewhere, env=env)
    assert r.returncode == 0 and Path(r.stdout.strip()) == layers
