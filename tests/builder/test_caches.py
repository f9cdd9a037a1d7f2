"""Cache settings: one source of truth, hash-equivalence pairing, and the pre-flight check."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from buildctl.builder.caches import (CacheSettings, preflight, preflight_all,
                                   settings_from_manifest)
from buildctl.errors import UserError
from tests.helpers import skips


def cache(**kw):
    base = dict(sstate_dir=None, dl_dir=None, sstate_mirrors=[], hashserve="auto",
                hashserve_upstream=None, hermetic=False)
    base.update(kw)
    return SimpleNamespace(**base)


def test_paths_resolve_relative_to_the_manifest_and_default_per_host(tmp_path, monkeypatch):
    s = settings_from_manifest(cache(sstate_dir="cache/sstate", dl_dir="/srv/dl"), base=tmp_path)
    assert s.sstate_dir == tmp_path / "cache/sstate" and s.dl_dir == Path("/srv/dl")
    d = settings_from_manifest(None, base=tmp_path, root=tmp_path / "host")
    assert d.sstate_dir == tmp_path / "host/sstate" and d.dl_dir == tmp_path / "host/downloads"
    assert d.repo_ref_dir == tmp_path / "host/git-mirrors"


def test_bitbake_env_carries_caches_and_hash_equivalence(tmp_path):
    s = settings_from_manifest(cache(sstate_dir=str(tmp_path / "s"), dl_dir=str(tmp_path / "d"),
                                     sstate_mirrors=["https://sstate.example.com/scarthgap"],
                                     hashserve_upstream="wss://hashserv.example.com/ws"))
    env = s.bitbake_env()
    assert env["SSTATE_DIR"] == str(tmp_path / "s") and env["DL_DIR"] == str(tmp_path / "d")
    assert env["BB_HASHSERVE"] == "auto" and env["BB_HASHSERVE_DB_DIR"] == env["SSTATE_DIR"]
    assert env["BB_HASHSERVE_UPSTREAM"] == "wss://hashserv.example.com/ws"
    assert env["SSTATE_MIRRORS"] == ("file://.* https://sstate.example.com/scarthgap/PATH"
                                     ";downloadfilename=PATH")
    direct = settings_from_manifest(cache(hashserve="ws://10.0.0.5:8686",
                                          sstate_mirrors=["file://.* file:///srv/s/PATH"]))
    assert direct.bitbake_env()["BB_HASHSERVE"] == "ws://10.0.0.5:8686"
    assert "BB_HASHSERVE_DB_DIR" not in direct.bitbake_env()
    assert settings_from_manifest(cache(hashserve="none")).bitbake_env()["BB_HASHSERVE"] == ""


def test_local_hash_server_with_a_foreign_mirror_is_refused():
    with pytest.raises(UserError, match="hashserve_upstream"):
        settings_from_manifest(cache(sstate_mirrors=["https://sstate.example.com/PATH"]))
    with pytest.raises(UserError, match="cache.hashserve"):
        settings_from_manifest(cache(hashserve="sometimes"))


def test_preflight_accepts_a_good_dir_and_leaves_nothing(tmp_path):
    r = preflight(tmp_path / "sstate", min_free=0)
    assert r.ok, r.problems
    assert list((tmp_path / "sstate").iterdir()) == []
    assert r.fs_type and r.free_bytes > 0


def test_preflight_refuses_what_cannot_hold_sstate(tmp_path):
    (tmp_path / "file").write_text("x")
    r = preflight(tmp_path / "file" / "sstate", min_free=0)
    assert not r.ok and "cannot create" in r.problems[0]
    r = preflight(tmp_path / "ok", min_free=1 << 60)
    assert not r.ok and "free" in r.problems[0]
    ro = Path("/proc/sys/buildctl-sstate")  # a filesystem where nothing can be created
    assert not preflight(ro, min_free=0).ok
    s = CacheSettings(sstate_dir=tmp_path / "file" / "s", dl_dir=tmp_path / "d",
                      repo_ref_dir=tmp_path / "g")
    with pytest.raises(UserError, match="cache pre-flight failed: .*file/s: cannot create"):
        preflight_all(s)


def test_hermetic_build_cannot_use_a_remote_hash_server():
    with pytest.raises(UserError, match="out of reach in a hermetic build"):
        settings_from_manifest(cache(hashserve="ws://10.0.0.5:8686", hermetic=True))
    ok = settings_from_manifest(cache(hashserve_upstream="ws://10.0.0.5:8686", hermetic=True,
                                      sstate_mirrors=["file:///srv/sstate", "https://m/s"]))
    offline = ok.bitbake_env(network=False)
    assert "BB_HASHSERVE_UPSTREAM" not in offline and offline["BB_HASHSERVE"] == "auto"
    assert offline["SSTATE_MIRRORS"] == "file://.* file:///srv/sstate/PATH;downloadfilename=PATH"


def test_file_mirrors_are_named_for_mounting():
    s = settings_from_manifest(cache(hashserve="none", sstate_mirrors=[
        "file:///srv/sstate", "file://.* file:///nfs/sstate/PATH;downloadfilename=PATH",
        "https://m.example.com/s"]))
    assert s.mirror_dirs() == [Path("/srv/sstate"), Path("/nfs/sstate")]


def test_shared_server_replaces_bitbakes_private_one():
    s = settings_from_manifest(cache(hashserve_upstream="wss://up.example.com/ws"))
    env = s.bitbake_env(network=True, shared_server="unix:///tmp/hs/hashserve.sock")
    assert env["BB_HASHSERVE"] == "unix:///tmp/hs/hashserve.sock"
    assert "BB_HASHSERVE_UPSTREAM" not in env and "BB_HASHSERVE_DB_DIR" not in env
    none = settings_from_manifest(cache(hashserve="none"))
    assert none.bitbake_env(shared_server="unix:///x")["BB_HASHSERVE"] == ""


@skips.unless(os.geteuid() == 0, "ownership changes need root (CI runs as root)")
def test_preflight_adopts_an_empty_root_owned_cache_but_not_a_used_one(tmp_path):
    empty = tmp_path / "sstate"
    empty.mkdir()  # e.g. made by `buildctl doctor` as root
    assert preflight(empty, owner=(1000, 1000)).ok
    assert empty.stat().st_uid == 1000
    used = tmp_path / "downloads"
    used.mkdir()
    (used / "something.tar").write_text("x")
    r = preflight(used, owner=(1000, 1000))
    assert not r.ok and "owned by uid 0, the build runs as uid 1000" in r.problems[0]
