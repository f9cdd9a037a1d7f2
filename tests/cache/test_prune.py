"""`buildctl cache prune`: objects no build used within the window go, as a unit."""
from __future__ import annotations

import json
import os
import time

from tests.conftest import run_cli

DAY = 86400


def obj(root, h, age_days, *, used_days=None):
    """An sstate archive + .siginfo aged `age_days`; `used_days`: a build used it then
    (BitBake updates the .siginfo's time when it uses an object)."""
    d = root / h[:2] / h[2:4]
    d.mkdir(parents=True, exist_ok=True)
    name = f"sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:11:{h}_package.tar.zst"
    files = [d / name, d / (name + ".siginfo")]
    t = time.time() - age_days * DAY
    for f in files:
        f.write_bytes(b"x" * 10)
        os.utime(f, (t, t))
    if used_days is not None:
        u = time.time() - used_days * DAY
        os.utime(files[1], (u, u))
    return files


def test_prune_removes_unused_objects_whole_and_keeps_used_ones(tmp_path):
    root = tmp_path / "sstate"
    old = obj(root, "a" * 64, 40)
    used = obj(root, "b" * 64, 40, used_days=2)  # built long ago, used by a recent build
    new = obj(root, "c" * 64, 1)
    (root / "hashserv-scarthgap.db").write_text("db")
    os.utime(root / "hashserv-scarthgap.db", (0, 0))
    lock = root / "aa" / "sstate:x.tar.zst.lock"
    lock.write_text("")
    os.utime(lock, (0, 0))
    proc = run_cli("cache", "prune", str(root), "--older-than", "30", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["removed"] == 1 and all(f.exists() for f in old)
    proc = run_cli("cache", "prune", str(root), "--older-than", "30", "--json")
    data = json.loads(proc.stdout)
    assert (data["objects"], data["removed"], data["kept"], data["removed_bytes"]) == (3, 1, 2, 20)
    assert not any(f.exists() for f in old)
    assert all(f.exists() for f in used + new)
    assert (root / "hashserv-scarthgap.db").exists() and lock.exists()


def test_prune_bad_input(tmp_path):
    proc = run_cli("cache", "prune", str(tmp_path / "none"), "--older-than", "3")
    assert proc.returncode == 2 and "no such directory" in proc.stderr
    proc = run_cli("cache", "prune", str(tmp_path), "--older-than", "0")
    assert proc.returncode == 2 and "--older-than" in proc.stderr
    for days in ("nan", "inf", "-1"):  # nan passed the "> 0" check and kept nothing safe
        proc = run_cli("cache", "prune", str(tmp_path), "--older-than", days)
        assert proc.returncode == 2 and f"--older-than: {days} is not a number of days" in \
            proc.stderr
        assert not any(tmp_path.iterdir())  # refused before the cache is locked


# -- --keep-builds, downloads, and a running build -------------------------------------------
def _ledger(root, *ages_days):
    """Builds that used the cache, as the builder records them (started N days ago)."""
    import datetime as dt

    from buildctl.builder import inuse

    root.mkdir(parents=True, exist_ok=True)
    for i, age in enumerate(ages_days):
        t = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=age)
        inuse.record(root, {"build_id": f"b{i}", "started": t.isoformat(timespec="seconds"),
                            "product": "demo", "boards": ["qemux86-64-release"]})


