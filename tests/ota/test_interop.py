"""Interoperability with Debian's mender-artifact 3.9, both directions.

buildctl writes -> `mender-artifact validate`/`read` (with -k for signed) accepts it and reports
the same fields; mender-artifact writes -> buildctl reads/verifies it and reports the same fields.
zstd: 3.9 cannot read or write zstd (added in 3.10), so zstd is tested buildctl -> buildctl and
we assert 3.9's documented refusal.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import sys
from pathlib import Path

import pytest

from buildctl.ota.mender import (ArtifactSpec, Compression, DataSource, load_private_key,
                                 load_public_key, module_payload, read_artifact, rootfs_payload,
                                 sign_artifact, write_artifact)
from buildctl.ota.mender import modules
from tests.ota.helpers import make_ext4, make_image, make_scripts, mender_artifact, parse_mender_read

ROOT = Path(__file__).resolve().parents[2]


def ma(*args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([mender_artifact(), *map(str, args)], capture_output=True, text=True)
    if check and (proc.returncode != 0 or "rror" in proc.stdout + proc.stderr):
        raise AssertionError(f"mender-artifact {' '.join(map(str, args))} failed: "
                             f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _same_fields(info, read: dict) -> None:
    """buildctl's report equals what mender-artifact read printed."""
    p = info.payloads[0]
    assert read["name"] == info.name
    assert read["device_types"] == info.device_types
    assert read.get("group", "") == info.group
    assert read.get("depends_artifact_names", []) == info.depends_artifact_names
    assert read.get("depends_groups", []) == info.depends_groups
    assert sorted(read["scripts"]) == sorted(info.scripts)
    assert read["provides"] == p.provides
    assert read["depends"] == {k: str(v) for k, v in p.depends.items()}
    assert read.get("clears", []) == p.clears_provides
    assert [(f["name"], f["size"], f["sha256"]) for f in read["files"]] == \
        [(f.name, f.size, f.sha256) for f in p.files]
    if p.meta_data is None:
        assert read["metadata"] == "Nothing"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("interop")
    make_image(d / "rootfs.ext4")
    make_scripts(d / "scripts")
    return d


@pytest.mark.parametrize("comp", ["gzip", "none", "lzma"])
@pytest.mark.parametrize("signer", [None, "rsa", "ec"])
def test_buildctl_rootfs_accepted_by_mender_artifact(work, keys, comp, signer):
    out = work / f"bc-rootfs-{comp}-{signer}.mender"
    spec = ArtifactSpec("release-1", ["qemux86-64", "raspberrypi4"],
                        rootfs_payload(work / "rootfs.ext4", "release-1", provides={"custom.k": "v"},
                                       depends={"foo.bar": "baz"}),
                        group="prod", depends_artifact_names=["release-0"], depends_groups=["prod"],
                        scripts=sorted((work / "scripts").iterdir()),
                        compression=Compression.parse(comp))
    write_artifact(spec, out, key=load_private_key(keys[signer]) if signer else None)
    if signer:
        ma("validate", "-k", keys[f"{signer}-pub"], out)
        read = parse_mender_read(ma("read", "-k", keys[f"{signer}-pub"], out).stdout)
        assert read["signature"] == "signed and verified correctly"
        wrong = "ec" if signer == "rsa" else "rsa"
        assert ma("validate", "-k", keys[f"{wrong}-pub"], out, check=False).returncode != 0
    else:
        ma("validate", out)
        read = parse_mender_read(ma("read", out).stdout)
        assert read["signature"] == "no signature"
    info = read_artifact(out, public_key=load_public_key(keys[f"{signer}-pub"]) if signer else None)
    assert read["type"] == "rootfs-image"
    _same_fields(info, read)


