"""The valid inputs every hostile case starts from (made once per worker, copied per case):
a product with two boards over a local git repository, a lock, a kas file, a signed Mender
artifact, key pairs and a root filesystem image."""
from __future__ import annotations

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
    # a plain kas project file, and one that includes another
    kas = {"header": {"version": 14}, "machine": "qemux86-64", "distro": "poky",
           "target": "core-image-minimal",
           "repos": {"poky": {"url": (root / "repos" / "poky").as_uri(), "branch": "scarthgap",
                              "layers": {"meta": None, "meta-poky": None}}}}
    (root / "kas").mkdir()
    (root / "kas" / "board.yml").write_text(yaml.safe_dump(kas, sort_keys=False))
    return root
