"""One lock for the matrix: shared commits, --update with counts, --check for stale/bypass."""
from __future__ import annotations

import shutil

import yaml

from tests.conftest import run_cli
from tests.helpers.products import commit_more, make_repo, simple_product, write_yaml, board_data
from buildctl.repos import qualified_name


def _lock(path):
    return yaml.safe_load(path.with_name("demo.lock.yml").read_text())["overrides"]["repos"]


def test_lock_pins_every_repo_and_check_passes(tmp_path):
    product = simple_product(tmp_path)
    r = run_cli("lock", str(product))
    assert r.returncode == 0, r.stderr
    repos = _lock(product)
    manifest = yaml.safe_load(product.read_text())
    assert repos["poky"]["commit"] == manifest["repos"]["poky"]["refs"]["scarthgap"]["commit"]
    assert repos["poky"]["branch"] == "scarthgap"
    assert run_cli("lock", str(product), "--check").returncode == 0


def test_update_moves_branches_and_prints_counts(tmp_path):
    product = simple_product(tmp_path)
    run_cli("lock", str(product))
    old = _lock(product)["poky"]["commit"]
    poky = tmp_path / "repos" / "poky"
    commit_more(poky, {"meta/a.txt": "1"})
    new = commit_more(poky, {"meta/b.txt": "2"})
    r = run_cli("lock", str(product), "--update", "--json")
    assert r.returncode == 0, r.stderr
    change = yaml.safe_load(r.stdout)["changes"][0]
    assert change == {"repo": "poky", "old": old, "new": new, "commits": 2, "branch": "scarthgap"}
    assert _lock(product)["poky"]["commit"] == new
    # boards pin minimums: the newer lock still contains the pinned commit
    assert run_cli("lock", str(product), "--check").returncode == 0


def _board_with_bsp(tmp_path, machine, commit, bsp):
    return write_yaml(tmp_path / "machines" / f"{machine}.yml", board_data(machine, repos={
        "meta-bsp": {"url": bsp.as_uri(), "refs": {"scarthgap": {"branch": "scarthgap", "commit": commit}},
                     "layers": ["."]}}))


def test_lock_takes_the_newest_pin_shared_by_all_boards(tmp_path):
    product = simple_product(tmp_path)
    bsp = tmp_path / "repos" / "meta-bsp"
    c1 = make_repo(bsp, {"conf/layer.conf": "# v1\n"})
    c2 = commit_more(bsp, {"conf/layer.conf": "# v2\n"})
    _board_with_bsp(tmp_path, "qemux86-64", c1, bsp)
    _board_with_bsp(tmp_path, "qemuarm64", c2, bsp)
    assert run_cli("lock", str(product)).returncode == 0
    assert _lock(product)["meta-bsp"]["commit"] == c2
    out = tmp_path / "out"
    assert run_cli("compose", str(product), "--out", str(out)).returncode == 0
    for b in ("qemux86-64", "qemuarm64"):  # both boards build the same commit
        assert yaml.safe_load((out / f"{b}.yml").read_text())["repos"]["meta-bsp"]["commit"] == c2


def test_check_reports_stale_and_bypass(tmp_path):
    product = simple_product(tmp_path)
    assert run_cli("lock", str(product)).returncode == 0
    # a board starts to need a repo the lock does not know
    bsp = tmp_path / "repos" / "meta-bsp"
    c1 = make_repo(bsp, {"conf/layer.conf": "# v1\n"})
    _board_with_bsp(tmp_path, "qemuarm64", c1, bsp)
    r = run_cli("lock", str(product), "--check")
    assert r.returncode == 1 and "meta-bsp: not in the lock" in r.stdout
    assert run_cli("lock", str(product)).returncode == 0
    # a board pins a commit newer than the locked one: it bypasses the lock
    c2 = commit_more(bsp, {"conf/layer.conf": "# v2\n"})
    _board_with_bsp(tmp_path, "qemuarm64", c2, bsp)
    r = run_cli("lock", str(product), "--check")
    assert r.returncode == 1 and "bypasses the lock" in r.stdout and "meta-bsp (board qemuarm64)" in r.stdout


def test_reference_mirror_makes_lock_work_air_gapped(tmp_path):
    product = simple_product(tmp_path / "ws")
    manifest = yaml.safe_load(product.read_text())
    poky = tmp_path / "ws" / "repos" / "poky"
    # the real upstream is unreachable; a kas-style reference mirror has it
    url = "https://git.invalid/poky.git"
    refdir = tmp_path / "refs"
    refdir.mkdir()
    shutil.copytree(poky / ".git", refdir / qualified_name(url))
    manifest["repos"]["poky"]["url"] = url
    del manifest["repos"]["poky"]["refs"]["scarthgap"]["commit"]  # floating: lock must resolve it
    write_yaml(product, manifest)
    r = run_cli("lock", str(product), "--offline", "--repo-ref-dir", str(refdir))
    assert r.returncode == 0, r.stderr
    head = (poky / ".git" / "refs" / "heads" / "scarthgap").read_text().strip()
    assert _lock(product)["poky"]["commit"] == head
    r = run_cli("lock", str(product), "--offline")
    assert r.returncode == 0  # the lock already holds it; nothing to fetch
