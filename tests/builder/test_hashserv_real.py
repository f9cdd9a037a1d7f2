"""The build's shared hash-equivalence server is BitBake's own bitbake-hashserv (2.8, from the
kit): buildctl starts it, boards share equivalences through it, its database outlives the build.

Runs the server with the host runtime (the same argv the container runtimes get) and talks to it
with BitBake's client API, as BitBake's runqueue does.
"""
from __future__ import annotations

import os
import sqlite3
import sys

import pytest

from buildctl.builder.hashserve import SharedHashServer, find_hashserv
from buildctl.builder.runtime.host import HostRuntime
from buildctl.errors import UserError

METHOD = "oe.sstatesig.OEOuthashBasic"


def _client(kit_bitbake):
    sys.path.insert(0, str(kit_bitbake / "lib"))
    import hashequiv

    return hashequiv


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
