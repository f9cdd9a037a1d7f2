"""`buildctl cache push` against a real WebDAV server (wsgidav, its own process, 127.0.0.1)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from tests.cache.conftest import free_port
from tests.conftest import run_cli


def make_sstate(root: Path, n: int, start: int = 0) -> dict[str, bytes]:
    """An SSTATE_DIR as BitBake lays it out: <2 hex>/<2 hex>/sstate:... plus .siginfo."""
    files = {}
    for i in range(start, start + n):
        h = f"{i:064x}"[::-1]
        name = f"sstate:pkg{i}:core2-64-poky-linux:1.0:r0:core2-64:11:{h}_package.tar.zst"
        rel = f"{h[:2]}/{h[2:4]}/{name}"
        files[rel] = os.urandom(100 + i)
        files[rel + ".siginfo"] = f"sig {i}".encode()
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "00").mkdir(exist_ok=True)
    (root / "00" / "sstate:x.tar.zst.lock").write_text("")  # a lock: never pushed
    (root / "hashserv-scarthgap.db").write_text("db")  # not an sstate object
    return files


def push(sstate: Path, url: str, *extra: str) -> dict:
    proc = run_cli("cache", "push", str(sstate), url, "--json", *extra)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


def test_push_sends_only_what_the_mirror_lacks(webdav, tmp_path):
    url, dav_root = webdav
    sstate = tmp_path / "sstate"
    files = make_sstate(sstate, 30)
    first = push(sstate, url)
    assert (first["objects"], first["sent"], first["present"]) == (60, 60, 0)
    for rel, data in files.items():  # the mirror has the same tree, byte for byte
        assert (dav_root / "sstate" / rel).read_bytes() == data
    assert not list(dav_root.rglob("*.lock")) and not list(dav_root.rglob("*.db"))
    again = push(sstate, url)
    assert (again["sent"], again["present"]) == (0, 60)
    more = make_sstate(sstate, 5, start=30)
    third = push(sstate, url, "--dry-run")
    assert third["sent"] == 10 and not (dav_root / "sstate" / next(iter(more))).exists()
    third = push(sstate, url)
    assert (third["sent"], third["present"]) == (10, 60)
    # a truncated object on the mirror (an interrupted upload) is sent again
    victim = next(iter(files))
    (dav_root / "sstate" / victim).write_bytes(b"x")
    fourth = push(sstate, url)
    assert fourth["sent"] == 1 and (dav_root / "sstate" / victim).read_bytes() == files[victim]


def test_push_unreachable_mirror_exit_1(tmp_path):
    sstate = tmp_path / "sstate"
    make_sstate(sstate, 2)
    proc = run_cli("cache", "push", str(sstate), f"http://127.0.0.1:{free_port()}/x")
    assert proc.returncode == 1 and "4 failed" in proc.stdout
    proc = run_cli("cache", "push", str(tmp_path / "none"), "http://127.0.0.1:1/x")
    assert proc.returncode == 2 and "no such directory" in proc.stderr
    proc = run_cli("cache", "push", str(sstate), "ftp://host/x")
    assert proc.returncode == 2 and "not an http(s) URL" in proc.stderr


def test_push_without_a_listing_asks_each_object(webdav, tmp_path, monkeypatch):
    """A mirror that answers no PROPFIND (plain HTTP): one HEAD per object instead."""
    from buildctl.cache import push as push_mod

    url, dav_root = webdav
    sstate = tmp_path / "sstate"
    make_sstate(sstate, 4)
    monkeypatch.setattr(push_mod.Mirror, "listing", lambda self: None)
    heads = []
    real_size = push_mod.Mirror.size
    monkeypatch.setattr(push_mod.Mirror, "size",
                        lambda self, rel: heads.append(rel) or real_size(self, rel))
    first = push_mod.push(sstate, url, jobs=3)
    assert (first.sent, first.present, first.failed) == (8, 0, [])
    again = push_mod.push(sstate, url, jobs=3)
    assert (again.sent, again.present) == (0, 8)
    assert len(heads) == 16
