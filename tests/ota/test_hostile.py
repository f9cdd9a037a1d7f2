"""Hostile and broken artifacts: each refused with a message naming the member."""
from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest

from buildctl.ota.mender import (ArtifactError, ArtifactSpec, Limits, load_private_key,
                                 load_public_key, read_artifact, rootfs_payload, write_artifact)
from buildctl.ota.mender.keys import PrivateKey
from tests.ota.helpers import VERSION, _tar, build_raw, make_image


def rejects(blob: bytes, match: str, **kw) -> ArtifactError:
    with pytest.raises(ArtifactError, match=match) as exc:
        read_artifact(io.BytesIO(blob), **kw)
    assert "\n" not in str(exc.value)
    return exc.value


def test_baseline_is_valid():
    info = read_artifact(io.BytesIO(build_raw()))
    assert info.name == "r1" and info.payloads[0].files[0].name == "rootfs.ext4"


def test_not_a_tar_and_empty():
    rejects(b"hello world" * 100, "checksum mismatch|truncated")
    rejects(b"", "first member must be 'version'|truncated")


@pytest.mark.parametrize("cut", [100, 600, 1500, 2100, 2600, 3000, -1100, -600, -1])
def test_truncated(cut, tmp_path):
    img = tmp_path / "rootfs.ext4"
    img.write_bytes(b"z" * 3000)
    write_artifact(ArtifactSpec("r1", ["d"], rootfs_payload(img, "r1")), tmp_path / "a.mender")
    blob = (tmp_path / "a.mender").read_bytes()  # no 10 KiB record padding, unlike tarfile
    rejects(blob[:cut], "truncated|missing|ends|cannot decompress|not part")


def test_wrong_data_checksum_names_file():
    blob = build_raw(data_tar=_tar([("rootfs.ext4", b"y" * 1000)]))
    err = rejects(blob, r"data/0000\.tar\.gz: rootfs\.ext4: checksum mismatch")
    assert err.member == "data/0000.tar.gz"


def test_wrong_header_checksum():
    good = build_raw()
    # same header bytes but a manifest that lists a different sum for header.tar.gz
    info = tarfile.open(fileobj=io.BytesIO(good))
    manifest = info.extractfile("manifest").read().decode()
    line = [x for x in manifest.splitlines() if x.endswith("header.tar.gz")][0]
    bad = manifest.replace(line, "0" * 64 + "  header.tar.gz")
    rejects(build_raw(member_override={"manifest": bad.encode()}), r"header\.tar\.gz: checksum mismatch")


def test_version_checksum_and_content():
    rejects(build_raw(member_override={"version": b'{"format":"mender","version":3} '}),
            "manifest: checksum mismatch or missing entry for version")


def test_signature_bad_missing_wrong_kind(keys):
    rsa = load_private_key(keys["rsa"])
    good = build_raw()
    manifest = tarfile.open(fileobj=io.BytesIO(good)).extractfile("manifest").read()
    signed = build_raw(sig=rsa.sign(manifest))
    assert read_artifact(io.BytesIO(signed), public_key=load_public_key(keys["rsa-pub"])).signature == "verified"
    forged = bytearray(rsa.sign(manifest))
    forged[10] = ord("A") if forged[10] != ord("A") else ord("B")
    rejects(build_raw(sig=bytes(forged)), "manifest.sig: signature does not verify",
            public_key=load_public_key(keys["rsa-pub"]))
    rejects(build_raw(sig=rsa.sign(b"other manifest")), "does not verify",
            public_key=load_public_key(keys["rsa-pub"]))
    rejects(good, "not signed", public_key=load_public_key(keys["rsa-pub"]))
    rejects(good, "not signed", require_signature=True)
    rejects(signed, "not an ECDSA P-256 signature", public_key=load_public_key(keys["ec-pub"]))
    rejects(build_raw(sig=b"!!notbase64!!"), "not valid base64", public_key=load_public_key(keys["rsa-pub"]))
    # a tampered manifest (say, a swapped data sum) breaks a valid signature
    tampered = manifest.replace(manifest[:4], b"0000")
    rejects(build_raw(sig=rsa.sign(manifest), member_override={"manifest": tampered}),
            "manifest", public_key=load_public_key(keys["rsa-pub"]))


