"""The artifact gate of one board: what it deployed is what its release promises."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from buildctl.errors import UserError
from buildctl.findings import Finding
from buildctl.ota.mender.gate import check_artifacts
from buildctl.release.sign import sign_board


@dataclass
class BoardRelease:
    """What a board's release promises (from the product manifest)."""

    board: str
    # exactly what every .mender must carry: the manifest's, else what the board's layers
    # compute (compose.device_types); None when neither is known (then not compared)
    device_types: tuple[str, ...] | None = None
    artifact_name: str | None = None  # the name every .mender must have
    signing_key: str | None = None  # env:/file: reference
    require_signed: bool = False
    machine: str = ""
    images: tuple[str, ...] = ()  # the image recipes built (kas target)
    image_types: tuple[str, ...] = ()  # what the manifest promises per image: mender, sdimg...


@dataclass
class GateResult:
    artifacts: list[dict] = field(default_factory=list)  # [{"path", "problems"}] per .mender
    errors: list[Finding] = field(default_factory=list)  # what fails the board


def mender_files(deploy_dir: Path, deploy: list[dict]) -> list[Path]:
    """The .mender files this build made: what the ``<image>-<machine>.mender`` links point at
    (earlier builds' files stay in the deploy directory, as in OE); all regular .mender files
    when there are no links."""
    files = [e["path"] for e in deploy if "size" in e and e["path"].endswith(".mender")]
    linked = [str(Path(e["path"]).parent / e["link"]) for e in deploy
              if "link" in e and e["path"].endswith(".mender")]
    chosen = [f for f in files if f in linked] if linked else files
    return [deploy_dir / f for f in dict.fromkeys(chosen)]


def missing_outputs(release: BoardRelease, deploy_dir: Path, deploy: list[dict]) -> list[Finding]:
    """One finding per promised ``<image>-<machine>.<type>`` the build did not deploy.

    OE names an image's outputs ``${IMAGE_LINK_NAME}.<type>`` (a link to the versioned file),
    where IMAGE_LINK_NAME is ``<image>-<machine>`` followed by IMAGE_NAME_SUFFIX (``.rootfs``
    by default, empty on Mender boards): any such name counts, when it leads to a file.
    """
    present = [e["path"] for e in deploy if (deploy_dir / e["path"]).is_file()]
    out = []
    for image in release.images:
        base = f"{image}-{release.machine}"
        for t in release.image_types:
            if not any(p.startswith(base) and p.endswith(f".{t}") and "/" not in p
                       for p in present):
                out.append(Finding(release.board, "artifact-missing",
                                   f"{base}.{t} was not produced (the board promises {t} "
                                   f"images: mender.image_types / mender.device_types)"))
    return out


def gate_board(release: BoardRelease, deploy_dir: Path, deploy: list[dict]) -> GateResult:
    """Check every promised output is there; sign (when the product has a key), then check
    every .mender of the deploy listing."""
    missing = missing_outputs(release, deploy_dir, deploy)
    paths = mender_files(deploy_dir, deploy)
    if not paths:
        return GateResult(errors=missing)
    public_pem = None
    if release.signing_key:
        try:
            public_pem = sign_board(paths, release.signing_key)
        except UserError as exc:
            return GateResult(errors=missing + [Finding(release.board, "artifact-key", str(exc))])
    findings = check_artifacts(paths, board=release.board, device_types=release.device_types,
                               artifact_name=release.artifact_name,
                               require_signature=release.require_signed, public_key_pem=public_pem)
    artifacts = [{"path": str(p.relative_to(deploy_dir)),
                  "problems": [f.message for f in findings if str(f.file) == str(p)]}
                 for p in paths]
    return GateResult(artifacts, missing + [f for f in findings if f.severity == "error"])
