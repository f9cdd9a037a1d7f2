"""Local (`path:`) repositories: validate reads what the build uses, and names a repository
git refuses to read instead of reporting what follows from it."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from buildctl.layers.gitfs import is_dirty
from buildctl.manifest import load_product
from buildctl.preflight.run import relative_to_cwd, validate_product
from buildctl.repos import RepoCache
from tests.helpers.products import commit_more, layer_conf, make_repo, simple_product, write_yaml


def _with_app(tmp_path, pinned: bool):
    """simple_product + a local repo 'app' holding layer meta-app (committed: depends on core)."""
    path = simple_product(tmp_path)
    app = tmp_path / "app"
    commit = make_repo(app, {"meta-app/conf/layer.conf": layer_conf("app", depends=["core"])})
    d = yaml.safe_load(path.read_text())
    d["repos"]["app"] = {"path": "../app", "layers": ["meta-app"]}
    if pinned:
        d["repos"]["app"]["refs"] = {"scarthgap": {"commit": commit}}
    write_yaml(path, d)
    # an uncommitted change: the work tree now needs a layer no board has
    (app / "meta-app" / "conf" / "layer.conf").write_text(
        layer_conf("app", depends=["core", "missing-layer"]))
    return path, app


def _validate(path):
    product = load_product(path)
    return validate_product(product, [product.boards["qemux86-64"]], None, RepoCache(offline=True))


def test_work_tree_with_uncommitted_changes_is_what_validate_checks(tmp_path, monkeypatch):
    path, app = _with_app(tmp_path, pinned=False)
    assert is_dirty(app)
    monkeypatch.chdir(tmp_path)
    (f,) = relative_to_cwd(_validate(path))
    assert f.code == "layer-depends" and "'missing-layer'" in f.message
    # the real file on disk, relative to the current directory
    assert f.file == os.path.join("app", "meta-app", "conf", "layer.conf")
    assert open(f.file).read().splitlines()[f.line - 1].startswith("LAYERDEPENDS_app")
    commit_more(app, {})  # committing does not change what is checked
    assert not is_dirty(app)
    assert [x.code for x in _validate(path)] == ["layer-depends"]


def test_a_pinned_commit_is_checked_not_the_work_tree(tmp_path):
    path, app = _with_app(tmp_path, pinned=True)
    assert is_dirty(app)
    assert _validate(path) == []  # the commit the build checks out depends on core only


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the repository to another user")
@pytest.mark.parametrize("pinned", [False, True])
def test_checkout_of_another_user_is_named_as_such(tmp_path, monkeypatch, pinned):
    path, app = _with_app(tmp_path, pinned=pinned)
    cfg = tmp_path / "gitconfig"
    cfg.write_text("")  # no safe.directory exceptions from the user's configuration
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    subprocess.run(["chown", "-R", "65534:65534", str(app)], check=True)
    found = _validate(path)
    assert [f.code for f in found] == ["repo-unreadable"]  # and nothing that follows from it
    (f,) = found
    assert f.message.startswith("repo app: git refuses to read ")
    assert "dubious ownership" in f.message and "belongs to another user" in f.message
    assert "safe.directory" in f.message and "not found" not in f.message
    assert f.board == "qemux86-64" and f.file == str(path) and f.line == 15
    shutil.rmtree(app)
