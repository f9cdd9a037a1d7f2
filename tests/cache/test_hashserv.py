"""Two runners (two processes) share one real bitbake-hashserv started by `buildctl cache hashserv`."""
from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

KIT_BITBAKE = ROOT.parent / "shared" / "yocto-kit" / "git.openembedded.org.bitbake"
DEMO = ROOT / "products" / "demo.yml"
METHOD = "oe.sstatesig.OEOuthashBasic"

# what one runner does: report (or look up) hashes through BitBake's own client API
RUNNER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import hashserv
client = hashserv.create_client(sys.argv[2])
out = {}
for op in json.loads(sys.argv[3]):
    if op[0] == "report":
        try:
            r = client.report_unihash(op[1], op[2], op[3], op[4])
            out["report:" + op[1]] = r.get("unihash") if r else None
        except Exception as exc:
            out["report:" + op[1]] = "error: " + exc.__class__.__name__
    else:
        out["get:" + op[1]] = client.get_unihash(op[2], op[1])
client.close()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def bitbake_tree(tmp_path_factory) -> Path:
    """BitBake 2.8 from the kit, exported with git archive (never copied into the repo)."""
    if not (KIT_BITBAKE / "objects").is_dir() and not (KIT_BITBAKE / ".git").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the yocto kit's bitbake is required in CI ({KIT_BITBAKE})")
        pytest.skip(f"no bitbake in the kit ({KIT_BITBAKE})")
    dest = tmp_path_factory.mktemp("bitbake-2.8")
    tar = subprocess.run(["git", "-C", str(KIT_BITBAKE), "archive", "2.8"], capture_output=True,
                         check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(dest, filter="data")
    return dest


def free_port() -> int:
    from buildctl.cache.hashserv import free_port as fp
    return fp()


class Server:
    def __init__(self, bitbake: Path, db: Path, *extra: str):
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "buildctl", "cache", "hashserv", str(DEMO), "--bitbake",
             str(bitbake), "--database", str(db), "--port", str(self.port), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        assert "bitbake-hashserv on 127.0.0.1" in line, line + self.proc.stderr.read()
        self.line = line
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def runner(bitbake: Path, address: str, ops: list) -> dict:
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(bitbake / "lib"), address,
                           json.dumps(ops)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


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
