"""Two runners (two processes) share one real bitbake-hashserv started by `buildctl cache hashserv`."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

from tests.cache.conftest import free_port
from tests.cache.helpers import DEMO, METHOD, Server, runner
from tests.conftest import ROOT


def test_second_runner_reuses_the_first_runners_hashes(bitbake_tree, tmp_path):
    db = tmp_path / "hashserv.db"
    srv = Server(bitbake_tree, db)
    try:
        a = "a" * 64
        first = runner(bitbake_tree, srv.address,
                       [["report", "1" * 64, METHOD, "f" * 64, a]])
        assert first == {"report:" + "1" * 64: a}
        # runner 2: another task hash with the same output hash gets runner 1's unihash,
        # and a lookup of runner 1's task finds it
        second = runner(bitbake_tree, srv.address,
                        [["report", "2" * 64, METHOD, "f" * 64, "b" * 64],
                         ["get", "1" * 64, METHOD], ["get", "3" * 64, METHOD]])
        assert second["report:" + "2" * 64] == a
        assert second["get:" + "1" * 64] == a
        assert second["get:" + "3" * 64] is None
    finally:
        code = srv.stop()
    assert code == 130  # interrupted, as every buildctl command
    with sqlite3.connect(db) as con:  # the real server's database shows the equivalence
        rows = dict(con.execute("SELECT taskhash, unihash FROM unihashes_v3").fetchall())
    assert rows["1" * 64] == a and rows["2" * 64] == a


def test_read_only_server_answers_but_stores_nothing(bitbake_tree, tmp_path):
    db = tmp_path / "hashserv.db"
    srv = Server(bitbake_tree, db)
    try:
        runner(bitbake_tree, srv.address, [["report", "1" * 64, METHOD, "f" * 64, "a" * 64]])
    finally:
        srv.stop()
    ro = Server(bitbake_tree, db, "--read-only")
    try:
        assert "read-only" in ro.line
        out = runner(bitbake_tree, ro.address,
                     [["report", "9" * 64, METHOD, "e" * 64, "c" * 64], ["get", "1" * 64, METHOD]])
        assert out["get:" + "1" * 64] == "a" * 64
    finally:
        ro.stop()
    with sqlite3.connect(db) as con:
        hashes = {r[0] for r in con.execute("SELECT taskhash FROM unihashes_v3")}
    assert "9" * 64 not in hashes and "1" * 64 in hashes


def test_listens_on_loopback_only(bitbake_tree, tmp_path):
    srv = Server(bitbake_tree, tmp_path / "hs.db")
    try:
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{srv.port}"], capture_output=True,
                                   text=True).stdout
        if listening.strip():
            assert all("127.0.0.1:" in line for line in listening.strip().splitlines())
    finally:
        srv.stop()


def test_bad_input(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "buildctl", "cache", "hashserv", str(DEMO),
                           "--bitbake", str(tmp_path), "--database", str(tmp_path / "x.db")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "not a bitbake tree" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_runs_the_products_pinned_bitbake(bitbake_tree, tmp_path):
    """Without --bitbake: the commit demo.yml pins, exported from the git mirror."""
    import yaml

    pinned = yaml.safe_load(DEMO.read_text())["repos"]["bitbake"]["refs"]["scarthgap"]["commit"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), BUILDCTL_CACHE_DIR=str(tmp_path / "cache"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "buildctl", "cache", "hashserv", str(DEMO), "--repo-ref-dir",
         str(ROOT.parent / "shared" / "yocto-kit"), "--database", str(tmp_path / "hs.db"),
         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line, line + proc.stderr.read()
        tree = tmp_path / "cache" / "bitbake" / f"bitbake-{pinned}"
        assert (tree / "bin" / "bitbake-hashserv").is_file()
        out = runner(tree, f"127.0.0.1:{port}", [["get", "1" * 64, METHOD]])
        assert out == {"get:" + "1" * 64: None}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
