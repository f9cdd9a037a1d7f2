"""A mirror remembers the hash server that filled it; `cache push` refuses another one."""
from __future__ import annotations

import json

from tests.cache.test_push import make_sstate
from tests.conftest import run_cli


def _push(sstate, url, *extra, env=None):
    return run_cli("cache", "push", str(sstate), url, *extra, env=env)


def test_mirror_filled_under_another_hash_server_is_refused(webdav, tmp_path):
    url, dav_root = webdav
    sstate = tmp_path / "sstate"
    make_sstate(sstate, 3)
    first = _push(sstate, url, "--json", "--hashserv", "ws://10.0.0.5:8686",
                  "--hashserv-db", "postgresql+asyncpg://hs:secret@db.example/hashserv")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["hashserv"] == "recorded"
    marker = json.loads((dav_root / "sstate" / ".buildctl" / "hashserv.json").read_text())
    assert marker["hashserv"] == "10.0.0.5:8686"
    assert marker["database"] == "postgresql+asyncpg://hs@db.example/hashserv"  # no password
    # the same server, spelt as BB_HASHSERVE in the environment: accepted
    same = _push(sstate, url, "--json", env={"BB_HASHSERVE": "10.0.0.5:8686"})
    assert same.returncode == 0 and json.loads(same.stdout)["hashserv"] == "matches"
    # another server: one line, nothing sent, the marker unchanged
    make_sstate(sstate, 2, start=3)
    other = _push(sstate, url, "--hashserv", "127.0.0.1:9999")
    assert other.returncode == 2 and other.stderr.count("\n") == 1, other.stderr
    assert "filled under hash server 10.0.0.5:8686" in other.stderr
    assert "this push uses 127.0.0.1:9999" in other.stderr and "--force" in other.stderr
    assert not (dav_root / "sstate" / next(iter(make_sstate(tmp_path / "x", 1, start=3)))).exists()
    # the same address on another database is another server too
    db = _push(sstate, url, "--hashserv", "10.0.0.5:8686", "--hashserv-db",
               "postgresql+asyncpg://hs@db2.example/hashserv")
    assert db.returncode == 2 and "database postgresql+asyncpg://hs@db.example" in db.stderr
    # forced: pushed, and the new server recorded
    forced = _push(sstate, url, "--json", "--hashserv", "127.0.0.1:9999", "--force")
    assert forced.returncode == 0 and json.loads(forced.stdout)["hashserv"] == "forced"
    assert json.loads(forced.stdout)["sent"] == 4
    assert json.loads((dav_root / "sstate/.buildctl/hashserv.json").read_text())["hashserv"] == \
        "127.0.0.1:9999"
    assert _push(sstate, url, "--hashserv", "ws://10.0.0.5:8686").returncode == 2


def test_dry_run_checks_but_records_nothing(webdav, tmp_path):
    url, dav_root = webdav
    sstate = tmp_path / "sstate"
    make_sstate(sstate, 1)
    r = _push(sstate, url, "--json", "--dry-run", "--hashserv", "127.0.0.1:8686")
    assert r.returncode == 0 and json.loads(r.stdout)["hashserv"] == "would record"
    assert not (dav_root / "sstate" / ".buildctl").exists()


def test_unreadable_marker_is_named(webdav, tmp_path):
    url, dav_root = webdav
    (dav_root / "sstate" / ".buildctl").mkdir(parents=True)
    (dav_root / "sstate" / ".buildctl" / "hashserv.json").write_text("not json")
    sstate = tmp_path / "sstate"
    make_sstate(sstate, 1)
    r = _push(sstate, url, "--hashserv", "127.0.0.1:8686")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert ".buildctl/hashserv.json: not a buildctl hash-server marker" in r.stderr


def test_build_refuses_a_mirror_filled_under_another_server(webdav, tmp_path):
    """What `buildctl build` checks before it starts (builder/api.py): the product's
    cache.hashserve (or, with auto, its upstream) against each http(s) mirror's marker."""
    import pytest

    from buildctl.cache.marker import check_build_mirrors
    from buildctl.errors import UserError

    url, _ = webdav
    sstate = tmp_path / "sstate"
    make_sstate(sstate, 1)
    assert _push(sstate, url, "--hashserv", "ws://10.0.0.5:8686").returncode == 0
    entries = ("file://.* file:///srv/local/PATH", f"file://.* {url}/PATH;downloadfilename=PATH")
    assert check_build_mirrors(entries, "10.0.0.5:8686", None) == [url]
    assert check_build_mirrors(entries, "auto", "ws://10.0.0.5:8686") == [url]
    with pytest.raises(UserError, match=r"was filled under hash server 10\.0\.0\.5:8686, this "
                                        r"build uses hash server 127\.0\.0\.1:1 .*--force-mirror"):
        check_build_mirrors(entries, "127.0.0.1:1", None)
    with pytest.raises(UserError, match="this build uses no hash server"):
        check_build_mirrors(entries, "none", None)
    assert check_build_mirrors(entries, "none", None, force=True) == []
    # a mirror that cannot be asked now is BitBake's business (it reads mirrors softly)
    assert check_build_mirrors(("http://127.0.0.1:9/sstate",), "127.0.0.1:1", None) == []
