"""Release gate: every .mender of a board is fully valid, for the right devices, and signed.

Called by build/release code; returns findings instead of raising so that one run reports
every bad artifact at once.
"""
from __future__ import annotations

import os
from collections.abc import Iterable

from buildctl.errors import UserError
from buildctl.findings import Finding
from buildctl.ota.mender.clients import client_problem, parse_version
from buildctl.ota.mender.errors import ArtifactError
from buildctl.ota.mender.keys import load_public_key
from buildctl.ota.mender.reader import Limits, read_artifact


def check_artifacts(paths: Iterable[str | os.PathLike], *, board: str,
                    device_types: Iterable[str] | None,
                    artifact_name: str, require_signature: bool,
                    public_key_pem: bytes | str | None = None,
                    limits: Limits = Limits(), mender_client: str | None = None) -> list[Finding]:
    """Findings for every artifact that is invalid or does not match the board's release.

    device_types: exactly the compatible device types the artifacts must carry (order free);
    None when nobody knows them (they are then not compared; everything else still is).
    public_key_pem: PEM bytes, a path, or an env:/file: reference; when given, signatures are
    verified with it; require_signature without a key fails every artifact (a signature that
    nothing verified proves nothing). mender_client: the Mender client version on the board's
    devices; an artifact compressed in a way that client cannot read (zstd before 3.5) fails.
    """
    paths = [str(p) for p in paths]
    want = None if device_types is None else sorted(set(device_types))
    findings: list[Finding] = []
    if not paths:
        return [Finding(board, "artifact-missing", "no .mender artifact was produced")]
    if mender_client:
        try:
            parse_version(mender_client)
        except ValueError as exc:
            return [Finding(board, "artifact-client", str(exc))]
    key = None
    if public_key_pem is not None:
        try:
            key = load_public_key(public_key_pem.encode() if isinstance(public_key_pem, str)
                                  and "BEGIN" in public_key_pem else public_key_pem,
                                  "release verification key")
        except UserError as exc:
            return [Finding(board, "artifact-key", str(exc))]
    for path in paths:
        try:
            info = read_artifact(path, public_key=key, require_signature=require_signature,
                                 limits=limits)
        except ArtifactError as exc:
            signature = exc.member == "manifest.sig" or "not signed" in exc.reason
            findings.append(Finding(board, "artifact-signature" if signature else "artifact-invalid",
                                    str(exc), file=path))
            continue
        if mender_client and (problem := client_problem(info.compression, mender_client)):
            findings.append(Finding(board, "artifact-compression", f"{path}: {problem}",
                                    file=path))
        got = sorted(set(info.device_types))
        if want is not None and got != want:
            findings.append(Finding(board, "artifact-device-types",
                                    f"{path}: compatible device types {got} but the board "
                                    f"needs exactly {want}", file=path))
        if info.name != artifact_name:
            findings.append(Finding(board, "artifact-name",
                                    f"{path}: artifact name {info.name!r}, expected "
                                    f"{artifact_name!r}", file=path))
    return findings
