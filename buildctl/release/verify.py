"""Verify a bundle: every check a recipient can make without the build, first failure named.

Order: SHA256SUMS against the files (nothing missing, nothing extra, nothing changed),
release.json against SHA256SUMS, the provenance envelope (signature with --key, subjects =
every file with its digest), the gate verdicts, then SBOM validity with the official
validators.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from buildctl.release import bundle as B
from buildctl.release.dsse import EnvelopeError, open_envelope, verify_envelope
from buildctl.release.provenance import FILE_NAME, PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE


@dataclass
class VerifyResult:
    bundle: str
    ok: bool = True
    problem: str | None = None  # the first inconsistency
    checks: list[str] = field(default_factory=list)  # what passed, in order
    signed_by: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"bundle": self.bundle, "ok": self.ok, "problem": self.problem,
                "checks": self.checks, "signed_by": self.signed_by, "warnings": self.warnings}


class _Fail(Exception):
    pass


def verify_bundle(root: Path, public_key: str | None = None, *, sboms: bool = True) -> VerifyResult:
    root = Path(root)
    res = VerifyResult(str(root))
    try:
        _verify(root, public_key, sboms, res)
    except _Fail as exc:
        res.ok, res.problem = False, str(exc)
    return res


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise _Fail(f"{path.name}: missing ({what})") from None
    except ValueError as exc:
        raise _Fail(f"{path.name}: not JSON ({exc})") from None


def _verify(root: Path, public_key: str | None, sboms: bool, res: VerifyResult) -> None:
    if not root.is_dir():
        raise _Fail(f"{root}: not a directory")
    sums_path = root / B.SUMS
    if not sums_path.is_file():
        raise _Fail(f"{B.SUMS}: missing")
    sums = B.parse_sums(sums_path.read_text())
    present = set(B.files_of(root)) - {B.SUMS, FILE_NAME}
    for p in sorted(sums):
        if p not in present:
            raise _Fail(f"{p}: listed in {B.SUMS} but missing")
        got = B.sha256_file(root / p)
        if got != sums[p]:
            raise _Fail(f"{p}: sha256 {got} does not match {B.SUMS} ({sums[p]})")
    extra = sorted(present - set(sums))
    if extra:
        raise _Fail(f"{extra[0]}: not listed in {B.SUMS}")
    res.checks.append(f"{B.SUMS}: {len(sums)} files match")
    rel = _read_json(root / B.RELEASE_JSON, "release metadata")
    for f in rel.get("files", []):
        if sums.get(f["path"]) != f.get("sha256"):
            raise _Fail(f"{f['path']}: {B.RELEASE_JSON} says sha256 {f.get('sha256')}, "
                        f"{B.SUMS} says {sums.get(f['path'])}")
    listed = {f["path"] for f in rel.get("files", [])} | {B.RELEASE_JSON}
    missing = sorted(set(sums) - listed)
    if missing:
        raise _Fail(f"{missing[0]}: in {B.SUMS} but not in {B.RELEASE_JSON}")
    res.checks.append(f"{B.RELEASE_JSON}: consistent with {B.SUMS}")
    _verify_provenance(root, sums, public_key, res)
    for b in rel.get("boards", []):
        gate = b.get("gate") or {}
        if gate.get("verdict") != "pass":
            raise _Fail(f"{b.get('dir')}: artifact gate verdict is {gate.get('verdict')!r}")
        for a in gate.get("artifacts", []):
            if a.get("problems"):
                raise _Fail(f"{a['path']}: gate: {a['problems'][0]}")
    res.checks.append("gate: every artifact passed")
    if sboms:
        _verify_sboms(root, rel, res)


def _verify_provenance(root: Path, sums: dict[str, str], public_key: str | None,
                       res: VerifyResult) -> None:
    from buildctl.errors import UserError
    from buildctl.ota.mender import load_public_key

    env = _read_json(root / FILE_NAME, "provenance")
    try:
        ptype, payload = open_envelope(env)
    except EnvelopeError as exc:
        raise _Fail(f"{FILE_NAME}: {exc}") from None
    if ptype != PAYLOAD_TYPE:
        raise _Fail(f"{FILE_NAME}: payloadType {ptype!r}, expected {PAYLOAD_TYPE}")
    if public_key:
        try:
            key = load_public_key(public_key, "--key")
        except UserError as exc:
            raise _Fail(str(exc)) from None
        try:
            verify_envelope(env, key)
        except EnvelopeError as exc:
            raise _Fail(f"{FILE_NAME}: signature: {exc}") from None
        res.signed_by = key.label
        res.checks.append(f"{FILE_NAME}: signature verifies with {key.label}")
    elif env.get("signatures"):
        res.warnings.append(f"{FILE_NAME}: signed, but not checked (no --key given)")
    else:
        res.warnings.append(f"{FILE_NAME}: not signed")
    try:
        st = json.loads(payload)
    except ValueError:
        raise _Fail(f"{FILE_NAME}: the payload is not JSON") from None
    if st.get("_type") != STATEMENT_TYPE or st.get("predicateType") != PREDICATE_TYPE:
        raise _Fail(f"{FILE_NAME}: not an in-toto v1 statement with a SLSA v1 predicate")
    subjects = {s.get("name"): (s.get("digest") or {}).get("sha256") for s in st.get("subject", [])}
    want = dict(sums)
    want[B.SUMS] = B.sha256_file(root / B.SUMS)
    for path in sorted(want):
        if path not in subjects:
            raise _Fail(f"{path}: not a subject of the provenance")
        if subjects[path] != want[path]:
            raise _Fail(f"{path}: provenance subject digest {subjects[path]} does not match "
                        f"the file ({want[path]})")
    extra = sorted(set(subjects) - set(want))
    if extra:
        raise _Fail(f"{extra[0]}: a provenance subject that is not in the bundle")
    res.checks.append(f"{FILE_NAME}: {len(subjects)} subjects match")


def _verify_sboms(root: Path, rel: dict, res: VerifyResult) -> None:
    from buildctl.release.sbom.validate import VALIDATORS

    n = 0
    for f in rel.get("files", []):
        kind = f.get("kind", "")
        if not kind.startswith(("sbom-", "vex-")):
            continue
        fmt = kind.split("-", 1)[1] if kind.startswith("sbom-") else "cyclonedx-vex-1.6"
        validator = VALIDATORS.get(fmt)
        if validator is None:
            continue
        problems = validator(root / f["path"])
        if problems:
            raise _Fail(f"{f['path']}: invalid {fmt}: {problems[0]}")
        n += 1
    res.checks.append(f"SBOM: {n} documents valid")