def test_keep_builds_keeps_what_the_last_builds_used(tmp_path):
    root = tmp_path / "sstate"
    _ledger(root, 30, 10, 2)
    o40, o20 = obj(root, "a" * 64, 40), obj(root, "b" * 64, 20)
    o5 = obj(root, "c" * 64, 60, used_days=5)  # made long ago, used by the build of 2 days ago
    proc = run_cli("cache", "prune", str(root), "--keep-builds", "2", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["removed"] == 2 and all(f.exists() for f in o40 + o20)
    # with --older-than too, an object either rule keeps stays: only the 40-day one goes
    proc = run_cli("cache", "prune", str(root), "--keep-builds", "2", "--older-than", "30")
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 (20 bytes), kept 2" in proc.stdout and "last 2 build(s)" in proc.stdout
    assert not any(f.exists() for f in o40) and all(f.exists() for f in o20 + o5)
    proc = run_cli("cache", "prune", str(root), "--keep-builds", "2", "--json")
    assert json.loads(proc.stdout)["removed"] == 1 and not any(f.exists() for f in o20)
    assert all(f.exists() for f in o5)
    # a ledger with fewer builds than asked for keeps everything (and says why)
    proc = run_cli("cache", "prune", str(root), "--keep-builds", "5")
    assert proc.returncode == 0 and "fewer than --keep-builds 5" in proc.stdout
    assert all(f.exists() for f in o5)


def test_keep_builds_skips_ledger_lines_it_cannot_read(tmp_path):
    """A ledger line nested too deeply for json, or whose time is not a time, crashed prune."""
    root = tmp_path / "sstate"
    _ledger(root, 30, 2)
    from buildctl.builder import inuse
    with open(root / inuse.LEDGER, "a") as fh:
        fh.write('{"started": "yesterday", "build_id": "x"}\n' + "[" * 100000 + "]" * 100000
                 + "\n")
    o40 = obj(root, "a" * 64, 40)
    proc = run_cli("cache", "prune", str(root), "--keep-builds", "1", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["removed"] == 1 and all(f.exists() for f in o40)
    assert "build b1" in json.loads(proc.stdout)["notes"][0]


def test_downloads_go_with_their_done_stamp_and_unfinished_ones_stay(tmp_path):
    dl = tmp_path / "downloads"
    old = time.time() - 40 * DAY

    def item(rel, body=b"y" * 100, done_age=None):
        p = dl / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if body is None:
            (p / "objects").mkdir(parents=True)
            (p / "objects" / "pack").write_bytes(b"z" * 300)
        else:
            p.write_bytes(body)
        os.utime(p, (old, old))
        if done_age is not None:
            d = p.with_name(p.name + ".done")
            d.write_bytes(b"")
            t = time.time() - done_age * DAY
            os.utime(d, (t, t))
        return p

    tarball = item("zlib-1.3.tar.xz", done_age=40)
    clone = item("git2/github.com.foo.bar.git", body=None, done_age=35)
    fresh = item("busybox-1.36.tar.bz2", done_age=1)  # fetched long ago, found by a recent fetch
    partial = item("openssl-3.2.tar.gz")  # no .done: a fetch in progress, never touched
    proc = run_cli("cache", "prune", "--downloads", str(dl), "--older-than", "30", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["kind"], data["objects"], data["removed"], data["kept"]) == ("downloads", 3, 2, 1)
    assert data["removed_bytes"] == 100 + 300
    assert not tarball.exists() and not clone.exists()
    assert not (dl / "git2" / "github.com.foo.bar.git.done").exists()
    assert fresh.exists() and partial.exists()


def test_prune_refuses_while_a_build_uses_the_cache(tmp_path):
    from buildctl.builder import inuse

    root = tmp_path / "sstate"
    files = obj(root, "a" * 64, 40)
    holder = inuse.Holder(build_id="buildctl-test-1", pid=os.getpid(), product="demo",
                          boards=["qemux86-64-release"], started="2026-11-30T10:00:00+00:00")
    with inuse.hold([root], holder):
        proc = run_cli("cache", "prune", str(root), "--older-than", "30")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "in use by build buildctl-test-1" in proc.stderr
    assert "prune refused" in proc.stderr and all(f.exists() for f in files)
    # the build has ended (lock released, marker gone): the same command prunes
    proc = run_cli("cache", "prune", str(root), "--older-than", "30")
    assert proc.returncode == 0 and not any(f.exists() for f in files)


def test_prune_paths_from_the_product_and_bad_input(tmp_path):
    from tests.helpers.products import simple_product

    import yaml

    product = simple_product(tmp_path)
    data = yaml.safe_load(product.read_text())
    data["cache"] = {"sstate_dir": str(tmp_path / "c" / "sstate"),
                     "dl_dir": str(tmp_path / "c" / "dl")}
    product.write_text(yaml.safe_dump(data))
    files = obj(tmp_path / "c" / "sstate", "a" * 64, 40)
    (tmp_path / "c" / "dl").mkdir()
    proc = run_cli("cache", "prune", "--product", str(product), "--older-than", "30", "--json")
    assert proc.returncode == 0, proc.stderr
    kinds = {t["kind"]: t["removed"] for t in json.loads(proc.stdout)["targets"]}
    assert kinds == {"sstate": 1, "downloads": 0} and not files[0].exists()
    for argv, word in ((["--older-than", "3"], "SSTATE_DIR"),
                       ([str(tmp_path), "--keep-builds", "0"], "--keep-builds"),
                       ([str(tmp_path)], "--older-than DAYS and/or --keep-builds")):
        proc = run_cli("cache", "prune", *argv)
        assert proc.returncode == 2 and word in proc.stderr and proc.stderr.count("\n") == 1
