"""`buildctl cache prune`: objects no build used within the window go, as a unit."""
from __future__ import annotations

import json
import os
import time

from tests.conftest import run_cli

DAY = 86400


def obj(root, h, age_days, *, used_days=None):
    """An sstate archive + .siginfo aged `age_days`; `used_days`: a build used it then
    (BitBake updates the .siginfo's time when it uses an object)."""
    d = root / h[:2] / h[2:4]
    d.mkdir(parents=True, exist_ok=True)
    name = f"sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:11:{h}_package.tar.zst"
    files = [d / name, d / (name + ".siginfo")]
    t = time.time() - age_days * DAY
    for f in files:
        f.write_bytes(b"x" * 10)
        os.utime(f, (t, t))
    if used_days is not None:
        u = time.time() - used_days * DAY
        os.utime(files[1], (u, u))
    return files


def test_prune_removes_unused_objects_whole_and_keeps_used_ones(tmp_path):
    root = tmp_path / "sstate"
    old = obj(root, "a" * 64, 40)
    used = obj(root, "b" * 64, 40, used_days=2)  # built long ago, used by a recent build
    new = obj(root, "c" * 64, 1)
    (root / "hashserv-scarthgap.db").write_text("db")
    os.utime(root / "hashserv-scarthgap.db", (0, 0))
    lock = root / "aa" / "sstate:x.tar.zst.lock"
    lock.write_text("")
    os.utime(lock, (0, 0))
    proc = run_cli("cache", "prune", str(root), "--older-than", "30", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["removed"] == 1 and all(f.exists() for f in old)
    proc = run_cli("cache", "prune", str(root), "--older-than", "30", "--json")
    data = json.loads(proc.stdout)
    assert (data["objects"], data["removed"], data["kept"], data["removed_bytes"]) == (3, 1, 2, 20)
    assert not any(f.exists() for f in old)
    assert all(f.exists() for f in used + new)
    assert (root / "hashserv-scarthgap.db").exists() and lock.exists()


def test_prune_bad_input(tmp_path):
    proc = run_cli("cache", "prune", str(tmp_path / "none"), "--older-than", "3")
    assert proc.returncode == 2 and "no such directory" in proc.stderr
    proc = run_cli("cache", "prune", str(tmp_path), "--older-than", "0")
    assert proc.returncode == 2 and "--older-than" in proc.stderr
