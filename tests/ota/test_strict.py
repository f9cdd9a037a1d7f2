"""Issue 7 item 9: as strict as the reference, checked against Debian's mender-artifact 3.9.

- write: provides and clears_artifact_provides for every --software-*/--no-default-* mix are
  byte-for-byte what mender-artifact writes (rootfs type-info "type" aside: 3.9 writes "", we
  write "rootfs-image");
- write bootstrap-artifact: same header JSON as the reference, and the reference reads ours;
- verify --require-signature without a key fails; augmented artifacts name what the
  signature does not cover;
- zstd: a warning without a known client, a refusal for client 3.4, a gate finding;
- verify --extract refuses past its default cap in one line.
"""
from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from buildctl.ota.mender import (ArtifactSpec, load_private_key, read_artifact,
                                 rootfs_payload, write_artifact)
from buildctl.ota.mender.gate import check_artifacts
from buildctl.cli import main
from tests.ota.helpers import make_image, mender_artifact, mixed_bytes, require_tool

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "buildctl", "artifact", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def ma(*args):
    proc = subprocess.run([mender_artifact(), *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0 and "rror" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def header_json(path: Path) -> dict[str, dict]:
    with tarfile.open(path) as t:
        name = next(n for n in t.getnames() if n.startswith("header.tar"))
        inner = tarfile.open(fileobj=io.BytesIO(gzip.decompress(t.extractfile(name).read())))
        return {m.name: inner.extractfile(m).read() for m in inner.getmembers()}


FLAG_SETS = [
    [],
    ["--software-name", "foo"],
    ["--no-default-software-version"],
    ["--software-name", "foo", "--no-default-software-version"],
    ["--software-version", "9"],
    ["--software-version", "9", "--no-default-software-version"],
    ["--software-filesystem", "fsx"],
    ["--software-filesystem", "fsx", "--software-name", "foo"],
    ["--no-default-clears-provides", "--software-name", "foo"],
    ["--clears-provides", "x.*", "--software-name", "foo"],
    ["--clears-provides", "rootfs-image.*", "--clears-provides", "artifact_group"],
    ["-p", "rootfs-image.version:mine"],
    ["-p", "rootfs-image.version:mine", "--software-version", "7"],
    ["--software-version", "7", "-p", "rootfs-image.version:mine"],
    ["-p", "rootfs-image.mymod.version:p", "--software-name", "x"],
]


@pytest.mark.parametrize("kind", ["rootfs-image", "module-image"])
@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: " ".join(f) or "defaults")
def test_software_flags_match_mender_artifact(tmp_path, kind, flags):
    img = make_image(tmp_path / "rootfs.ext4", 4096)
    extra = ["-f", img] if kind == "rootfs-image" else ["-T", "mymod"]
    args = ["write", kind, "-n", "rel-1", "-t", "dev", *extra, *flags]
    ma(*args, "-o", tmp_path / "ma.mender", *(["--no-progress"] if kind == "rootfs-image" else []))
    assert main(["artifact", *map(str, args), "-o", str(tmp_path / "bc.mender")]) == 0
    theirs = json.loads(header_json(tmp_path / "ma.mender")["headers/0000/type-info"])
    ours = json.loads(header_json(tmp_path / "bc.mender")["headers/0000/type-info"])
    if kind == "rootfs-image":
        assert theirs.pop("type") == "" and ours.pop("type") == "rootfs-image"
    assert ours == theirs


def test_bootstrap_artifact_matches_and_is_read_by_mender_artifact(tmp_path):
    args = ["write", "bootstrap-artifact", "-n", "bootstrap-1", "-t", "raspberrypi4", "-t", "rpi3",
            "-p", "rootfs-image.version:bootstrap-1", "-d", "a.b:c", "-g", "grp",
            "--clears-provides", "rootfs-image.*"]
    ma(*args, "-o", tmp_path / "ma.mender", "--no-progress")
    r = cli(*args, "-o", tmp_path / "bc.mender")
    assert r.returncode == 0, r.stderr
    assert header_json(tmp_path / "bc.mender") == header_json(tmp_path / "ma.mender")
    ma("validate", tmp_path / "bc.mender")
    out = ma("read", tmp_path / "bc.mender").stdout
    assert "Empty type" in out and "rootfs-image.version: bootstrap-1" in out
    info = read_artifact(tmp_path / "bc.mender")
    assert info.payloads[0].type is None and info.payloads[0].files == []
    assert info.members == ["version", "manifest", "header.tar.gz", "data/0000.tar.gz"]


def test_bootstrap_refuses_what_it_cannot_carry(tmp_path):
    r = cli("write", "bootstrap-artifact", "-n", "has space", "-t", "d", "-o", tmp_path / "b.mender")
    assert r.returncode == 2 and "whitespace" in r.stderr and r.stderr.count("\n") == 1
    r = cli("write", "bootstrap-artifact", "-n", "b", "-t", "d", "-s", "x", "-o", tmp_path / "b.mender")
    assert r.returncode == 2 and "-s" in r.stderr
    assert not (tmp_path / "b.mender").exists()


@pytest.fixture()
def signed(tmp_path, keys):
    img = make_image(tmp_path / "rootfs.ext4")
    out = tmp_path / "s.mender"
    write_artifact(ArtifactSpec("rel-1", ["dev"], rootfs_payload(img, "rel-1")), out,
                   key=load_private_key(keys["ec"]))
    return out


def test_require_signature_without_key_fails(signed, keys):
    r = cli("verify", "--require-signature", signed)
    assert r.returncode == 2 and "--key" in r.stderr and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr
    assert cli("verify", "--require-signature", "--key", keys["ec-pub"], signed).returncode == 0
    # the library and the release gate say the same: no key, no pass
    with pytest.raises(Exception, match="no public key"):
        read_artifact(signed, require_signature=True)
    (f,) = check_artifacts([signed], board="b", device_types=["dev"], artifact_name="rel-1",
                           require_signature=True)
    assert f.code == "artifact-signature" and "no public key" in f.message


def test_augmented_reports_what_the_signature_does_not_cover(tmp_path, keys):
    img = make_image(tmp_path / "rootfs.ext4", 8192)
    (tmp_path / "rootfs.delta").write_bytes(b"delta-bytes")
    out = tmp_path / "aug.mender"
    ma("write", "module-image", "-T", "rootfs-image", "-n", "rel-aug", "-t", "dev", "-f", img,
       "--augment-type", "rootfs-image-delta", "--augment-file", tmp_path / "rootfs.delta",
       "--augment-provides", "delta.key:dv", "-k", keys["rsa"], "-o", out)
    info = read_artifact(out)
    assert info.unsigned_parts == ["manifest-augment", "header-augment.tar.gz",
                                   "data/0000/rootfs.delta"]
    r = cli("verify", "--key", keys["rsa-pub"], out)
    assert r.returncode == 0
    assert "the signature does not cover: manifest-augment, header-augment.tar.gz, " \
           "data/0000/rootfs.delta" in r.stderr
    r = cli("inspect", "--key", keys["rsa-pub"], out)
    assert "Not covered by the signature: manifest-augment" in r.stdout
    r = cli("inspect", "--json", out)
    assert json.loads(r.stdout)["unsigned_parts"][-1] == "data/0000/rootfs.delta"
    # an artifact that is not augmented has nothing outside the signature
    plain = tmp_path / "plain.mender"
    write_artifact(ArtifactSpec("p", ["dev"], rootfs_payload(img, "p")), plain)
    assert read_artifact(plain).unsigned_parts == []


def test_zstd_warns_refuses_and_fails_the_gate(tmp_path):
    img = make_image(tmp_path / "rootfs.ext4")
    base = ["write", "rootfs-image", "-f", img, "-n", "z-1", "-t", "dev", "--compression", "zstd_fast"]
    r = cli(*base, "-o", tmp_path / "z.mender")
    assert r.returncode == 0 and "warning: zstd artifacts need Mender client 3.5" in r.stderr
    r = cli(*base, "--mender-client", "3.4.0", "-o", tmp_path / "z34.mender")
    assert r.returncode == 2 and "client 3.4.0 cannot read zstd" in r.stderr
    assert not (tmp_path / "z34.mender").exists()
    r = cli(*base, "--mender-client", "5.0", "-o", tmp_path / "z5.mender")
    assert r.returncode == 0 and "warning" not in r.stderr
    r = cli(*base[:-2], "--mender-client", "3.4", "-o", tmp_path / "g.mender")  # gzip: fine
    assert r.returncode == 0 and r.stderr.strip() == f"wrote {tmp_path / 'g.mender'}"
    kw = dict(board="b", device_types=["dev"], artifact_name="z-1", require_signature=False)
    (f,) = check_artifacts([tmp_path / "z.mender"], mender_client="3.4", **kw)
    assert f.code == "artifact-compression" and "3.4 cannot read zstd" in f.message
    assert check_artifacts([tmp_path / "z.mender"], mender_client="3.5.0", **kw) == []
    assert check_artifacts([tmp_path / "g.mender"], mender_client="3.4", **kw) == []
    (f,) = check_artifacts([tmp_path / "g.mender"], mender_client="three", **kw)
    assert f.code == "artifact-client"


def test_extract_has_a_default_cap(tmp_path, capsys, monkeypatch):
    from buildctl.commands import artifact as cmd

    img = make_image(tmp_path / "rootfs.ext4", 300_000)
    out = tmp_path / "a.mender"
    write_artifact(ArtifactSpec("a", ["dev"], rootfs_payload(img, "a")), out)
    assert cmd.EXTRACT_CAP == 10 * 1024 ** 3
    monkeypatch.setattr(cmd, "EXTRACT_CAP", 100_000)  # a small cap, not 10 GiB of test data
    assert main(["artifact", "verify", str(out), "--extract", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "100000-byte limit for --extract" in err
    assert "--max-payload-bytes" in err
    assert not [p for p in (tmp_path / "x").rglob("*") if p.is_file()]  # nothing half-written
    # the override: 0 lifts the cap, any other value replaces it
    assert main(["artifact", "verify", str(out), "--extract", str(tmp_path / "y"),
                 "--max-payload-bytes", "0"]) == 0
    assert (tmp_path / "y" / "0000" / "rootfs.ext4").read_bytes() == img.read_bytes()
    capsys.readouterr()
    assert main(["artifact", "verify", str(out), "--extract", str(tmp_path / "z"),
                 "--max-payload-bytes", "1000"]) == 1
    assert "1000-byte limit" in capsys.readouterr().err
    # without --extract, verify has no cap (it writes nothing)
    assert main(["artifact", "verify", str(out)]) == 0


def test_default_gzip_is_one_stream_every_reader_takes(tmp_path):
    """Blocks compressed in parallel still form ONE gzip stream: a reader that stops after the
    first gzip member (zlib inflate) sees all of it, and so do libarchive (the C++ client's
    reader), gzip itself and mender-artifact (Go)."""
    import hashlib
    import zlib

    bsdtar = require_tool("bsdtar", "libarchive-tools")
    img = tmp_path / "rootfs.ext4"
    img.write_bytes(mixed_bytes(5 << 20, seed=3) + bytes(3 << 20))  # several 1 MiB blocks
    out = tmp_path / "a.mender"
    write_artifact(ArtifactSpec("g-1", ["dev"], rootfs_payload(img, "g-1")), out)
    with tarfile.open(out) as t:
        blob = t.extractfile("data/0000.tar.gz").read()
    d = zlib.decompressobj(31)
    inner = d.decompress(blob)
    assert d.eof and d.unused_data == b""  # the first member is the whole stream
    with tarfile.open(fileobj=io.BytesIO(inner)) as t:
        assert t.extractfile("rootfs.ext4").read() == img.read_bytes()
    (tmp_path / "d.tar.gz").write_bytes(blob)
    got = subprocess.run([bsdtar, "-xOf", tmp_path / "d.tar.gz", "rootfs.ext4"],
                         capture_output=True, check=True).stdout
    assert hashlib.sha256(got).digest() == hashlib.sha256(img.read_bytes()).digest()
    subprocess.run(["gzip", "-t", tmp_path / "d.tar.gz"], check=True)
    ma("validate", out)
    # and the default is the documented one: zlib-ng level 4 (no larger than mender-artifact 3.9)
    from buildctl.ota.mender.compression import DEFAULT_GZIP_LEVEL
    assert DEFAULT_GZIP_LEVEL == 4 and blob[:4] == b"\x1f\x8b\x08\x00"
