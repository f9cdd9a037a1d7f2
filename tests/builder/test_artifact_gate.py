"""A board's build fails when a .mender it produced is not for exactly its devices/name."""
from __future__ import annotations

from pathlib import Path

from buildctl.builder.report import BoardReport
from buildctl.release.gate import BoardRelease, gate_board
from buildctl.ota.mender.writer import ArtifactSpec, rootfs_payload, write_artifact


def _deploy(tmp_path: Path, name: str, device_types: list[str]) -> BoardReport:
    deploy = tmp_path / "deploy"
    deploy.mkdir(exist_ok=True)
    image = tmp_path / "rootfs.ext4"
    image.write_bytes(b"\0" * 4096)
    out = deploy / "core-image-minimal-qemux86-64.mender"
    write_artifact(ArtifactSpec(name=name, device_types=device_types,
                                payload=rootfs_payload(image, name)), out)
    rep = BoardReport(board="qemux86-64", machine="qemux86-64", variant="release", mode="build")
    rep.deploy_dir = str(deploy)
    rep.deploy = [{"path": out.name, "size": out.stat().st_size},
                  {"path": "core-image-minimal.mender", "link": out.name}]
    return rep


def _gate(rep: BoardReport, **release) -> list:
    result = gate_board(BoardRelease(board="qemux86-64", **release), Path(rep.deploy_dir),
                        rep.deploy)
    if result.artifacts:
        rep.artifacts = result.artifacts
    return result.errors


def test_matching_artifact_passes_and_is_listed(tmp_path):
    rep = _deploy(tmp_path, "demo-1.0-qemux86-64", ["qemux86-64"])
    assert _gate(rep, device_types=("qemux86-64",), artifact_name="demo-1.0-qemux86-64") == []
    assert rep.artifacts == [{"path": "core-image-minimal-qemux86-64.mender", "problems": []}]


def test_extra_device_type_or_wrong_name_fails_the_board(tmp_path):
    rep = _deploy(tmp_path, "demo-1.0-qemux86-64", ["qemux86-64", "raspberrypi4"])
    problems = _gate(rep, device_types=("qemux86-64",), artifact_name="demo-1.0-qemux86-64")
    assert [p.code for p in problems] == ["artifact-device-types"]
    assert "core-image-minimal-qemux86-64.mender" in problems[0].message
    rep = _deploy(tmp_path, "gha_autobuild", ["qemux86-64"])
    problems = _gate(rep, device_types=("qemux86-64",), artifact_name="demo-1.0-qemux86-64")
    assert [p.code for p in problems] == ["artifact-name"]
    assert rep.artifacts[0]["problems"] and "gha_autobuild" in rep.artifacts[0]["problems"][0]


def test_signing_happens_on_the_host_and_the_gate_verifies_it(tmp_path, monkeypatch):
    import subprocess

    from buildctl.ota.mender import read_artifact

    key = tmp_path / "k.pem"
    subprocess.run(["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", str(key)],
                   check=True, capture_output=True)
    pub = subprocess.run(["openssl", "ec", "-in", str(key), "-pubout"], check=True,
                         capture_output=True).stdout
    rep = _deploy(tmp_path, "demo-1.0-qemux86-64", ["qemux86-64"])
    assert _gate(rep, device_types=("qemux86-64",), artifact_name="demo-1.0-qemux86-64",
                 signing_key=f"file:{key}", require_signed=True) == []
    from buildctl.ota.mender import load_public_key
    info = read_artifact(Path(rep.deploy_dir) / rep.artifacts[0]["path"],
                         public_key=load_public_key(pub), require_signature=True)
    assert info.name == "demo-1.0-qemux86-64"
    # the key comes from a reference that is not there: the board fails and says why
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    rep = _deploy(tmp_path, "demo-1.0-qemux86-64", ["qemux86-64"])
    (f,) = _gate(rep, device_types=("qemux86-64",), artifact_name="demo-1.0-qemux86-64",
                 signing_key="env:NO_SUCH_KEY", require_signed=True)
    assert f.code == "artifact-key" and "NO_SUCH_KEY" in f.message


