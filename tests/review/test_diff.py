"""`buildctl diff A B`: per board, repositories moved (with the upstream commit subjects from
git), BitBake variables changed, boards added or removed; products, locks, git revisions."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.conftest import ROOT, run_cli
from tests.helpers import skips
from tests.helpers.fixture_layers import git
from tests.helpers.products import commit_more, layer_conf, make_repo, simple_product

DEMO = ROOT / "products" / "demo.yml"


def _lines(repo, rng):
    return git(repo, "log", "--format=%s", rng).splitlines()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Product A and product B over the same fixture repositories: B moves poky forward,
    pins meta-x to an unrelated history, swaps a board and changes fields."""
    root = tmp_path_factory.mktemp("diff")
    a = simple_product(root, boards=("qemux86-64", "qemuarm64", "genericx86-64"))
    poky = root / "repos" / "poky"
    old = git(poky, "rev-parse", "HEAD").strip()
    commit_more(poky, {"meta/recipes-core/zlib/zlib_1.3.bb": "#\n"}, "zlib: add 1.3")
    commit_more(poky, {"meta/recipes-core/zlib/zlib_1.3.bb": "# fixed\n"}, "zlib: fix CVE-2026-0001")
    new = git(poky, "rev-parse", "HEAD").strip()
    mx = root / "repos" / "meta-x"
    x_old = make_repo(mx, {"conf/layer.conf": layer_conf("x")})
    git(mx, "checkout", "-q", "--orphan", "rewritten")
    x_new = commit_more(mx, {"conf/layer.conf": layer_conf("x"), "README": "rewritten\n"},
                        "history rewritten")
    data = yaml.safe_load(a.read_text())
    data["boards"] = ["qemux86-64", "qemuarm64"]
    data["repos"]["meta-x"] = {"url": mx.as_uri(), "layers": ["."],
                               "refs": {"scarthgap": {"branch": "scarthgap", "commit": x_old}}}
    a.write_text(yaml.safe_dump(data, sort_keys=False))
    b_data = yaml.safe_load(a.read_text())
    b_data["boards"] = ["qemux86-64", "genericx86-64"]
    b_data["repos"]["poky"]["refs"]["scarthgap"]["commit"] = new
    b_data["repos"]["meta-x"]["refs"]["scarthgap"] = {"branch": "rewritten", "commit": x_new}
    b_data["packages"] = ["hello"]
    b_data["release"]["version"] = "1.1"
    b = a.with_name("demo-next.yml")
    b.write_text(yaml.safe_dump(b_data, sort_keys=False))
    return {"root": root, "a": a, "b": b, "poky": poky, "old": old, "new": new,
            "x_old": x_old, "x_new": x_new}


