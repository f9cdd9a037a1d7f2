"""Two runners share a mirror and a hash server: the second reuses the first's object.

Runner 1 (its own process and sstate directory) builds a task: it reports the task's output
hash to the shared bitbake-hashserv and pushes its sstate object, named by the unihash as
BitBake names it, to the WebDAV mirror with `buildctl cache push`. Runner 2 (another process,
another directory, a different task hash with the same output) asks the server, is given
runner 1's unihash, and finds that object on the mirror: it need not build. The server's
SQLite database shows both task hashes mapped to the one unihash.
"""
from __future__ import annotations

import json
import sqlite3
import urllib.request

from tests.cache.helpers import METHOD, Server, runner
from tests.conftest import run_cli


def sstate_name(unihash: str) -> str:
    return f"{unihash[:2]}/{unihash[2:4]}/sstate:zlib:core2-64-poky-linux:1.3.1:r0:core2-64:11:" \
           f"{unihash}_package.tar.zst"


def test_second_runner_reuses_first_runners_object(bitbake_tree, webdav, tmp_path):
    url, dav_root = webdav
    db = tmp_path / "hashserv.db"
    srv = Server(bitbake_tree, db)
    task1, task2, outhash = "1" * 64, "2" * 64, "f" * 64
    try:
        # runner 1: builds, reports, writes its object under the unihash, pushes
        uni1 = runner(bitbake_tree, srv.address,
                      [["report", task1, METHOD, outhash, "a" * 64]])["report:" + task1]
        sstate1 = tmp_path / "runner1" / "sstate"
        obj = sstate1 / sstate_name(uni1)
        obj.parent.mkdir(parents=True)
        obj.write_bytes(b"package payload")
        proc = run_cli("cache", "push", str(sstate1), url, "--json")
        assert proc.returncode == 0 and json.loads(proc.stdout)["sent"] == 1, proc.stderr
        # runner 2: another task hash, the same output: the server answers runner 1's unihash
        uni2 = runner(bitbake_tree, srv.address,
                      [["report", task2, METHOD, outhash, "b" * 64]])["report:" + task2]
        assert uni2 == uni1
        with urllib.request.urlopen(f"{url}/{sstate_name(uni2)}") as resp:
            assert resp.read() == b"package payload"
        # runner 2 has nothing new to push
        sstate2 = tmp_path / "runner2" / "sstate"
        (sstate2 / sstate_name(uni2)).parent.mkdir(parents=True)
        (sstate2 / sstate_name(uni2)).write_bytes(b"package payload")
        proc = run_cli("cache", "push", str(sstate2), url, "--json")
        assert json.loads(proc.stdout)["present"] == 1 and json.loads(proc.stdout)["sent"] == 0
    finally:
        srv.stop()
    with sqlite3.connect(db) as con:
        rows = dict(con.execute("SELECT taskhash, unihash FROM unihashes_v3").fetchall())
    assert rows == {task1: uni1, task2: uni1}