@pytest.mark.parametrize("order,match", [
    (["manifest", "version", "header.tar.gz", "data/0000.tar.gz"], "first member must be 'version'"),
    (["version", "header.tar.gz", "manifest", "data/0000.tar.gz"], "header.tar.gz out of place"),
    (["version", "manifest", "data/0000.tar.gz", "header.tar.gz"], "data/0000.tar.gz out of place"),
    (["version", "manifest", "header.tar.gz", "manifest.sig", "data/0000.tar.gz"], "manifest.sig out of place"),
    (["version", "version", "manifest", "header.tar.gz", "data/0000.tar.gz"], "duplicate member version"),
    (["version", "manifest", "manifest", "header.tar.gz", "data/0000.tar.gz"], "duplicate member manifest"),
    (["version", "manifest", "header.tar.gz", "header.tar.gz", "data/0000.tar.gz"], "duplicate member header"),
    (["version", "manifest", "header.tar.gz", "data/0000.tar.gz", "data/0000.tar.gz"], "duplicate member data"),
    (["version", "manifest", "header.tar.gz"], "data/0000.tar.gz is missing"),
])
def test_member_order_and_duplicates(order, match):
    rejects(build_raw(order=order, sig=b"AAAA"), match)


def test_extra_member_after_data():
    blob = build_raw(order=["version", "manifest", "header.tar.gz", "data/0000.tar.gz", "evil"],
                     member_override={"evil": b"x"})
    rejects(blob, "evil out of place")


@pytest.mark.parametrize("name", ["../evil", "/etc/evil", "sub/evil", ".."])
def test_path_traversal_in_payload_writes_nothing(tmp_path, name):
    target = tmp_path / "out"
    blob = build_raw(files=[("ok.txt", b"fine"), (name, b"pwned")])
    err = rejects(blob, "unsafe path|forbidden characters|not listed|malformed entry|not allowed",
                  extract_to=target)
    assert "pwned" not in str(err)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], written  # ok.txt was removed again: nothing half-written


def test_absolute_and_traversal_names_in_header():
    rejects(build_raw(extra_header=[("scripts/../../x", b"")]), "invalid state script|subdirectory|unsafe")
    rejects(build_raw(extra_header=[("/abs", b"")]), "unsafe path")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_links_and_devices_in_payload(kind, tmp_path):
    data = _tar([("rootfs.ext4", b"x" * 1000), ("link", b"")],
                kind={"link": {"type": kind, "linkname": "/etc/shadow"}})
    blob = build_raw(data_tar=data)
    rejects(blob, "not allowed in a payload", extract_to=tmp_path / "t")
    assert not any(tmp_path.rglob("link"))


def test_link_in_header():
    hdr_with_link = build_raw(extra_header=[("scripts/ArtifactInstall_Enter_00", b"")])
    assert read_artifact(io.BytesIO(hdr_with_link)).scripts == ["ArtifactInstall_Enter_00"]


def test_oversized_members():
    rejects(build_raw(member_override={"manifest": b"a" * (2 << 20)}), "more than")
    big_meta = b'{"a":"' + b"x" * (2 << 20) + b'"}'
    rejects(build_raw(meta=big_meta, type_info=b'{"type":"rootfs-image"}'), "more than")
    # a 100 KiB PAX header
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("version")
        info.pax_headers = {"comment": "c" * 100_000}
        info.size = 3
        t.addfile(info, io.BytesIO(b"abc"))
    rejects(buf.getvalue(), "oversized tar extended header")


def test_header_decompression_bomb():
    bomb = gzip.compress(_tar([("header-info", b" " * (40 << 20))]), mtime=0)
    manifest = f"{hashlib.sha256(bomb).hexdigest()}  header.tar.gz\n" \
               f"{hashlib.sha256(VERSION).hexdigest()}  version\n"
    blob = build_raw(member_override={"header.tar.gz": bomb, "manifest": manifest.encode()})
    rejects(blob, "decompression bomb|more than")


def test_data_decompression_bombs():
    rejects(build_raw(files=[("rootfs.ext4", bytes(4 << 20))]), "exceed.*limit",
            limits=Limits(data_bytes=1 << 20))
    padded = _tar([("rootfs.ext4", b"x" * 1000)]) + bytes(8 << 20)
    rejects(build_raw(data_tar=padded), "padding after the payload tar")
    garbage = _tar([("rootfs.ext4", b"x" * 1000)]) + b"junk" * 10
    rejects(build_raw(data_tar=garbage), "garbage after the end")


