"""`buildctl repos PRODUCT -- CMD`: the command runs in a checkout of every repository at its
pin, with the repository in its environment; a failure names the repository."""
from __future__ import annotations

import pytest
import yaml

from tests.conftest import run_cli
from tests.helpers.fixture_layers import git
from tests.helpers.products import commit_more, layer_conf, make_repo, simple_product

ENV_DUMP = ('echo "$BUILDCTL_REPO_ID|$BUILDCTL_REPO_COMMIT|$BUILDCTL_REPO_BRANCH|'
            '$BUILDCTL_REPO_URL|$BUILDCTL_REPO_BOARDS|$BUILDCTL_REPO_PATH|$(pwd)|'
            '$(git rev-parse HEAD)|$(cat VERSION)"; echo scratch > made-by-cmd')


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    root = tmp_path_factory.mktemp("repos")
    path = simple_product(root)
    extra = root / "repos" / "meta-extra"
    pinned = make_repo(extra, {"conf/layer.conf": layer_conf("extra"), "VERSION": "pinned\n"})
    commit_more(extra, {"VERSION": "newer, not pinned\n"})  # the branch moved on
    poky = root / "repos" / "poky"
    commit_more(poky, {"VERSION": "poky head\n"})
    data = yaml.safe_load(path.read_text())
    data["repos"]["meta-extra"] = {"url": extra.as_uri(), "layers": ["."], "refs": {
        "scarthgap": {"branch": "scarthgap", "commit": pinned}}}
    data["repos"]["poky"]["refs"]["scarthgap"].pop("commit")  # floating: the branch head
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return {"path": path, "root": root, "extra": extra, "pinned": pinned,
            "poky_head": git(poky, "rev-parse", "HEAD").strip()}


def test_runs_in_every_repo_at_its_pin_with_the_repo_in_the_environment(product, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("repos", str(product["path"]), "--out", str(out), "--", "sh", "-c", ENV_DUMP)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("[meta-extra] ") and \
        lines[1].startswith("[poky]       ")
    rows = {f[0].split("]")[1].strip(): f for f in (line.split("|") for line in lines)}
    extra = rows["meta-extra"]
    assert extra[1:5] == [product["pinned"], "scarthgap", product["extra"].as_uri(),
                          "qemux86-64 qemuarm64"]
    assert extra[5] == extra[6] == str(out / "repos" / "meta-extra")
    assert extra[7:] == [product["pinned"], "pinned"]  # the pin, not the branch's newer commit
    assert rows["poky"][1] == rows["poky"][7] == product["poky_head"]
    assert rows["poky"][8] == "poky head"
    # the command wrote into the scratch checkout only; the source repository is untouched
    assert (out / "repos" / "meta-extra" / "made-by-cmd").exists()
    assert git(product["extra"], "status", "--porcelain").strip() == ""
    assert "succeeded in 2 repositories" in proc.stderr
    # a second run starts from a clean checkout at the pin again
    proc = run_cli("repos", str(product["path"]), "--out", str(out), "--", "sh", "-c",
                   "test ! -e made-by-cmd && git status --porcelain")
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_a_lock_decides_the_commit(product, tmp_path):
    lock = tmp_path / "demo.lock.yml"
    lock.write_text(yaml.safe_dump({"header": {"version": 23}, "overrides": {"repos": {
        "poky": {"url": (product["root"] / "repos" / "poky").as_uri(), "branch": "scarthgap",
                 "commit": git(product["root"] / "repos" / "poky", "rev-parse", "HEAD~1").strip()}}}}))
    proc = run_cli("repos", str(product["path"]), "--lock", str(lock), "--board", "qemux86-64",
                   "--out", str(tmp_path / "out"), "--", "sh", "-c",
                   'echo "$BUILDCTL_REPO_COMMIT $(git rev-parse HEAD)"')
    assert proc.returncode == 0, proc.stderr
    poky = [line for line in proc.stdout.splitlines() if line.startswith("[poky]")][0].split()
    assert poky[1] == poky[2] != product["poky_head"]


def test_a_failing_command_names_the_repo_and_stops_unless_keep_going(product, tmp_path):
    fails_in_extra = 'echo "ran in $BUILDCTL_REPO_ID"; test "$BUILDCTL_REPO_ID" != meta-extra'
    args = ["repos", str(product["path"]), "--out", str(tmp_path / "out")]
    proc = run_cli(*args, "--", "sh", "-c", fails_in_extra)
    assert proc.returncode == 1
    assert "failed in 1 of 2 repositories: meta-extra (exit 1); 1 not run" in proc.stderr
    assert "ran in poky" not in proc.stdout
    proc = run_cli(*args, "--keep-going", "--", "sh", "-c", fails_in_extra)
    assert proc.returncode == 1 and "ran in poky" in proc.stdout
    assert "failed in 1 of 2 repositories: meta-extra (exit 1)" in proc.stderr
    proc = run_cli(*args, "--keep-going", "--", "no-such-command-here")
    assert proc.returncode == 1 and "poky (no-such-command-here: command not found)" in proc.stderr


def test_bad_input(product, tmp_path):
    proc = run_cli("repos", str(product["path"]), "--out", str(tmp_path))
    assert proc.returncode == 2 and "no command given" in proc.stderr
    proc = run_cli("repos", str(product["path"]), "--board", "nope", "--", "true")
    assert proc.returncode == 2 and "board 'nope'" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "repos").exists()


def test_a_checkout_path_that_is_a_link_or_a_file_is_left_alone(product, tmp_path):
    """A link at <out>/repos/<id> would have had the pin forced onto what it points to (the
    user's work tree: checkout -f, clean -ffdx)."""
    mine = tmp_path / "mine"
    make_repo(mine, {"VERSION": "the user's work\n"})
    (mine / "untracked.txt").write_text("not committed yet\n")
    out = tmp_path / "out"
    (out / "repos").mkdir(parents=True)
    (out / "repos" / "poky").symlink_to(mine)
    (out / "repos" / "meta-extra").write_text("a file\n")
    proc = run_cli("repos", str(product["path"]), "--out", str(out), "--keep-going", "--",
                   "true")
    assert proc.returncode == 1
    assert "poky: is a symbolic link, not a checkout of buildctl's" in proc.stderr
    assert "meta-extra: is a file, not a checkout of buildctl's" in proc.stderr
    assert (mine / "untracked.txt").read_text() == "not committed yet\n"
    assert (mine / "VERSION").read_text() == "the user's work\n"
    assert git(mine, "log", "--format=%s").strip() == "fixture"
