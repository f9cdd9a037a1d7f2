"""`buildctl clean` and the in-use lock a build holds (builder/inuse.py)."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from buildctl.builder import inuse
from tests.conftest import run_cli
from tests.helpers.products import simple_product


def _board_dir(out, key, tmp_bytes=4096):
    d = out / key
    (d / "work" / "build" / "tmp" / "work" / "zlib").mkdir(parents=True)
    (d / "work" / "build" / "tmp" / "work" / "zlib" / "big.o").write_bytes(b"o" * tmp_bytes)
    (d / "work" / "build" / "tmp.stale-0123").mkdir()
    (d / "work" / "build" / "tmp.stale-0123" / "old").write_bytes(b"s" * 4096)
    (d / "work" / "poky" / ".git").mkdir(parents=True)  # a checkout: kept without --all
    (d / "report.json").write_text("{}")
    return d


@pytest.fixture
def world(tmp_path):
    product = simple_product(tmp_path)
    out = tmp_path / "out"
    return product, out, _board_dir(out, "qemux86-64-release"), _board_dir(out, "qemuarm64-debug")


def test_clean_removes_tmpdirs_and_reports_bytes(world):
    product, out, x86, arm = world
    proc = run_cli("clean", str(product), "--out", str(out), "--board", "qemux86-64",
                   "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["freed_bytes"] >= 8192 and [i["board_dir"] for i in data["items"]] == [str(x86)]
    assert (x86 / "work" / "build" / "tmp").exists()
    proc = run_cli("clean", str(product), "--out", str(out), "--board", "qemux86-64")
    assert proc.returncode == 0, proc.stderr
    assert "freed" in proc.stdout and f"removed {x86}/work/build/tmp\n" in proc.stdout
    assert not (x86 / "work" / "build" / "tmp").exists()
    assert not (x86 / "work" / "build" / "tmp.stale-0123").exists()
    assert (x86 / "work" / "poky" / ".git").is_dir() and (x86 / "report.json").exists()
    assert (arm / "work" / "build" / "tmp").exists()  # another board: untouched


def test_clean_skips_a_board_a_build_is_using(world):
    product, out, x86, arm = world
    holder = inuse.Holder(build_id="buildctl-test-7", pid=os.getpid(), product="demo",
                          boards=["qemuarm64-debug"])
    with inuse.hold([arm], holder):
        proc = run_cli("clean", str(product), "--out", str(out), "--all")
    assert proc.returncode == 1
    assert f"skipped {arm}: in use by build buildctl-test-7" in proc.stdout
    assert (arm / "work" / "build" / "tmp" / "work" / "zlib" / "big.o").exists()
    assert not x86.exists()  # --all: the whole board directory
    assert "1 skipped (in use)" in proc.stdout


def test_clean_bad_input(world):
    product, out, *_ = world
    proc = run_cli("clean", str(product), "--out", str(out), "--board", "nope")
    assert proc.returncode == 2 and "board 'nope'" in proc.stderr
    assert proc.stderr.count("\n") == 1


class _Runtime:
    """A runtime that stops the build at prepare(), after noting what was locked then."""

    name = "host"

    def __init__(self, dirs):
        self.dirs = dirs
        self.seen = None

    def prepare(self):
        self.seen = {d.name: inuse.in_use(d) for d in self.dirs}
        self.holders = [h.build_id for h in inuse.holders(self.dirs[0])]
        raise RuntimeError("stop here")

    def cleanup(self):
        pass


def test_a_build_holds_its_board_dirs_and_caches_and_records_itself(tmp_path):
    from buildctl.builder.caches import CacheSettings
    from buildctl.builder.orchestrate import Build, BuildRequest
    from buildctl.builder.runner import BoardJob

    caches = CacheSettings(sstate_dir=tmp_path / "sstate", dl_dir=tmp_path / "dl",
                           repo_ref_dir=tmp_path / "git")
    out = tmp_path / "out"
    job = BoardJob("qemux86-64", "qemux86-64", "release", tmp_path / "k.yml")
    rt = _Runtime([caches.sstate_dir, caches.dl_dir, out / job.key])
    req = BuildRequest(product="demo", variant="release", jobs=[job], out_dir=out,
                       owner=(os.getuid(), os.getgid()))
    with pytest.raises(RuntimeError):
        Build(req, rt, caches).run()
    assert rt.seen == {"sstate": True, "dl": True, "qemux86-64-release": True}
    assert rt.holders and rt.holders[0].startswith("buildctl-")
    assert not any(inuse.in_use(d) for d in rt.dirs) and not inuse.holders(caches.sstate_dir)
    (entry,) = inuse.builds(caches.sstate_dir)
    assert entry["product"] == "demo" and entry["boards"] == ["qemux86-64-release"]


def test_a_build_refuses_to_start_while_a_prune_holds_the_cache(tmp_path):
    from buildctl.builder.caches import CacheSettings
    from buildctl.builder.orchestrate import Build, BuildRequest
    from buildctl.builder.runner import BoardJob

    caches = CacheSettings(sstate_dir=tmp_path / "sstate", dl_dir=tmp_path / "dl",
                           repo_ref_dir=tmp_path / "git")
    caches.sstate_dir.mkdir()
    job = BoardJob("qemux86-64", "qemux86-64", "release", tmp_path / "k.yml")
    rt = _Runtime([caches.sstate_dir])
    req = BuildRequest(product="demo", variant="release", jobs=[job], out_dir=tmp_path / "out",
                       owner=(os.getuid(), os.getgid()))
    with inuse.exclusive(caches.sstate_dir):
        with pytest.raises(inuse.InUse, match="a clean-up .* is removing files there"):
            Build(req, rt, caches).run()
    assert rt.seen is None  # nothing ran
    assert not inuse.in_use(tmp_path / "out" / job.key) and not inuse.builds(caches.sstate_dir)


def test_clean_removes_a_tmpdir_link_or_file_itself_never_what_it_points_to(world, tmp_path):
    product, out, x86, arm = world
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "precious").mkdir(parents=True)
    (elsewhere / "precious" / "data").write_text("keep me")
    for d in (x86, arm):
        shutil.rmtree(d / "work" / "build" / "tmp")
    (x86 / "work" / "build" / "tmp").symlink_to(elsewhere)
    (arm / "work" / "build" / "tmp").write_text("a file where TMPDIR was")
    proc = run_cli("clean", str(product), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "precious" / "data").read_text() == "keep me"
    for d in (x86, arm):
        assert not os.path.lexists(d / "work" / "build" / "tmp")
        assert not os.path.lexists(d / "work" / "build" / "tmp.cleaning")
