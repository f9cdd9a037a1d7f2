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
    # a fresh venv; its dependencies come from the environment running the tests (offline:
    # its site-packages directories, appended after the venv's own, which holds the wheel)
    venv = tmp_path / "venv"
    r = _run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    py = venv / "bin" / "python"
    site = _run(str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                cwd=tmp_path).stdout.strip()
    outer = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    (Path(site) / "zz_test_dependencies.pth").write_text("\n".join(outer) + "\n")
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


def _readme_block(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    after = text[text.index(title):]
    block = after[after.index("```sh\n") + 6:]
    return block[:block.index("```")].strip()


def test_ci_runs_exactly_the_readmes_test_command_in_a_venv():
    test_cmd = _readme_block("Run the tests")
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [x.strip() for x in ci.splitlines()]
    assert test_cmd in lines, f"{test_cmd!r} is not a line of .ci/run"
    venv_at = lines.index(". .venv/bin/activate")
    assert lines.index("python3 -m venv .venv") < venv_at < lines.index(test_cmd)
    # before the venv exists, only Debian's python3 may run
    for line in lines[:venv_at]:
        assert not line.startswith(("python ", "pip ")), line


def test_readme_setup_names_python_version_and_prerequisites():
    setup = (ROOT / "README.md").read_text()
    setup = setup[setup.index("## Set-up"):setup.index("## The two commands")]
    assert "Python 3.11" in setup and "python3 -m venv" in setup
    assert "usermod -aG docker" in setup
    import tomllib

    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"
    for pkg in ("python3-venv", "git", "docker.io", "debootstrap", "openssl"):
        assert pkg in setup.split("apt-get install", 1)[1].split("\n", 1)[0], pkg