def test_unsigned_artifact_fails_when_the_product_requires_signing(tmp_path):
    rep = _deploy(tmp_path, "demo-1.0-qemux86-64", ["qemux86-64"])
    problems = _gate(rep, device_types=("qemux86-64",), artifact_name="demo-1.0-qemux86-64",
                     require_signed=True)
    assert [p.code for p in problems] == ["artifact-signature"]


def test_build_refuses_a_missing_signing_key_before_building(tmp_path):
    import yaml

    from tests.conftest import run_cli
    from tests.helpers.products import simple_product, write_yaml

    path = simple_product(tmp_path / "ws")
    d = yaml.safe_load(path.read_text())
    d["mender"] = {"signing_key": "file:../keys/missing.pem", "require_signed": True}
    write_yaml(path, d)
    r = run_cli("build", str(path), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "missing.pem" in r.stderr
    assert "signed on this host" in r.stderr


def _listing(deploy: Path) -> list[dict]:
    import os

    return [{"path": p.name, "link": os.readlink(p)} if p.is_symlink()
            else {"path": p.name, "size": p.stat().st_size} for p in sorted(deploy.iterdir())]


def test_promised_image_types_must_be_deployed(tmp_path):
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "core-image-minimal-qemux86-64-20260101000000.uefiimg").write_bytes(b"disk")
    (deploy / "core-image-minimal-qemux86-64.uefiimg").symlink_to(
        "core-image-minimal-qemux86-64-20260101000000.uefiimg")
    (deploy / "core-image-minimal-qemux86-64.sdimg").symlink_to("gone.sdimg")  # dangling
    rel = BoardRelease(board="qemux86-64", machine="qemux86-64", images=("core-image-minimal",),
                       image_types=("uefiimg", "sdimg", "mender"))
    errors = gate_board(rel, deploy, _listing(deploy)).errors
    assert [e.code for e in errors] == ["artifact-missing", "artifact-missing"]
    assert "core-image-minimal-qemux86-64.sdimg was not produced" in errors[0].message
    assert "core-image-minimal-qemux86-64.mender was not produced" in errors[1].message


def test_only_the_artifact_this_build_linked_is_gated(tmp_path):
    """Earlier builds' versioned files stay in the deploy directory (as in OE); the gate
    checks what <image>-<machine>.mender points at."""
    rep = _deploy(tmp_path, "demo-0.9-qemux86-64", ["qemux86-64"])  # an old, other release
    deploy = Path(rep.deploy_dir)
    old = deploy / "core-image-minimal-qemux86-64.mender"
    old.rename(deploy / "core-image-minimal-qemux86-64-20250101000000.mender")
    image = tmp_path / "rootfs.ext4"
    write_artifact(ArtifactSpec(name="demo-1.0-qemux86-64", device_types=["qemux86-64"],
                                payload=rootfs_payload(image, "demo-1.0-qemux86-64")),
                   deploy / "core-image-minimal-qemux86-64-20260101000000.mender")
    (deploy / "core-image-minimal-qemux86-64.mender").symlink_to(
        "core-image-minimal-qemux86-64-20260101000000.mender")
    rel = BoardRelease(board="qemux86-64", device_types=("qemux86-64",), machine="qemux86-64",
                       artifact_name="demo-1.0-qemux86-64", images=("core-image-minimal",),
                       image_types=("mender",))
    result = gate_board(rel, deploy, _listing(deploy))
    assert result.errors == []
    assert [a["path"] for a in result.artifacts] == [
        "core-image-minimal-qemux86-64-20260101000000.mender"]


def test_every_mender_board_promises_its_update_artifact():
    """A board whose manifest leaves device types to the layers still owes a .mender."""
    from buildctl.builder.jobs import promised_types
    from buildctl.manifest.model import Board, BoardMender

    def board(device_types=(), image_types=()):
        return Board(name="b", machine="m", series=("scarthgap",), repos={}, local_conf={},
                     mender=BoardMender(device_types=device_types, image_types=image_types))

    assert promised_types(board()) == ("mender",)
    assert promised_types(board(device_types=("m",), image_types=("sdimg",))) == ("sdimg", "mender")
    assert promised_types(board(image_types=("sdimg", "mender"))) == ("sdimg", "mender")
    # a manifest that lists its image types without 'mender' and names no device types builds
    # no update artifact on purpose (validate warns about it)
    assert promised_types(board(image_types=("sdimg",))) == ("sdimg",)
