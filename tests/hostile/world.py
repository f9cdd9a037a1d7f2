"""The valid inputs every hostile case starts from (made once per worker, copied per case):
a product with two boards over a local git repository, a lock, a kas file, a signed Mender
artifact, key pairs and a root filesystem image; an artifact whose payload is a real ext4
filesystem (ext4.mender and ext4-signed.mender: /etc/hostname, /etc/empty/) and two small release bundles
(bundle-1.0, bundle-2.0: release.json naming one board's full .mender)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.helpers.products import simple_product

ROOTFS = b"\x53\xef" * 4096  # 8 KiB "filesystem"


def make_world(root: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    from buildctl.ota.mender import (
        ArtifactSpec,
        load_private_key,
        rootfs_payload,
        write_artifact,
    )

    root.mkdir(parents=True, exist_ok=True)
    simple_product(root)  # products/demo.yml, machines/{qemux86-64,qemuarm64}.yml, repos/poky
    keys = root / "keys"
    keys.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    (keys / "priv.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    (keys / "pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (keys / "encrypted.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    (keys / "ed25519.pem").write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (root / "rootfs.ext4").write_bytes(ROOTFS)
    spec = ArtifactSpec("demo-1.0", ["qemux86-64"], rootfs_payload(root / "rootfs.ext4", "demo-1.0"))
    write_artifact(spec, root / "unsigned.mender")
    write_artifact(spec, root / "signed.mender",
                   key=load_private_key(str(keys / "priv.pem"), "key"))
    ext4 = _ext4(root / "_ext4-tree", root / "rootfs-real.ext4")
    ext4_spec = ArtifactSpec("demo-ext4", ["qemux86-64"], rootfs_payload(ext4, "demo-ext4"))
    write_artifact(ext4_spec, root / "ext4.mender")
    write_artifact(ext4_spec, root / "ext4-signed.mender",
                   key=load_private_key(str(keys / "priv.pem"), "key"))
    for version in ("1.0", "2.0"):
        _bundle(root / f"bundle-{version}", version, root / "unsigned.mender")
    # a plain kas project file, and one that includes another
    kas = {"header": {"version": 14}, "machine": "qemux86-64", "distro": "poky",
           "target": "core-image-minimal",
           "repos": {"poky": {"url": (root / "repos" / "poky").as_uri(), "branch": "scarthgap",
                              "layers": {"meta": None, "meta-poky": None}}}}
    (root / "kas").mkdir()
    (root / "kas" / "board.yml").write_text(yaml.safe_dump(kas, sort_keys=False))
    return root


def _ext4(tree: Path, image: Path) -> Path:
    """A 1 MiB ext4 filesystem made with mke2fs -d (e2fsprogs: the cat/cp verbs need it too)."""
    (tree / "etc" / "empty").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("demo\n")
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tree), "-E",
                    "root_owner=0:0", str(image), "1M"], check=True, capture_output=True)
    shutil.rmtree(tree)
    return image


def _bundle(root: Path, version: str, mender: Path) -> None:
    """The parts of a release bundle `release delta` reads: release.json and the .mender."""
    board = root / "qemux86-64-release"
    board.mkdir(parents=True)
    shutil.copyfile(mender, board / "demo.mender")
    rel = {"product": "demo", "version": version,
           "boards": [{"board": "qemux86-64", "dir": "qemux86-64-release"}],
           "files": [{"path": "qemux86-64-release/demo.mender", "kind": "mender"}]}
    (root / "release.json").write_text(json.dumps(rel, indent=2) + "\n")