@pytest.mark.parametrize("field,value,match", [
    ("header_info", b'{"payloads":[{"type":"rootfs-image"}],"artifact_provides":{"artifact_name":"r"},'
                    b'"artifact_depends":{"device_type":["d"]},"bogus":1}', 'unknown field "bogus"'),
    ("header_info", b'{"payloads":[{"type":"rootfs-image"}],"artifact_provides":{"artifact_name":"r"},'
                    b'"artifact_depends":{"device_type":[]}}', "device_type is missing or empty"),
    ("header_info", b'{"payloads":[{"type":""}],"artifact_provides":{"artifact_name":"r"}}', "empty payload type"),
    ("header_info", b'{"payloads":[{"type":"rootfs-image"}],"artifact_provides":{}}', "artifact_name is missing"),
    ("header_info", b'not json', "not valid JSON"),
    ("meta", b"[1,2]", "must be a JSON object"),
    ("meta", b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    ("type_info", b'{"type":"docker"}', "does not match header-info"),
    ("type_info", b'{"type":"rootfs-image","artifact_provides":{"x":["y"]}}', "must map names to strings"),
    ("type_info", b'{"type":"rootfs-image","artifact_provides":{"artifact_name":"y"}}', "conflicting keys"),
    ("type_info", b'{"type":"rootfs-image","extra":1}', 'unknown field "extra"'),
])
def test_header_json_rules(field, value, match):
    rejects(build_raw(**{field: value}), match)


@pytest.mark.parametrize("script,match", [
    ("Download_Enter_00", "unsupported script state Download"),
    ("ArtifactInstall_Enter_5", "invalid state script name"),
])
def test_state_script_names(script, match):
    rejects(build_raw(extra_header=[(f"scripts/{script}", b"#!/bin/sh\n")]), match)


def test_header_extras_and_duplicates():
    rejects(build_raw(extra_header=[("headers/0000/foo", b"")]), "unsupported file headers/0000/foo")
    rejects(build_raw(extra_header=[("header-info", b"{}")]), "header-info must be the first")
    rejects(build_raw(extra_header=[("scripts/ArtifactInstall_Enter_00", b""),
                                    ("scripts/ArtifactInstall_Enter_00", b"")]), "appears twice")


def test_manifest_consistency():
    rejects(build_raw(manifest_extra="%s  data/0000/b.txt\n" % ("0" * 64)),
            "files listed in the manifest are not part of the artifact: data/0000/b.txt")
    rejects(build_raw(data_tar=_tar([("rootfs.ext4", b"x" * 1000), ("b.txt", b"b")])),
            "b.txt is not listed in the manifest")
    rejects(build_raw(manifest_extra="%s  data/0000/rootfs.ext4\n" % ("0" * 64)), "twice")
    rejects(build_raw(manifest_extra="XYZ  version\n"), "is not '<sha256>  <path>'")
    rejects(build_raw(files=[("a.img", b"a"), ("b.img", b"b")]), "exactly one file")
    rejects(build_raw(files=[("bad name.txt", b"a")]), "is not '<sha256>  <path>'|forbidden")


def test_writer_refuses_bad_input_and_writes_nothing(tmp_path, keys):
    img = make_image(tmp_path / "rootfs.ext4")
    out = tmp_path / "o.mender"
    bad_script = tmp_path / "Download_Enter_00"
    bad_script.write_text("x")
    for spec, match in [
        (ArtifactSpec("r 1", ["d"], rootfs_payload(img, "r 1")), "whitespace"),
        (ArtifactSpec("r1", [], rootfs_payload(img, "r1")), "device type"),
        (ArtifactSpec("r1", ["d"], rootfs_payload(img, "r1"), scripts=[bad_script]), "Download"),
        (ArtifactSpec("r1", ["d"], rootfs_payload(tmp_path / "missing.img", "r1")), "missing.img"),
    ]:
        with pytest.raises(ArtifactError, match=match):
            write_artifact(spec, out)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["Download_Enter_00", "rootfs.ext4"]
    assert isinstance(load_private_key(keys["rsa-pkcs8"]), PrivateKey)