def test_buildctl_module_images_accepted(work, keys, tmp_path):
    conf = tmp_path / "app.conf"
    conf.write_text("setting=1\n")
    conf.chmod(0o640)
    tree = tmp_path / "www"
    (tree / "css").mkdir(parents=True)
    (tree / "index.html").write_text("<h1>hi</h1>\n")
    (tree / "css" / "a.css").write_text("h1{}\n")
    deb = tmp_path / "hello_1.0_arm64.deb"
    deb.write_bytes(b"!<arch>\nnot really a deb but bytes are bytes\n")
    cases = {
        "single-file": (modules.single_file(conf, "/etc/myapp"), None),
        "directory": (modules.directory(tree, "/var/www", tmp_path), None),
        "deb": (modules.deb([deb]), None),
        "docker": ([], modules.docker_meta(["nginx:1.25", "redis:7"])),
        "my-custom_module": ([DataSource.from_path(conf)], {"nested": {"a": [1, 2]}, "b": "x<y"}),
    }
    for i, (module, (files, meta)) in enumerate(cases.items()):
        out = tmp_path / f"{module}.mender"
        comp = ["gzip", "lzma", "none"][i % 3]
        spec = ArtifactSpec(f"{module}-1.0", ["raspberrypi4"],
                            module_payload(module, files, f"{module}-1.0", meta_data=meta,
                                           provides={"x.y": "z"}),
                            scripts=sorted((work / "scripts").iterdir()) if i == 0 else [],
                            compression=Compression.parse(comp))
        write_artifact(spec, out, key=load_private_key(keys["ec"]))
        ma("validate", "-k", keys["ec-pub"], out)
        read = parse_mender_read(ma("read", "-k", keys["ec-pub"], out).stdout)
        assert read["type"] == module
        info = read_artifact(out, public_key=load_public_key(keys["ec-pub"]))
        if meta is None:
            _same_fields(info, read)
        else:
            assert info.payloads[0].meta_data == meta
            assert json.loads(read["metadata"]) == meta
    # single-file module: the file keeps its permissions through the permissions file
    info = read_artifact(tmp_path / "single-file.mender", extract_to=tmp_path / "x")
    assert (tmp_path / "x" / "0000" / "permissions").read_text() == "640\n"
    assert (tmp_path / "x" / "0000" / "dest_dir").read_text() == "/etc/myapp\n"
    assert [f.name for f in info.payloads[0].files] == ["dest_dir", "filename", "permissions",
                                                         "app.conf"]


def test_zstd_written_and_read_by_buildctl_refused_by_39(work, keys):
    """3.9 has no zstd (came in 3.10): only buildctl -> buildctl is possible here."""
    out = work / "bc-zstd.mender"
    spec = ArtifactSpec("release-z", ["qemux86-64"], rootfs_payload(work / "rootfs.ext4", "release-z"),
                        compression=Compression.parse("zstd_better"))
    write_artifact(spec, out, key=load_private_key(keys["rsa"]))
    info = read_artifact(out, public_key=load_public_key(keys["rsa-pub"]))
    assert info.compression == "zstd" and info.signature == "verified"
    assert info.payloads[0].files[0].sha256 == hashlib.sha256((work / "rootfs.ext4").read_bytes()).hexdigest()
    proc = ma("validate", "-k", keys["rsa-pub"], out, check=False)
    assert proc.returncode != 0 and "header.tar.zst" in proc.stdout + proc.stderr


@pytest.mark.parametrize("comp", ["gzip", "lzma", "none"])
def test_mender_artifact_rootfs_read_by_buildctl(work, keys, comp, tmp_path):
    img = make_ext4(tmp_path / "rootfs.ext4", tmp_path / "tree")
    out = tmp_path / f"ma-{comp}.mender"
    args = ["write", "rootfs-image", "-f", img, "-n", "release-2", "-t", "qemux86-64", "-t", "rpi4",
            "-N", "release-1", "-g", "prod", "-G", "prod", "-p", "custom.key:custom-value",
            "-d", "foo.bar:baz", "-s", work / "scripts" / "ArtifactInstall_Enter_00_hello",
            "-s", work / "scripts" / "ArtifactCommit_Leave_10", "--compression", comp,
            "-o", out, "--no-progress"]
    if comp != "none":
        args += ["-k", keys["rsa" if comp == "gzip" else "ec"]]
    ma(*args)
    pub = keys["rsa-pub" if comp == "gzip" else "ec-pub"]
    read = parse_mender_read(ma("read", *(["-k", pub] if comp != "none" else []), out).stdout)
    info = read_artifact(out, public_key=load_public_key(pub) if comp != "none" else None)
    _same_fields(info, read)
    assert info.payloads[0].type == "rootfs-image"  # 3.9 wrote "" in type-info; we normalise
    assert info.signature == ("unsigned" if comp == "none" else "verified")
    # the wrong key is refused, like mender-artifact does
    if comp != "none":
        other = keys["ec-pub" if comp == "gzip" else "rsa-pub"]
        with pytest.raises(Exception, match="manifest.sig"):
            read_artifact(out, public_key=load_public_key(other))


