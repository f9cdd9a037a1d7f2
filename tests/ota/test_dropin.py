"""mender-artifact 4.x spellings in `buildctl artifact` (issue 15 item 8): -c/--compatible-types,
dump, cat and cp, each compared with Debian's mender-artifact where it has the command."""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from buildctl.ota.mender import read_artifact
from tests.conftest import run_cli
from tests.helpers import skips
from tests.ota.helpers import mender_artifact

SCRIPT = b"#!/bin/sh\necho installing\n"


def _ma(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([mender_artifact(), *map(str, args)], capture_output=True, cwd=cwd)


def _canon(argv: list[str]) -> list[str]:
    """mender-artifact prints provides and depends in Go's map order (random): sort those runs."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--provides", "--depends"):
            flag, run = argv[i], []
            while i < len(argv) and argv[i] == flag:
                run.append(argv[i + 1])
                i += 2
            out += [x for v in sorted(run) for x in (flag, v)]
        else:
            out.append(argv[i])
            i += 1
    return out


def _inspect(path: Path) -> dict:
    return read_artifact(path).to_dict()


@pytest.fixture(scope="module")
def arts(tmp_path_factory, keys) -> dict[str, Path]:
    """A rootfs-image artifact of a small ext4 (with a state script, provides, depends) and a
    module artifact with meta-data, both written by mender-artifact itself; plus a signed copy."""
    mkfs = skips.tool("mkfs.ext4", "apt-get install e2fsprogs")
    skips.tool("debugfs", "apt-get install e2fsprogs")
    d = tmp_path_factory.mktemp("dropin")
    root = d / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hello").write_text("hello world\n")
    (root / "etc" / "hello").chmod(0o640)
    subprocess.run([mkfs, "-q", "-F", "-d", str(root), str(d / "rootfs.ext4"), "2M"], check=True,
                   capture_output=True)
    script = d / "ArtifactInstall_Enter_00"
    script.write_bytes(SCRIPT)
    script.chmod(0o755)
    rootfs = d / "rootfs.mender"
    r = _ma("write", "rootfs-image", "-f", d / "rootfs.ext4", "-n", "rel-1", "-t", "dev-a",
            "-t", "dev-b", "-p", "foo:bar", "-d", "dep:x", "-g", "grp", "-N", "rel-0",
            "-s", script, "-o", rootfs)
    assert r.returncode == 0, r.stderr
    (d / "meta.json").write_text('{"b": [1, 2], "a": "x<y"}')
    (d / "payload.bin").write_bytes(b"module payload\n")
    module = d / "module.mender"
    r = _ma("write", "module-image", "-T", "my-module", "-f", d / "payload.bin", "-m",
            d / "meta.json", "-n", "rel-2", "-t", "dev-a", "--clears-provides", "c1",
            "-o", module)
    assert r.returncode == 0, r.stderr
    signed = d / "signed.mender"
    assert _ma("sign", "-k", keys["ec"], rootfs, "-o", signed).returncode == 0
    return {"rootfs": rootfs, "module": module, "signed": signed, "dir": d}


def test_compatible_types_is_the_4x_name_for_device_types(tmp_path):
    img = tmp_path / "img"
    img.write_bytes(b"x" * 4096)
    out = tmp_path / "c.mender"
    r = run_cli("artifact", "write", "rootfs-image", "-f", str(img), "-n", "r", "-c", "dev-a",
                "--compatible-types", "dev-b", "-t", "dev-c", "-o", str(out),
                "--mender-client", "5.0")
    assert r.returncode == 0, r.stderr
    read = _ma("read", out)
    assert read.returncode == 0
    assert b"dev-a" in read.stdout and b"dev-b" in read.stdout and b"dev-c" in read.stdout
    assert _inspect(out)["device_types"] == ["dev-a", "dev-b", "dev-c"]


@pytest.mark.parametrize("which", ["rootfs", "module"])
def test_dump_matches_mender_artifact(tmp_path, arts, which):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir(), theirs.mkdir()
    flags = ["--files", "f", "--scripts", "s", "--meta-data", "m", "--print-cmdline"]
    b = run_cli("artifact", "dump", str(arts[which]), *flags, cwd=ours)
    assert b.returncode == 0, b.stderr
    m = _ma("dump", arts[which], *flags, cwd=theirs)
    assert m.returncode == 0, m.stderr
    assert b.stdout.split() == _canon(m.stdout.decode().split())  # ours: sorted, stable
    for sub in ("f", "s", "m"):
        mine = {p.name: (p.read_bytes(), p.stat().st_mode & 0o777)
                for p in sorted((ours / sub).iterdir())}
        ref = {p.name: (p.read_bytes(), p.stat().st_mode & 0o777)
               for p in sorted((theirs / sub).iterdir())}
        if sub == "f":  # mender-artifact keeps the tar's mode; compare contents there
            mine = {k: v[0] for k, v in mine.items()}
            ref = {k: v[0] for k, v in ref.items()}
        assert mine == ref, sub
    b0 = run_cli("artifact", "dump", str(arts[which]), "--print0-cmdline")
    m0 = _ma("dump", arts[which], "--print0-cmdline")
    assert b0.stdout.endswith("\0") and "\0--artifact-name\0" in b0.stdout
    assert b0.stdout.split("\0") == _canon(m0.stdout.decode().split("\0")[:-1]) + [""]


@pytest.mark.parametrize("which", ["rootfs", "module"])
def test_dump_command_line_recreates_the_artifact_with_either_tool(tmp_path, arts, which):
    b = run_cli("artifact", "dump", str(arts[which]), "--files", "f", "--scripts", "s",
                "--meta-data", "m", "--print-cmdline", cwd=tmp_path)
    assert b.returncode == 0, b.stderr
    argv = shlex.split(b.stdout)
    ours = run_cli("artifact", *argv, "-o", "ours.mender", "--mender-client", "3.4", cwd=tmp_path)
    assert ours.returncode == 0, ours.stderr
    theirs = _ma(*argv, "-o", "theirs.mender", cwd=tmp_path)
    assert theirs.returncode == 0, theirs.stderr
    keep = ("name", "device_types", "group", "depends_artifact_names", "depends_groups",
            "scripts", "payloads")
    want = {k: _inspect(arts[which])[k] for k in keep}
    for p in want["payloads"]:
        for f in p["files"]:
            f.pop("mtime", None)
    for made in ("ours.mender", "theirs.mender"):
        got = {k: _inspect(tmp_path / made)[k] for k in keep}
        for p in got["payloads"]:
            for f in p["files"]:
                f.pop("mtime", None)
        assert got == want, made


def test_dump_refuses_to_overwrite_and_writes_nothing_for_a_bad_artifact(tmp_path, arts):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "ArtifactInstall_Enter_00").write_text("mine")
    r = run_cli("artifact", "dump", str(arts["rootfs"]), "--scripts", "s", "--files", "f",
                cwd=tmp_path)
    assert r.returncode == 2 and "already exists" in r.stderr
    assert (tmp_path / "s" / "ArtifactInstall_Enter_00").read_text() == "mine"
    assert not (tmp_path / "f").exists()
    bad = tmp_path / "bad.mender"
    data = bytearray(arts["rootfs"].read_bytes())
    data[-2000] ^= 0xFF  # inside the compressed data member
    bad.write_bytes(bytes(data))
    r = run_cli("artifact", "dump", str(bad), "--files", "g", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "g").exists()


def test_cat_matches_mender_artifact(arts):
    ref = f"{arts['rootfs']}:/etc/hello"
    b = subprocess.run([*_cli(), "artifact", "cat", ref], capture_output=True, env=_env())
    assert b.returncode == 0 and b.stdout == b"hello world\n"
    assert b.stdout == _ma("cat", ref).stdout
    for path, msg in (("/etc/nope", "no such file"), ("/etc", "is a directory")):
        r = run_cli("artifact", "cat", f"{arts['rootfs']}:{path}")
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.splitlines()) == 1
    r = run_cli("artifact", "cat", f"{arts['module']}:/etc/hello")
    assert r.returncode == 2 and "rootfs-image" in r.stderr


def _cli():
    import sys
    return [sys.executable, "-m", "buildctl"]


def _env():
    from tests.conftest import ROOT
    return dict(os.environ, PYTHONPATH=str(ROOT))


def test_cp_out_matches_mender_artifact(tmp_path, arts):
    r = run_cli("artifact", "cp", f"{arts['rootfs']}:/etc/hello", str(tmp_path / "ours"))
    assert r.returncode == 0, r.stderr
    assert _ma("cp", f"{arts['rootfs']}:/etc/hello", tmp_path / "theirs").returncode == 0
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "theirs").read_bytes() == b"hello world\n"


def test_cp_in_rewrites_sums_and_keeps_everything_else(tmp_path, arts):
    art = tmp_path / "a.mender"
    art.write_bytes(arts["rootfs"].read_bytes())
    new = tmp_path / "new.conf"
    new.write_bytes(b"replaced\n")
    new.chmod(0o600)
    before = _inspect(art)
    for dest in ("/etc/hello", "/etc/added"):
        r = run_cli("artifact", "cp", str(new), f"{art}:{dest}")
        assert r.returncode == 0, r.stderr
    assert _ma("validate", art).returncode == 0
    assert _ma("cat", f"{art}:/etc/hello").stdout == b"replaced\n"
    assert _ma("cat", f"{art}:/etc/added").stdout == b"replaced\n"
    after = _inspect(art)
    (p0,), (p1,) = before["payloads"], after["payloads"]
    image_sum = p1["files"][0]["sha256"]
    assert image_sum != p0["files"][0]["sha256"]
    assert p1["provides"]["rootfs-image.checksum"] == image_sum
    assert {k: v for k, v in p1["provides"].items() if k != "rootfs-image.checksum"} == \
        {k: v for k, v in p0["provides"].items() if k != "rootfs-image.checksum"}
    for k in ("name", "device_types", "group", "depends_artifact_names", "scripts"):
        assert after[k] == before[k], k
    assert (p1["depends"], p1["clears_provides"]) == (p0["depends"], p0["clears_provides"])
    # the replaced file keeps its mode in the image; the added one takes the host file's
    d = tmp_path / "x"
    assert run_cli("artifact", "dump", str(art), "--files", str(d)).returncode == 0
    stat = subprocess.run([skips.tool("debugfs"), "-R", "stat /etc/hello", str(d / "rootfs.ext4")],
                          capture_output=True, text=True).stdout
    assert "Mode:  0640" in stat
    stat = subprocess.run([skips.tool("debugfs"), "-R", "stat /etc/added", str(d / "rootfs.ext4")],
                          capture_output=True, text=True).stdout
    assert "Mode:  0600" in stat


def test_cp_into_a_signed_artifact_needs_its_key_or_force(tmp_path, arts, keys):
    art = tmp_path / "s.mender"
    art.write_bytes(arts["signed"].read_bytes())
    original = art.read_bytes()
    new = tmp_path / "n"
    new.write_bytes(b"n\n")
    r = run_cli("artifact", "cp", str(new), f"{art}:/etc/n")
    assert r.returncode == 2 and "--force" in r.stderr and "-k" in r.stderr
    assert art.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n", "s.mender"]
    r = run_cli("artifact", "cp", str(new), f"{art}:/etc/n", "-k", str(keys["ec"]))
    assert r.returncode == 0, r.stderr
    assert _ma("validate", "-k", keys["ec-pub"], art).returncode == 0
    assert _ma("cat", f"{art}:/etc/n").stdout == b"n\n"
    r = run_cli("artifact", "cp", str(new), f"{art}:/etc/m", "--force")
    assert r.returncode == 0, r.stderr
    assert _inspect(art)["signature"] == "unsigned"
    r = run_cli("artifact", "cp", str(new), f"{art}:/nodir/x")
    assert r.returncode == 2 and "/nodir does not exist" in r.stderr
    r = subprocess.run([*_cli(), "artifact", "cp", "-", f"{art}:/etc/from-stdin", "--force"],
                       input=b"piped\n", capture_output=True, env=_env())
    assert r.returncode == 0, r.stderr
    assert _ma("cat", f"{art}:/etc/from-stdin").stdout == b"piped\n"

