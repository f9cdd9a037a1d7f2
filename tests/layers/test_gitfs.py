"""Reading a repository at a commit without a work tree."""
from __future__ import annotations


import pytest

from buildctl.layers.gitfs import GitReadError, match_path_glob
from tests.helpers.fixture_layers import LayerSpec, commit_files, make_layer_repo


def test_reads_files_at_pinned_commit_not_worktree(tmp_path, fs):
    repo, first = make_layer_repo(tmp_path, "meta-foo", files={"README": "one\n"})
    second = commit_files(repo, {"README": "two\n", "conf/machine/new.conf": "X = \"1\"\n"})
    (repo / "README").write_text("uncommitted\n")
    assert fs.tree(repo, first).read_text("README") == "one\n"
    assert fs.tree(repo, second).read_text("README") == "two\n"
    assert not fs.tree(repo, first).exists("conf/machine/new.conf")
    assert fs.tree(repo, "scarthgap").commit == second  # branch names resolve


def test_bare_mirror_and_listing(tmp_path, fs):
    repo, commit = make_layer_repo(
        tmp_path, "meta-foo",
        {"": LayerSpec(collection="foo", machines=["a", "b"], recipes=["hello_1.0.bb"])}, bare=True,
    )
    t = fs.tree(repo, commit)
    assert t.list_dir("conf/machine") == ["a.conf", "b.conf"]
    assert "conf" in t.list_dir("")
    assert t.list_dir("nope") == []
    assert t.glob("recipes-*/*/*.bb") == ["recipes-hello/hello/hello_1.0.bb"]
    assert t.files("conf/machine") == ["conf/machine/a.conf", "conf/machine/b.conf"]


def test_git_dir_without_config_is_readable(tmp_path, fs):
    # Mirrors may be bare directories holding only HEAD, objects and refs.
    _, commit = make_layer_repo(tmp_path, "meta-foo", bare=True)
    (tmp_path / "meta-foo.git" / "config").unlink()
    assert "BBFILE_COLLECTIONS" in fs.tree(tmp_path / "meta-foo.git", commit).read_text("conf/layer.conf")


def test_trees_are_cached_per_commit(tmp_path, fs):
    repo, commit = make_layer_repo(tmp_path, "meta-foo")
    assert fs.tree(repo, commit) is fs.tree(repo, "HEAD")


def test_errors_name_repo_and_commit(tmp_path, fs):
    repo, commit = make_layer_repo(tmp_path, "meta-foo")
    with pytest.raises(GitReadError, match="commit 'deadbeef' not found"):
        fs.tree(repo, "deadbeef")
    with pytest.raises(GitReadError, match="not a git repository"):
        fs.tree(tmp_path / "nowhere", "HEAD")
    with pytest.raises(FileNotFoundError, match=r"conf/missing.conf not found .* at " + commit[:12]):
        fs.tree(repo, commit).read_text("conf/missing.conf")


@pytest.mark.parametrize(
    "pattern,path,want",
    [
        ("recipes-*/*/*.bb", "recipes-core/busybox/busybox_1.36.1.bb", True),
        ("recipes-*/*/*.bb", "recipes-core/busybox/files/x.bb", False),  # * never crosses /
        ("recipes*/*/*.bbappend", "recipes-bsp/u-boot/u-boot_%.bbappend", True),
        ("recipes-*/*/*.bb", "recipes-core/busybox/busybox_1.36.1.bbappend", False),
        ("*/*.bb", "x/.hidden.bb", False),
    ],
)
def test_glob_like_bitbake(pattern, path, want):
    assert match_path_glob(pattern, path) is want


def test_missing_full_commit_id_is_reported(tmp_path, fs):
    repo, _ = make_layer_repo(tmp_path, "meta-foo")
    with pytest.raises(GitReadError, match=r"meta-foo: commit '0{40}' not found"):
        fs.tree(repo, "0" * 40)


def test_conf_files_are_preloaded_in_one_batch(tmp_path, fs):
    repo, commit = make_layer_repo(tmp_path, "meta-foo", {"": LayerSpec(collection="foo", machines=["m"], recipes=["a_1.bb"])})
    t = fs.tree(repo, commit)
    assert set(t._preloaded) == {t._blobs["conf/layer.conf"], t._blobs["conf/machine/m.conf"]}
    assert t.read_text("conf/machine/m.conf") == (repo / "conf/machine/m.conf").read_text()
    assert t.read_text("recipes-a/a/a_1.bb") == (repo / "recipes-a/a/a_1.bb").read_text()  # not preloaded
