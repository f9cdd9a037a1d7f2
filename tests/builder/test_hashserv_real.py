"""The build's shared hash-equivalence server is BitBake's own bitbake-hashserv (2.8, from the
kit): buildctl starts it, boards share equivalences through it, its database outlives the build.

Runs the server with the host runtime (the same argv the container runtimes get) and talks to it
with BitBake's client API, as BitBake's runqueue does.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from buildctl.builder.hashserve import SharedHashServer, find_hashserv
from buildctl.builder.runtime.host import HostRuntime
from buildctl.errors import UserError

METHOD = "oe.sstatesig.OEOuthashBasic"


class Client:
    """BitBake's client API, in a process of its own (tests/builder/fixture_files/hashequiv.py)."""

    def __init__(self, bitbake: Path) -> None:
        self.program = bitbake / "lib" / "hashequiv.py"

    def _run(self, *args: str) -> dict:
        out = subprocess.run([sys.executable, str(self.program), *args], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout)

    def report(self, address: str, method: str, tasks: list[tuple[str, str]]) -> dict:
        return self._run("report", address, method, *(f"{t}:{o}" for t, o in tasks))

    def unihash(self, address: str, method: str, taskhashes: list[str]) -> dict:
        return self._run("unihash", address, method, *taskhashes)


def _client(kit_bitbake):
    return Client(kit_bitbake)


def _server(tmp_path, sstate):
    return SharedHashServer(HostRuntime(), sstate, "scarthgap", (os.getuid(), os.getgid()),
                            build_id="t1")


def test_boards_share_equivalences_through_the_real_server(tmp_path, kit_bitbake):
    hashequiv = _client(kit_bitbake)
    work = tmp_path / "work"
    (work / "poky").mkdir(parents=True)
    (work / "poky" / "bitbake").symlink_to(kit_bitbake)
    hashserv = find_hashserv(work)
    assert hashserv == work / "poky/bitbake/bin/bitbake-hashserv"
    sstate = tmp_path / "sstate"
    sstate.mkdir()
    server = _server(tmp_path, sstate)
    server.start(hashserv, work)
    try:
        # board A builds a task; board B's task hash differs (another board) but its output is
        # the same: the server answers with A's unihash, so B reuses A's sstate object
        a = hashequiv.report(server.address, METHOD, [("a1" * 32, "0f" * 32), ("a2" * 32, "1e" * 32)])
        b = hashequiv.report(server.address, METHOD, [("b1" * 32, "0f" * 32), ("b2" * 32, "2d" * 32)])
        assert a == {"a1" * 32: "a1" * 32, "a2" * 32: "a2" * 32}
        assert b["b1" * 32] == "a1" * 32  # equivalent output: shared
        assert b["b2" * 32] == "b2" * 32  # different output: its own
    finally:
        server.stop()
    assert not server.sock.exists() and not server.sock_dir.exists()
    db = sstate / "hashserv-scarthgap.db"
    con = sqlite3.connect(db)
    rows = dict(con.execute("SELECT taskhash, unihash FROM unihashes_v3 WHERE method = ?", (METHOD,)))
    outs = {r[0] for r in con.execute("SELECT taskhash FROM outhashes_v2")}
    con.close()
    assert rows["b1" * 32] == "a1" * 32 and len(outs) == 4

    # the next build starts a new server on the same database: the equivalence is still known
    again = _server(tmp_path, sstate)
    again.start(hashserv, work)
    try:
        assert hashequiv.unihash(again.address, METHOD, ["b1" * 32, "c1" * 32]) == \
            {"b1" * 32: "a1" * 32, "c1" * 32: None}
    finally:
        again.stop()


def test_a_server_that_cannot_start_is_reported(tmp_path, kit_bitbake):
    sstate = tmp_path / "sstate"
    sstate.mkdir()
    (sstate / "hashserv-scarthgap.db").mkdir()  # sqlite cannot open a directory
    server = _server(tmp_path, sstate)
    with pytest.raises(UserError, match="hash-equivalence server did not start"):
        server.start(kit_bitbake / "bin" / "bitbake-hashserv", tmp_path, timeout=20)
    assert not server.sock_dir.exists()
