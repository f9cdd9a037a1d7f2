"""`buildctl cache prune URL`: objects stored on a WebDAV mirror (wsgidav) before the window go,
as a unit (archive + .siginfo), with PROPFIND + DELETE; nothing else on the mirror is touched."""
from __future__ import annotations

import json
import os
import time

from tests.cache.test_push import make_sstate
from tests.conftest import run_cli

DAY = 86400


def _age(path, days):
    t = time.time() - days * DAY
    os.utime(path, (t, t))


def test_prune_on_a_mirror_deletes_old_objects_whole(webdav, tmp_path):
    url, dav_root = webdav
    sstate = tmp_path / "sstate"
    files = sorted(make_sstate(sstate, 6))
    assert run_cli("cache", "push", str(sstate), url, "--hashserv", "127.0.0.1:8686").returncode == 0
    mirror = dav_root / "sstate"
    archives = [f for f in files if not f.endswith(".siginfo")]
    old, fresh, half = archives[:3], archives[3:5], archives[5]
    for rel in old:
        _age(mirror / rel, 40)
        _age(mirror / (rel + ".siginfo"), 40)
    _age(mirror / half, 40)  # its .siginfo is recent: the object stays whole
    _age(mirror / ".buildctl" / "hashserv.json", 400)  # not an object: never pruned

    dry = run_cli("cache", "prune", url, "--older-than", "30", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    got = json.loads(dry.stdout)
    assert (got["objects"], got["removed"], got["kept"]) == (6, 3, 3)
    assert got["removed_bytes"] == sum((mirror / r).stat().st_size +
                                       (mirror / (r + ".siginfo")).stat().st_size for r in old)
    assert all((mirror / r).exists() for r in old)  # a dry run deletes nothing

    real = run_cli("cache", "prune", url, "--older-than", "30")
    assert real.returncode == 0, real.stderr
    assert f"{url}: 6 sstate objects: removed 3" in real.stdout and "kept 3, 0 failed" in real.stdout
    for rel in old:
        assert not (mirror / rel).exists() and not (mirror / (rel + ".siginfo")).exists()
    for rel in fresh + [half]:
        assert (mirror / rel).exists() and (mirror / (rel + ".siginfo")).exists()
    assert (mirror / ".buildctl" / "hashserv.json").exists()
    # the pruned objects are what a push sends again
    again = run_cli("cache", "push", str(sstate), url, "--json")
    assert json.loads(again.stdout)["sent"] == 6


def test_prune_url_errors_are_one_line(tmp_path):
    r = run_cli("cache", "prune", "http://127.0.0.1:9/sstate", "--older-than", "3")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "127.0.0.1:9" in r.stderr


def test_a_mirror_url_takes_only_the_age_rule():
    """--keep-builds needs the local build ledger; a mirror only knows when objects were stored."""
    for extra in (["--keep-builds", "2"], ["--older-than", "3", "--keep-builds", "2"], []):
        r = run_cli("cache", "prune", "http://127.0.0.1:9/sstate", *extra)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.strip().count("\n") == 0 and "cache prune URL" in r.stderr