def test_two_products_json(world):
    proc = run_cli("diff", str(world["a"]), str(world["b"]), "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["mode"] == "products" and d["changed"] is True
    assert d["boards_added"] == ["genericx86-64"] and d["boards_removed"] == ["qemuarm64"]
    assert set(d["boards"]) == {"qemux86-64", "qemuarm64", "genericx86-64"}
    x86 = d["boards"]["qemux86-64"]
    assert x86["status"] == "changed"
    moved = {m["id"]: m for m in x86["repos"]["moved"]}
    poky = moved["poky"]
    assert (poky["old"], poky["new"], poky["relation"], poky["count"]) == \
        (world["old"], world["new"], "forward", 2)
    assert poky["subjects"] == ["zlib: fix CVE-2026-0001", "zlib: add 1.3"]
    assert poky["subjects"] == _lines(world["poky"], f"{world['old']}..{world['new']}")
    assert moved["meta-x"]["relation"] == "unrelated" and "unrelated history" in moved["meta-x"]["note"]
    vars_ = {v["var"]: (v["old"], v["new"]) for v in x86["variables"]}
    assert vars_["MENDER_ARTIFACT_NAME"] == ("demo-1.0-qemux86-64", "demo-1.1-qemux86-64")
    assert vars_["IMAGE_INSTALL:append"] == (None, "hello")
    assert "MACHINE" not in vars_  # unchanged variables are not listed
    assert d["boards"]["qemuarm64"] == {"board": "qemuarm64", "status": "removed",
                                        "repos": {"moved": [], "added": {}, "removed": {}},
                                        "variables": []}


def test_text_and_markdown_name_the_moves(world):
    proc = run_cli("diff", str(world["a"]), str(world["b"]), "--board", "qemux86-64")
    assert proc.returncode == 0, proc.stderr
    assert f"poky {world['old'][:12]} -> {world['new'][:12]} (qemux86-64): 2 commits" in proc.stdout
    assert "  + zlib: fix CVE-2026-0001\n" in proc.stdout
    assert "meta-x" in proc.stdout and "unrelated history" in proc.stdout
    assert 'IMAGE_INSTALL:append: (unset) -> "hello"' in proc.stdout
    assert "board added" not in proc.stdout  # --board: only that board
    md = run_cli("diff", str(world["a"]), str(world["b"]), "--markdown").stdout
    assert md.startswith("## Changes from ")
    assert "- Added: **genericx86-64**" in md and "- Removed: **qemuarm64**" in md
    assert f"#### poky: `{world['old'][:12]}` → `{world['new'][:12]}` (qemux86-64)" in md
    assert "- zlib: fix CVE-2026-0001" in md
    assert "| qemux86-64 | `IMAGE_INSTALL:append` | *unset* | `hello` |" in md
    same = run_cli("diff", str(world["a"]), str(world["a"]))
    assert same.returncode == 0 and "no board, repository or BitBake variable changed" in same.stdout


def test_git_revisions_of_the_manifests(world, tmp_path):
    proj = tmp_path / "proj"
    shutil.copytree(world["root"] / "products", proj / "products")
    shutil.copytree(world["root"] / "machines", proj / "machines")
    (proj / "products" / "demo-next.yml").unlink()
    git(proj, "init", "-q", "-b", "main")
    git(proj, "add", ".")
    git(proj, "commit", "-q", "-m", "first")
    product = proj / "products" / "demo.yml"
    data = yaml.safe_load(product.read_text())
    data["repos"]["poky"]["refs"]["scarthgap"]["commit"] = world["new"]
    data["variants"]["release"] = {"local_conf": {"INIT_MANAGER": "systemd"}}
    product.write_text(yaml.safe_dump(data, sort_keys=False))
    git(proj, "commit", "-q", "-am", "bump poky, systemd")
    proc = run_cli("diff", "HEAD~1", "HEAD", "--product", "products/demo.yml", "--json", cwd=proj)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["mode"] == "revisions" and d["a"].startswith("HEAD~1 (")
    own = d["product_commits"]  # the manifests' own history, for the release note
    assert (own["relation"], own["subjects"]) == ("forward", ["bump poky, systemd"])
    for board in ("qemux86-64", "qemuarm64"):
        b = d["boards"][board]
        assert [(m["id"], m["subjects"]) for m in b["repos"]["moved"]] == \
            [("poky", ["zlib: fix CVE-2026-0001", "zlib: add 1.3"])]
        assert b["variables"] == [{"var": "INIT_MANAGER", "old": None, "new": "systemd"}]
    # the work tree is not what is compared: an uncommitted edit changes nothing
    product.write_text(product.read_text().replace("systemd", "sysvinit"))
    d2 = json.loads(run_cli("diff", "HEAD~1", "HEAD", "--product", "products/demo.yml", "--json",
                            cwd=proj).stdout)
    assert d2["boards"]["qemux86-64"]["variables"][0]["new"] == "systemd"
    bad = run_cli("diff", "HEAD~5", "HEAD", "--product", "products/demo.yml", cwd=proj)
    assert bad.returncode == 2 and "HEAD~5 is not a revision of" in bad.stderr
    assert bad.stderr.count("\n") == 1


def test_two_locks_of_the_shipped_product_with_real_commit_subjects(tmp_path):
    """Real pins from the kit: bitbake moved forward three commits, meta-mender backwards."""
    kit = skips.KIT
    skips.require(kit.is_dir(), "../shared/yocto-kit not present")
    bb, mm = kit / "git.openembedded.org.bitbake", kit / "github.com.mendersoftware.meta-mender.git"
    lock = (ROOT / "products" / "demo.lock.yml").read_text()
    pin_bb, pin_mm = git(bb, "rev-parse", "2.8").strip(), git(mm, "rev-parse", "scarthgap").strip()
    old_bb, old_mm = git(bb, "rev-parse", "2.8~3").strip(), git(mm, "rev-parse", "scarthgap~2").strip()
    assert pin_bb in lock and pin_mm in lock
    a, b = tmp_path / "a.lock.yml", tmp_path / "b.lock.yml"
    a.write_text(lock.replace(pin_bb, old_bb))
    b.write_text(lock.replace(pin_mm, old_mm))
    proc = run_cli("diff", str(a), str(b), "--product", str(DEMO), "--board", "qemux86-64",
                   "--repo-ref-dir", str(kit), "--offline", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["mode"] == "locks" and list(d["boards"]) == ["qemux86-64"]
    moved = {m["id"]: m for m in d["boards"]["qemux86-64"]["repos"]["moved"]}
    assert set(moved) == {"bitbake", "meta-mender"}
    assert moved["bitbake"]["relation"] == "forward" and moved["bitbake"]["count"] == 3
    assert moved["bitbake"]["subjects"] == _lines(bb, f"{old_bb}..{pin_bb}")
    assert len(moved["bitbake"]["subjects"]) == 3 and all(moved["bitbake"]["subjects"])
    back = moved["meta-mender"]
    assert back["relation"] == "backward" and "moved backwards" in back["note"]
    assert back["dropped_subjects"] == _lines(mm, f"{old_mm}..{pin_mm}")
    assert d["boards"]["qemux86-64"]["variables"] == []  # same product on both sides
    # without a product: the locks alone, every repository of them as one "board"
    proc = run_cli("diff", str(a), str(b), "--repo-ref-dir", str(kit), "--offline", "--json")
    d = json.loads(proc.stdout)
    assert list(d["boards"]) == ["*"] and d["boards"]["*"]["variables"] == []
    assert {m["id"]: m["relation"] for m in d["boards"]["*"]["repos"]["moved"]} == \
        {"bitbake": "forward", "meta-mender": "backward"}


def test_bad_input(world, tmp_path):
    lock = tmp_path / "x.lock.yml"
    lock.write_text(yaml.safe_dump({"header": {"version": 23}, "overrides": {"repos": {}}}))
    cases = [
        ((str(world["a"]), str(lock)), "is a product and"),
        ((str(world["a"]), str(tmp_path / "nope.yml")), "no such file"),
        ((str(world["a"]), str(world["b"]), "--board", "nope"), "'nope' is a board of neither"),
        ((str(world["a"]), str(world["b"]), "--variant", "nope"), "--variant: 'nope'"),
    ]
    for argv, word in cases:
        proc = run_cli("diff", *argv)
        assert proc.returncode == 2 and word in proc.stderr, (argv, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