def test_mender_artifact_modules_bootstrap_augment_read_by_buildctl(work, keys, tmp_path):
    sf = tmp_path / "sf"
    sf.mkdir()
    (sf / "dest_dir").write_text("/etc/myapp\n")
    (sf / "filename").write_text("app.conf\n")
    (sf / "permissions").write_text("640\n")
    (sf / "app.conf").write_text("a=b\n")
    meta = tmp_path / "meta.json"
    meta.write_text('{"containers":["nginx:1.25","redis:7"]}')
    (tmp_path / "rootfs.delta").write_text("delta\n")
    made = {
        "single": ["module-image", "-T", "single-file", "-n", "app-1", "-t", "rpi4",
                   *sum((["-f", sf / n] for n in ("dest_dir", "filename", "permissions", "app.conf")), [])],
        "docker": ["module-image", "-T", "docker", "-n", "containers-1", "-t", "rpi4", "-m", meta,
                   "--software-name", "web", "--software-version", "2024.1"],
        "bootstrap": ["bootstrap-artifact", "-n", "bootstrap-1", "-t", "rpi4",
                      "-p", "rootfs-image.version:bootstrap-1", "--no-progress"],
        "augment": ["module-image", "-T", "rootfs-image", "-n", "rel-aug", "-t", "qemux86-64",
                    "-f", work / "rootfs.ext4", "--augment-type", "rootfs-image-delta",
                    "--augment-file", tmp_path / "rootfs.delta", "--augment-provides", "delta.key:dv",
                    "--augment-depends", "rootfs-image.checksum:abc"],
    }
    for name, args in made.items():
        out = tmp_path / f"{name}.mender"
        ma("write", *args, "-o", out)
        read = parse_mender_read(ma("read", out).stdout)
        info = read_artifact(out)
        if name == "augment":
            assert info.augment is not None and info.augment.type == read["type"] == "rootfs-image-delta"
            assert info.augment.provides == {"delta.key": "dv"}
            assert [f.name for f in info.augment.files] == ["rootfs.delta"]
            assert [f.name for f in info.payloads[0].files] == ["rootfs.ext4"]
            continue
        if name == "bootstrap":
            assert info.payloads[0].type is None and read["type"] == "Empty type"
        if name == "docker":
            assert info.payloads[0].meta_data == json.loads(meta.read_text())
            assert read["provides"] == info.payloads[0].provides
            continue
        _same_fields(info, read)
    # mender-artifact signs (ECDSA), buildctl verifies; and the other way round
    ma("sign", "-k", keys["ec"], tmp_path / "single.mender", "-o", tmp_path / "single-ec.mender")
    assert read_artifact(tmp_path / "single-ec.mender",
                         public_key=load_public_key(keys["ec-pub"])).signature == "verified"


@pytest.mark.parametrize("key", ["rsa", "ec", "rsa-pkcs8", "ec-pkcs8"])
def test_buildctl_sign_accepted_by_mender_artifact(work, keys, key, tmp_path):
    src = tmp_path / "unsigned.mender"
    ma("write", "rootfs-image", "-f", work / "rootfs.ext4", "-n", "r1", "-t", "dev", "-o", src,
       "--no-progress")
    before = src.read_bytes()
    out = tmp_path / "signed.mender"
    sign_artifact(src, load_private_key(keys[key]), out)
    pub = keys["rsa-pub" if key.startswith("rsa") else "ec-pub"]
    ma("validate", "-k", pub, out)
    assert src.read_bytes() == before
    # re-signing replaces the signature only with force, and only manifest.sig changes
    with pytest.raises(Exception, match="already signed"):
        sign_artifact(out, load_private_key(keys["rsa"]), tmp_path / "again.mender")
    sign_artifact(out, load_private_key(keys["rsa"]), tmp_path / "again.mender", force=True)
    ma("validate", "-k", keys["rsa-pub"], tmp_path / "again.mender")
    a = read_artifact(src)
    b = read_artifact(tmp_path / "again.mender", public_key=load_public_key(keys["rsa-pub"]))
    assert a.members == [m for m in b.members if m != "manifest.sig"]
    # signing copies every other member byte for byte (header and data untouched)
    with tarfile.open(src) as t1, tarfile.open(tmp_path / "again.mender") as t2:
        for name in a.members:
            assert t1.extractfile(name).read() == t2.extractfile(name).read(), name
    assert len(out.read_bytes()) - len(before) in (1024, 1536)  # one member (+padding) added


def test_cli_write_then_mender_artifact_reads(work, keys, tmp_path):
    out = tmp_path / "cli.mender"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "SIGNKEY": keys["ec"].read_text()}
    proc = subprocess.run([sys.executable, "-m", "buildctl", "artifact", "write", "rootfs-image",
                           "-f", work / "rootfs.ext4", "-n", "cli-1", "-t", "qemux86-64",
                           "-p", "a.b:c", "-s", work / "scripts", "-k", "env:SIGNKEY",
                           "--compression", "lzma", "-o", out], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "PRIVATE" not in proc.stdout + proc.stderr
    read = parse_mender_read(ma("read", "-k", keys["ec-pub"], out).stdout)
    assert read["provides"]["a.b"] == "c"
    assert sorted(read["scripts"]) == ["ArtifactCommit_Leave_10", "ArtifactInstall_Enter_00_hello"]
