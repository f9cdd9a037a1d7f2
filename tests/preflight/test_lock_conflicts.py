"""Lock conflicts name the boards and the manifest lines that pin the diverging commits."""
from __future__ import annotations

from tests.conftest import run_cli
from tests.helpers.fixture_layers import git
from tests.helpers.products import board_data, commit_more, make_repo, simple_product, write_yaml


def _board_with_bsp(tmp_path, machine, commit, bsp):
    return write_yaml(tmp_path / "machines" / f"{machine}.yml", board_data(machine, repos={
        "meta-bsp": {"url": bsp.as_uri(), "refs": {"scarthgap": {"branch": "scarthgap", "commit": commit}},
                     "layers": ["."]}}))


def test_diverging_pins_name_boards_and_files(tmp_path):
    simple_product(tmp_path)
    bsp = tmp_path / "repos" / "meta-bsp"
    base = make_repo(bsp, {"conf/layer.conf": "# v1\n"})
    left = commit_more(bsp, {"conf/layer.conf": "# left\n"})
    git(bsp, "checkout", "-q", "-b", "other", base)
    right = commit_more(bsp, {"conf/layer.conf": "# right\n"})
    _board_with_bsp(tmp_path, "qemux86-64", left, bsp)
    _board_with_bsp(tmp_path, "qemuarm64", right, bsp)
    r = run_cli("lock", "products/demo.yml", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "repo meta-bsp: boards pin commits on diverging histories" in line
    # each commit with the board that pins it and where (relative to the current directory)
    assert f"{left[:12]} by qemux86-64 (machines/qemux86-64.yml:" in line
    assert f"{right[:12]} by qemuarm64 (machines/qemuarm64.yml:" in line
    loc = line.split("machines/qemuarm64.yml:")[1].split(")")[0]
    text = (tmp_path / "machines" / "qemuarm64.yml").read_text().splitlines()
    assert right in text[int(loc) - 1]
    assert not (tmp_path / "products" / "demo.lock.yml").exists()


def test_a_board_that_bypasses_the_lock_is_named_with_its_file(tmp_path):
    product = simple_product(tmp_path)
    bsp = tmp_path / "repos" / "meta-bsp"
    c1 = make_repo(bsp, {"conf/layer.conf": "# v1\n"})
    _board_with_bsp(tmp_path, "qemuarm64", c1, bsp)
    assert run_cli("lock", str(product)).returncode == 0
    c2 = commit_more(bsp, {"conf/layer.conf": "# v2\n"})
    _board_with_bsp(tmp_path, "qemuarm64", c2, bsp)
    r = run_cli("lock", "products/demo.yml", "--check", cwd=tmp_path)
    assert r.returncode == 1 and "(machines/qemuarm64.yml:" in r.stdout and "bypasses the lock" in r.stdout


def test_one_repo_id_from_two_sources_names_both_boards_and_files(tmp_path):
    simple_product(tmp_path)
    a, b = tmp_path / "repos" / "bsp-a", tmp_path / "repos" / "bsp-b"
    _board_with_bsp(tmp_path, "qemux86-64", make_repo(a, {"conf/layer.conf": "# a\n"}), a)
    _board_with_bsp(tmp_path, "qemuarm64", make_repo(b, {"conf/layer.conf": "# b\n"}), b)
    r = run_cli("lock", "products/demo.yml", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "repo 'meta-bsp' comes from" in r.stderr and "one id, one repository" in r.stderr
    assert "machines/qemux86-64.yml:" in r.stderr and "machines/qemuarm64.yml:" in r.stderr
    assert "board qemux86-64" in r.stderr and "board qemuarm64" in r.stderr
