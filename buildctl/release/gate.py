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
    device_types: tuple[str, ...] = ()  # exactly what every .mender must carry
    artifact_name: str | None = None  # the name every .mender must have
    signing_key: str | None = None  # env:/file: reference
    require_signed: bool = False


@dataclass
class GateResult:
    artifacts: list[dict] = field(default_factory=list)  # [{"path", "problems"}] per .mender
    errors: list[Finding] = field(default_factory=list)  # what fails the board


def mender_files(deploy_dir: Path, deploy: list[dict]) -> list[Path]:
    """The regular .mender files of a deploy listing (symlinks to them are not counted twice)."""
    return [deploy_dir / e["path"] for e in deploy
            if "size" in e and e["path"].endswith(".mender")]


def gate_board(release: BoardRelease, deploy_dir: Path, deploy: list[dict]) -> GateResult:
    """Sign (when the product has a key), then check every .mender of the deploy listing."""
    paths = mender_files(deploy_dir, deploy)
    if not paths or not release.device_types:
        return GateResult()
    public_pem = None
    if release.signing_key:
        try:
            public_pem = sign_board(paths, release.signing_key)
        except UserError as exc:
            return GateResult(errors=[Finding(release.board, "artifact-key", str(exc))])
    findings = check_artifacts(paths, board=release.board, device_types=list(release.device_types),
                               artifact_name=release.artifact_name,
                               require_signature=release.require_signed, public_key_pem=public_pem)
    artifacts = [{"path": str(p.relative_to(deploy_dir)),
                  "problems": [f.message for f in findings if str(f.file) == str(p)]}
                 for p in paths]
    return GateResult(artifacts, [f for f in findings if f.severity == "error"])
