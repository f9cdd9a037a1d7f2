"""The release pipeline: named steps, run in order by one loop.

Per board:  collect -> sign -> gate -> delta (with --delta-from) -> sbom -> cve
Per bundle: test (every board's image passed `buildctl test`, unless untested) ->
            bundle (release.json + SHA256SUMS) -> provenance (signed DSSE envelope)

Everything is written into a staging directory that is renamed into place at the end, so a
failing step leaves no bundle behind. Reading STEPS tells the whole flow.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives import serialization

from buildctl import __version__
from buildctl.ota.mender.gate import check_artifacts
from buildctl.release import bundle as B
from buildctl.release.collect import BoardOutputs, Collected, collect, place
from buildctl.release.cve import CvePolicy, CveSummary, policy_violations, read_cve_check
from buildctl.release.errors import ReleaseError
from buildctl.release.gate import BoardRelease, GateResult, mender_files
from buildctl.release.sbom.model import ImageSbom, Input, SbomContext
from buildctl.release.sign import sign_board

# names of what the sbom step writes in a board directory
SBOM_FILES = {"sbom.spdx.json": "sbom-spdx-2.3", "sbom.spdx3.json": "sbom-spdx-3.0.1",
              "sbom.cdx.json": "sbom-cyclonedx-1.6", "vex.cdx.json": "vex-cyclonedx-1.6",
              "cves.json": "cve-summary"}


@dataclass
class BoardSpec:
    board: str
    variant: str
    deploy_dir: Path
    outputs: BoardOutputs
    release: BoardRelease  # what the gate checks (device types, artifact name, signing)
    verify_key: str | None = None  # public key reference when the product has no signing key
    test_dir: Path | None = None  # where `buildctl test` left devtest-report.json for this board

    @property
    def key(self) -> str:
        return f"{self.board}-{self.variant}" if self.variant else self.board


@dataclass
class ReleaseSpec:
    product: str
    version: str
    series: str
    boards: list[BoardSpec]
    out_root: Path  # the bundle lands in <out_root>/<product>/<version>
    lock: dict[str, dict] = field(default_factory=dict)  # repo -> {commit, url}
    manifests: list[dict] = field(default_factory=list)  # [{path, sha256}]
    builder: dict = field(default_factory=dict)  # {image, digest, packages}
    source_date_epoch: int | None = None
    release_key: str | None = None  # env:/file: reference that signs the provenance
    cve_policy: CvePolicy = field(default_factory=CvePolicy)
    sbom_formats: tuple[str, ...] = ("spdx", "cyclonedx")
    delta_from: Path | None = None  # an older bundle: write each board's delta against it
    warnings: list[str] = field(default_factory=list)  # shown with the result, never fatal
    # release boards whose image did not pass a device test: True (--untested) for every
    # board, or the names of the boards that may (--untested-board)
    untested: bool | frozenset[str] = False

    @property
    def bundle_dir(self) -> Path:
        return self.out_root / self.product / self.version


@dataclass
class BoardState:
    spec: BoardSpec
    dir: Path  # the board's directory in the staging bundle
    files: list[Collected] = field(default_factory=list)
    public_pem: bytes | None = None
    gate: GateResult = field(default_factory=GateResult)
    sbom: ImageSbom | None = None
    cves: CveSummary | None = None
    kinds: dict[str, str] = field(default_factory=dict)  # bundle path -> kind
    delta: dict | None = None  # the delta artifact's figures (release.delta.DeltaFigures)
    steps: list[str] = field(default_factory=list)
    test: str = "untested"  # the device test verdict of the image: passed, failed, untested


@dataclass
class ReleaseResult:
    bundle_dir: Path
    boards: list[dict]
    files: int
    signed: bool
    warnings: list[str] = field(default_factory=list)


# -- per-board steps ----------------------------------------------------------------------------

def step_collect(run: ReleaseSpec, st: BoardState) -> None:
    st.files = collect(st.spec.deploy_dir, st.spec.outputs, st.spec.board)
    place(st.files, st.dir)
    for c in st.files:
        st.kinds[f"{st.spec.key}/{c.name}"] = c.kind


def _menders(st: BoardState) -> list[Path]:
    deploy = [{"path": c.name, "size": 0} for c in st.files if c.kind == "mender"]
    return mender_files(st.dir, deploy)


def step_sign(run: ReleaseSpec, st: BoardState) -> None:
    paths = _menders(st)
    if paths and st.spec.release.signing_key:
        st.public_pem = sign_board(paths, st.spec.release.signing_key)
    elif st.spec.verify_key:
        from buildctl.ota.mender import load_public_key
        st.public_pem = load_public_key(st.spec.verify_key, "mender.verify_key").key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def step_gate(run: ReleaseSpec, st: BoardState) -> None:
    """Every .mender carries exactly the board's device types and artifact name, and a valid
    signature when the product requires one (checked with the key that signed it)."""
    rel = st.spec.release
    paths = _menders(st)
    if not paths:
        st.gate = GateResult()
        return
    findings = check_artifacts(paths, board=rel.board, device_types=rel.device_types,
                               artifact_name=rel.artifact_name,
                               require_signature=rel.require_signed, public_key_pem=st.public_pem)
    st.gate = GateResult(
        [{"path": p.name, "problems": [f.message for f in findings if str(f.file) == str(p)]}
         for p in paths], [f for f in findings if f.severity == "error"])
    if st.gate.errors:
        raise ReleaseError(f"{rel.board}: artifact gate: {st.gate.errors[0].message}")


def step_delta(run: ReleaseSpec, st: BoardState) -> None:
    """With --delta-from: the board's delta artifact against the older bundle's, beside the
    full one, signed like it and gated like it."""
    if run.delta_from is None:
        return
    from buildctl.ota.mender import load_private_key
    from buildctl.release.delta import KIND, delta_file_name, make_delta, open_bundle

    old = open_bundle(run.delta_from, "--delta-from")
    full = next(c for c in st.files if c.kind == "mender")
    name = delta_file_name(full.name, old.version)
    key_ref = st.spec.release.signing_key
    key = load_private_key(key_ref, "mender.signing_key") if key_ref else None
    figures = make_delta(old.boards[st.spec.board].mender, st.dir / full.name, st.dir / name,
                         board=st.spec.board, dir=st.spec.key, key=key,
                         mtime=run.source_date_epoch or 0, workdir=st.dir.parent)
    st.delta = figures.to_dict()
    st.kinds[f"{st.spec.key}/{name}"] = KIND
    st.gate.artifacts.append({"path": name, "problems": []})


def check_delta_from(run: ReleaseSpec) -> None:
    """--delta-from names a bundle of this product holding every board released (bad input
    fails before any work)."""
    from buildctl.errors import UserError
    from buildctl.release.delta import open_bundle, xdelta3

    old = open_bundle(run.delta_from, "--delta-from")
    if old.product != run.product:
        raise UserError(f"--delta-from {run.delta_from}: a bundle of product {old.product!r}, "
                        f"not {run.product!r}")
    if old.version == run.version:  # the bundle being replaced: not a release devices run
        raise UserError(f"--delta-from {run.delta_from}: is version {old.version}, the one being "
                        "released: a delta needs an older release")
    for spec in run.boards:
        if not any(c == "mender" for c in spec.outputs.image_types):
            raise UserError(f"--delta-from: board {spec.board} makes no .mender artifact "
                            f"(mender.image_types)")
        if spec.board not in old.boards:
            raise UserError(f"--delta-from {run.delta_from}: has no board {spec.board} (it has: "
                            f"{', '.join(sorted(old.boards)) or 'no boards'})")
    xdelta3()


def sbom_context(run: ReleaseSpec, spec: BoardSpec) -> SbomContext:
    inputs = [Input("layer-repo", name, e.get("commit", ""), e.get("url"))
              for name, e in sorted(run.lock.items())]
    if run.builder.get("digest") or run.builder.get("image"):
        inputs.append(Input("builder-image", run.builder.get("image") or "builder",
                            run.builder.get("digest") or ""))
    inputs.append(Input("tool", "buildctl", __version__))
    return SbomContext(product=run.product, version=run.version, board=spec.board,
                       variant=spec.variant, created=iso_time(run.source_date_epoch),
                       inputs=inputs, tool_version=__version__)


def step_sbom(run: ReleaseSpec, st: BoardState) -> None:
    from buildctl.release.sbom.read_spdx3 import read_spdx3
    from buildctl.release.sbom.read_spdx22 import read_spdx22
    from buildctl.release.sbom.write_cyclonedx import build_cyclonedx
    from buildctl.release.sbom.write_spdx3 import build_spdx3
    from buildctl.release.sbom.write_spdx23 import build_spdx23

    src = next((c for c in st.files if c.kind == "oe-sbom"), None)
    if src is None:
        return
    path = st.dir / src.name
    st.sbom = read_spdx22(path) if src.suffix == "spdx.tar.zst" else read_spdx3(path)
    st.sbom.image_files = [(f"{st.spec.key}/{c.name}", B.sha256_file(st.dir / c.name))
                           for c in st.files if c.kind in ("image", "mender")]
    ctx = sbom_context(run, st.spec)
    docs = {}
    if "spdx" in run.sbom_formats:
        docs["sbom.spdx.json"] = build_spdx23(st.sbom, ctx)
        docs["sbom.spdx3.json"] = build_spdx3(st.sbom, ctx)
    if "cyclonedx" in run.sbom_formats:
        docs["sbom.cdx.json"] = build_cyclonedx(st.sbom, ctx)
    for name, doc in docs.items():
        B.write_text(st.dir / name, B.dump_json(doc))
        st.kinds[f"{st.spec.key}/{name}"] = SBOM_FILES[name]


def step_cve(run: ReleaseSpec, st: BoardState) -> None:
    from buildctl.release.vex import build_vex

    src = next((c for c in st.files if c.kind == "oe-cve"), None)
    if src is None:
        return
    source = "sbom-cve-check" if "sbom-cve-check" in src.suffix else "cve-check"
    st.cves = read_cve_check(st.dir / src.name, source)
    B.write_text(st.dir / "cves.json", B.dump_json(st.cves.to_dict()))
    st.kinds[f"{st.spec.key}/cves.json"] = SBOM_FILES["cves.json"]
    if "cyclonedx" in run.sbom_formats:
        vex = build_vex(st.cves, st.sbom, sbom_context(run, st.spec))
        B.write_text(st.dir / "vex.cdx.json", B.dump_json(vex))
        st.kinds[f"{st.spec.key}/vex.cdx.json"] = SBOM_FILES["vex.cdx.json"]
    bad = policy_violations(st.cves, run.cve_policy)
    if bad:
        ids = ", ".join(f"{i.id} ({i.package}, CVSS {i.score})" for i in bad[:5])
        raise ReleaseError(f"{st.spec.board}: CVE policy: {len(bad)} unpatched CVE(s) above "
                           f"CVSS {run.cve_policy.max_cvss}: {ids}")


BOARD_STEPS: list[tuple[str, Callable[[ReleaseSpec, BoardState], None]]] = [
    ("collect", step_collect), ("sign", step_sign), ("gate", step_gate),
    ("delta", step_delta), ("sbom", step_sbom), ("cve", step_cve),
]


# -- bundle steps -------------------------------------------------------------------------------

def step_test(run: ReleaseSpec, states: list[BoardState]) -> None:
    """The device test gate: each board's disk image (as collected, byte for byte) passed
    `buildctl test`, or the release is refused naming the boards (unless run.untested). The
    test report goes into the bundle beside the image, where publish and rollout read it."""
    from buildctl.devtest import report

    boards = [report.BoardImages(st.spec.key, st.spec.test_dir or st.dir,
                                 tuple(st.dir / c.name for c in st.files if c.kind == "image"),
                                 st.spec.board)
              for st in states]
    verdicts = report.require_tested(boards, untested=run.untested, action="release")
    for st in states:
        st.test = verdicts[st.spec.key]
        if st.test != "untested" and st.spec.test_dir is not None:
            name = report.REPORT_NAME
            B.write_text(st.dir / name, (st.spec.test_dir / name).read_text())
            st.kinds[f"{st.spec.key}/{name}"] = "devtest-report"


def iso_time(sde: int | None) -> str:
    return dt.datetime.fromtimestamp(sde or 0, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def board_summary(st: BoardState) -> dict:
    gate_ok = not st.gate.errors
    return {
        "board": st.spec.board, "variant": st.spec.variant, "machine": st.spec.outputs.machine,
        "image": st.spec.outputs.image, "dir": st.spec.key,
        "gate": {"verdict": "pass" if gate_ok else "fail",
                 "artifacts": [{"path": f"{st.spec.key}/{a['path']}", "problems": a["problems"],
                                "verdict": "fail" if a["problems"] else "pass"}
                               for a in st.gate.artifacts]},
        "sbom": None if st.sbom is None else {
            "source": st.sbom.source_format, "components": len(st.sbom.components),
            "repairs": list(st.sbom.repairs)},
        "cves": None if st.cves is None else {"source": st.cves.source,
                                              "counts": st.cves.counts,
                                              "unpatched": st.cves.unpatched},
        "test": {"verdict": st.test,
                 "report": f"{st.spec.key}/devtest-report.json" if st.test != "untested" else None},
        "steps": list(st.steps),
        "delta": st.delta,
    }


def step_bundle(run: ReleaseSpec, states: list[BoardState], staging: Path) -> list[dict]:
    B.normalise_modes(staging)
    kinds = {k: v for st in states for k, v in st.kinds.items()}
    files = []
    for rel in B.files_of(staging):
        p = staging / rel
        files.append({"path": rel, "sha256": B.sha256_file(p), "size": p.stat().st_size,
                      "kind": kinds.get(rel, "other"), "board": rel.split("/", 1)[0]})
    data = {
        "format_version": B.FORMAT_VERSION, "product": run.product, "version": run.version,
        "series": run.series, "boards": [board_summary(st) for st in states],
        "files": files,
        "lock": {k: v.get("commit") for k, v in sorted(run.lock.items())},
        "repositories": {k: dict(v) for k, v in sorted(run.lock.items())},
        "manifests": run.manifests,
        "builder": {"image": run.builder.get("image"), "digest": run.builder.get("digest"),
                    "packages": run.builder.get("packages")},
        "source_date_epoch": run.source_date_epoch,
        "buildctl_version": __version__,
        "cve_policy": {"max_cvss": run.cve_policy.max_cvss, "allow": list(run.cve_policy.allow)},
    }
    B.write_text(staging / B.RELEASE_JSON, B.dump_json(data))
    paths = B.files_of(staging)
    B.write_text(staging / B.SUMS, B.sums_text(staging, paths))
    B.normalise_modes(staging)
    return files


def step_provenance(run: ReleaseSpec, staging: Path) -> bool:
    from buildctl.ota.mender import load_private_key
    from buildctl.release.dsse import dumps
    from buildctl.release.provenance import FILE_NAME, ProvenanceInputs, envelope

    subjects = {rel: B.sha256_file(staging / rel) for rel in B.files_of(staging)}
    key = load_private_key(run.release_key, "release key") if run.release_key else None
    inputs = ProvenanceInputs(product=run.product, version=run.version,
                              boards=[b.key for b in run.boards], lock=run.lock,
                              manifests=run.manifests, builder=run.builder,
                              source_date_epoch=run.source_date_epoch,
                              tool_version=__version__, subjects=subjects)
    B.write_text(staging / FILE_NAME, dumps(envelope(inputs, key)))
    B.normalise_modes(staging)
    return key is not None


def run_release(run: ReleaseSpec, on_step: Callable[[str, str], None] | None = None) -> ReleaseResult:
    """Run every step; the bundle is renamed into place only when all of them succeeded."""
    on_step = on_step or (lambda board, step: None)
    if run.release_key:  # an unreadable key fails before any work
        from buildctl.ota.mender import load_private_key
        load_private_key(run.release_key, "release key")
    if run.delta_from is not None:
        check_delta_from(run)
    final = run.bundle_dir
    staging = B.staging_dir(final)
    try:
        states = []
        for spec in run.boards:
            st = BoardState(spec, staging / spec.key)
            st.dir.mkdir(parents=True)
            for name, step in BOARD_STEPS:
                if name == "delta" and run.delta_from is None:
                    continue  # an optional step: not shown, not listed as run
                on_step(spec.key, name)
                step(run, st)
                st.steps.append(name)
            states.append(st)
        on_step("", "test")
        step_test(run, states)
        on_step("", "bundle")
        files = step_bundle(run, states, staging)
        on_step("", "provenance")
        signed = step_provenance(run, staging)
        B.commit(staging, final)
    except BaseException:
        import shutil
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ReleaseResult(final, [board_summary(st) for st in states], len(files), signed,
                         list(run.warnings))
