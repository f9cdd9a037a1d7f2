"""Release test fixtures: a product, keys, and deploy dirs in OE-core's layout with real
Mender artifacts (buildctl's writer) next to the images, SPDX and CVE outputs."""
from __future__ import annotations

from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from buildctl.ota.mender.writer import ArtifactSpec, rootfs_payload, write_artifact
from tests.helpers.oe_deploy_fixture import DeployFixture, write_deploy
from tests.helpers.products import simple_product, write_yaml


def make_key(path: Path) -> tuple[Path, Path]:
    """An ECDSA P-256 key pair (private PEM, public PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    pub = path.with_name(path.stem + ".pub.pem")
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return path, pub


def mender_writer(artifact_name: str, device_types: list[str]):
    def write(path: Path, fx: DeployFixture) -> None:
        image = path.with_name(path.name + ".img")
        image.write_bytes(b"rootfs of " + fx.machine.encode() + b"\n" * 1000)
        write_artifact(ArtifactSpec(name=artifact_name, device_types=device_types,
                                    payload=rootfs_payload(image, artifact_name)),
                       path, mtime=fx.source_date_epoch)
        image.unlink()
    return write


def release_product(root: Path, boards=("qemux86-64",), *, cyclonedx=True) -> Path:
    """simple_product + a signing key (file: reference), require_signed and SBOM options."""
    path = simple_product(root, boards)
    data = yaml.safe_load(path.read_text())
    make_key(root / "keys" / "release.pem")
    data["mender"] = {"signing_key": "file:../keys/release.pem", "require_signed": True}
    data["sbom"] = {"spdx": True, "cyclonedx": cyclonedx}
    return write_yaml(path, data)


def deploy_for(root: Path, board: str, *, variant="release", fx: DeployFixture | None = None,
               artifact_name: str | None = None, build_out: Path | None = None) -> Path:
    """out/demo/<board>-<variant>/deploy as `buildctl build` leaves it."""
    fx = fx or DeployFixture(machine=board, image_types=("uefiimg", "mender"))
    deploy = (build_out or root / "out" / "demo") / f"{board}-{variant}" / "deploy"
    write_deploy(deploy, fx, mender_writer(artifact_name or f"demo-1.0-{board}", [board]))
    return deploy


def device_tested(board_dir: Path, verdict: str = "passed") -> Path:
    """The devtest-report.json `buildctl test` leaves in a board's output dir after booting
    its deploy image (written with the report module, as the runner writes it): the release
    gate's input for tests that are not about the device test itself."""
    from buildctl.devtest import report

    image = next(p for p in sorted((board_dir / "deploy").iterdir())
                 if p.suffix in (".uefiimg", ".wic", ".sdimg", ".img"))
    steps = [report.Step("boot", "passed"), report.Step("login", "passed"),
             report.Step("kernel", "passed" if verdict == "passed" else "failed")]
    run = report.Run(product="demo", board=board_dir.name.rsplit("-", 1)[0], runner="qemu",
                     target={"image": str(image)}, steps=steps,
                     facts={"image_sha256": report.sha256_file(image)})
    path = board_dir / report.REPORT_NAME
    report.write(run, json_path=path)
    return path
