"""`buildctl cache hashserv` on PostgreSQL (BitBake's SQLAlchemy backend, asyncpg driver): the
database many hosts share. Debian's PostgreSQL server runs as a throw-away cluster (conftest's
`postgres`); two runner processes share one real bitbake-hashserv on it."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.cache.helpers import DEMO, METHOD, Server, runner
from tests.conftest import ROOT


def test_two_runners_share_a_postgresql_hash_server(bitbake_tree, postgres):
    url, psql = postgres()
    # trust auth ignores the password; it is there to show it never reaches the output
    srv = Server(bitbake_tree, url.replace("//buildctl@", "//buildctl:s3cret@"))
    try:
        assert "s3cret" not in srv.line and "postgresql+asyncpg://buildctl:***@" in srv.line
        a = "a" * 64
        first = runner(bitbake_tree, srv.address, [["report", "1" * 64, METHOD, "f" * 64, a]])
        assert first == {"report:" + "1" * 64: a}
        second = runner(bitbake_tree, srv.address,
                        [["report", "2" * 64, METHOD, "f" * 64, "b" * 64],
                         ["get", "1" * 64, METHOD], ["get", "3" * 64, METHOD]])
        assert second["report:" + "2" * 64] == a  # runner 2 gets runner 1's unihash
        assert second["get:" + "1" * 64] == a
        assert second["get:" + "3" * 64] is None
    finally:
        assert srv.stop() == 130
    # the equivalence is in PostgreSQL, not in a file beside the server
    rows = dict(psql("SELECT taskhash, unihash FROM unihashes_v3"))
    assert rows == {"1" * 64: a, "2" * 64: a}
    outs = psql("SELECT taskhash, outhash FROM outhashes_v2 ORDER BY taskhash")
    assert outs == [["1" * 64, "f" * 64], ["2" * 64, "f" * 64]]
    # a server started later on the same database answers from it (restart, another host)
    again = Server(bitbake_tree, url, "--read-only")
    try:
        out = runner(bitbake_tree, again.address,
                     [["get", "2" * 64, METHOD], ["report", "9" * 64, METHOD, "e" * 64, "c" * 64]])
        assert out["get:" + "2" * 64] == a
    finally:
        again.stop()
    assert "9" * 64 not in {r[0] for r in psql("SELECT taskhash FROM unihashes_v3")}


def _hashserv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "buildctl", "cache", "hashserv", str(DEMO),
                           "--bitbake", str(ROOT), *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)


def test_database_url_without_a_usable_driver_is_one_line():
    r = _hashserv("--database", "postgresql://u@127.0.0.1/db")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "postgresql:// is not a driver" in r.stderr and "postgresql+asyncpg" in r.stderr
    r = _hashserv("--database", "mysql+aiomysql://u@127.0.0.1/db")  # not installed here
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "needs the Python package(s) aiomysql" in r.stderr
