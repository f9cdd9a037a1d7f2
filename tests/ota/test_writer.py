"""Writer: deterministic bytes, SOURCE_DATE_EPOCH, Go-compatible member attributes, defaults."""
from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from buildctl.ota.mender import (ArtifactSpec, Compression, DataSource, load_private_key,
                                 module_payload, read_artifact, rootfs_payload, write_artifact)
from buildctl.ota.mender.compression import ParallelGzipWriter
from tests.ota.helpers import make_image, make_scripts, mixed_bytes


def _spec(tmp_path, comp="gzip", **kw):
    img = tmp_path / "rootfs.ext4"
    if not img.exists():
        make_image(img, 3 << 20)
    return ArtifactSpec("rel-1", ["b", "a"], rootfs_payload(img, "rel-1", **kw),
                        scripts=make_scripts(tmp_path / "s"), compression=Compression.parse(comp))


@pytest.mark.parametrize("comp", ["gzip", "lzma", "zstd", "none"])
def test_same_inputs_same_bytes(tmp_path, keys, comp, monkeypatch):
    key = load_private_key(keys["rsa"])  # PKCS#1 v1.5 is deterministic, so the whole file is
    write_artifact(_spec(tmp_path, comp), tmp_path / "1.mender", key=key, mtime=1700000000)
    write_artifact(_spec(tmp_path, comp), tmp_path / "2.mender", key=key, threads=1,
                   mtime=1700000000)
    assert (tmp_path / "1.mender").read_bytes() == (tmp_path / "2.mender").read_bytes()
    write_artifact(_spec(tmp_path, comp), tmp_path / "3.mender", key=key, mtime=1700000001)
    assert (tmp_path / "1.mender").read_bytes() != (tmp_path / "3.mender").read_bytes()


def test_member_attributes_and_json_bytes(tmp_path, monkeypatch):
    out = write_artifact(_spec(tmp_path), tmp_path / "a.mender", mtime=1700000000)
    blob = out.read_bytes()
    assert len(blob) % 512 == 0 and blob.endswith(bytes(1024))
    with tarfile.open(out) as t:
        members = t.getmembers()
        assert [m.name for m in members] == ["version", "manifest", "header.tar.gz", "data/0000.tar.gz"]
        for m in members:
            assert (m.uid, m.gid, m.uname, m.gname, m.mode, m.mtime) == (0, 0, "", "", 0o600, 1700000000)
        assert t.extractfile("version").read() == b'{"format":"mender","version":3}'
        header = t.extractfile("header.tar.gz").read()
        data = t.extractfile("data/0000.tar.gz").read()
    assert header[:10] == data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no time in gzip
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(header))) as h:
        names = h.getnames()
        assert names == ["header-info", "scripts/ArtifactCommit_Leave_10",
                         "scripts/ArtifactInstall_Enter_00_hello", "headers/0000/type-info",
                         "headers/0000/meta-data"]  # scripts sorted, meta-data empty for rootfs
        info = h.extractfile("header-info").read()
        ti = json.loads(h.extractfile("headers/0000/type-info").read())
        assert h.extractfile("headers/0000/meta-data").read() == b""
    assert info == (b'{"payloads":[{"type":"rootfs-image"}],"artifact_provides":{"artifact_name":"rel-1"},'
                    b'"artifact_depends":{"device_type":["b","a"]}}')
    assert ti["type"] == "rootfs-image"  # not "" as 3.9 writes
    assert ti["clears_artifact_provides"] == ["artifact_group", "rootfs_image_checksum", "rootfs-image.*"]
    r = read_artifact(out)
    assert ti["artifact_provides"] == {"rootfs-image.checksum": r.payloads[0].files[0].sha256,
                                       "rootfs-image.version": "rel-1"}


def test_provides_options(tmp_path):
    p = rootfs_payload(tmp_path / "x", "n", software_name="os", software_version="9",
                       checksum_provide=False, default_clears=False)
    assert p.provides == {"rootfs-image.os.version": "9"} and p.clears_provides == []
    p = rootfs_payload(tmp_path / "x", "n", legacy_checksum=True)
    assert p.checksum_provide == "rootfs_image_checksum"
    m = module_payload("docker", [], "c-1", software_name="web", software_version="2024.1")
    assert m.provides == {"rootfs-image.web.version": "2024.1"} and m.clears_provides == ["rootfs-image.web.*"]
    m = module_payload("single-file", [], "a", default_software_version=False)
    assert m.provides == {}


def test_parallel_gzip_is_valid_and_thread_independent():
    data = mixed_bytes(5 * (1 << 20) + 123)
    outs = []
    for threads in (1, 2, 4):
        buf = io.BytesIO()
        w = ParallelGzipWriter(buf, level=2, threads=threads)
        for i in range(0, len(data), 700_000):
            w.write(data[i:i + 700_000])
        w.close()
        outs.append(buf.getvalue())
    assert outs[0] == outs[1] == outs[2]
    assert gzip.decompress(outs[0]) == data
    assert len(outs[0]) < len(data) * 0.8


def test_large_file_streams(tmp_path):
    """A payload bigger than any buffer round-trips; the data member is hashed while streaming."""
    img = tmp_path / "big.img"
    with open(img, "wb") as f:
        for i in range(40):
            f.write(mixed_bytes(1 << 20, seed=i))
    out = write_artifact(ArtifactSpec("big", ["d"], rootfs_payload(img, "big"),
                                      compression=Compression.parse("zstd_fast")), tmp_path / "b.mender")
    info = read_artifact(out, extract_to=tmp_path / "x")
    assert (tmp_path / "x" / "0000" / "big.img").read_bytes() == img.read_bytes()
    assert info.payloads[0].files[0].size == 40 << 20


def test_module_meta_and_generated_files(tmp_path):
    out = write_artifact(ArtifactSpec("m", ["d"], module_payload(
        "my-module", [DataSource("a.txt", data=b"A")], "m", meta_data={"z": 1, "a": "<&>"})),
        tmp_path / "m.mender")
    with tarfile.open(out) as t:
        header = gzip.decompress(t.extractfile("header.tar.gz").read())
    with tarfile.open(fileobj=io.BytesIO(header)) as h:
        assert h.extractfile("headers/0000/meta-data").read() == b'{"a":"\\u003c\\u0026\\u003e","z":1}'
    assert read_artifact(out).payloads[0].meta_data == {"a": "<&>", "z": 1}


def test_pax_size_header_reads_back():
    """Payloads of 8 GiB and more need a PAX size; the fixed-width form round-trips."""
    from buildctl.ota.mender.tario import TarStream, header_bytes, padding
    big = 9 * (1 << 30)
    hdr = header_bytes("data/0000.tar.gz", big, pax_size=True)
    assert len(hdr) == len(header_bytes("data/0000.tar.gz", 0, pax_size=True))
    parsed = TarStream(io.BytesIO(hdr)).next()
    assert parsed.name == "data/0000.tar.gz" and parsed.size == big
    small = header_bytes("x", 5, pax_size=True) + b"hello" + padding(5) + bytes(1024)
    with tarfile.open(fileobj=io.BytesIO(small)) as t:
        assert t.extractfile("x").read() == b"hello"


def test_ecdsa_signatures_are_reproducible(tmp_path, keys):
    a = write_artifact(_spec(tmp_path), tmp_path / "a.mender", key=load_private_key(keys["ec"]))
    b = write_artifact(_spec(tmp_path), tmp_path / "b.mender", key=load_private_key(keys["ec"]))
    assert a.read_bytes() == b.read_bytes()
