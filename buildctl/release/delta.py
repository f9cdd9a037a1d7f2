"""Delta artifacts: per board, the new root filesystem as a binary delta (VCDIFF, xdelta3)
against the old one, in a Mender update-module artifact of type ``rootfs-delta``.

The delta artifact stands in for the full rootfs-image artifact on a device that runs the old
image: it depends on the old image's ``rootfs-image.checksum`` (a device running anything else
is never offered it), provides and clears what the full artifact provides and clears, and
carries the sizes the device-side module (``layers/meta-buildctl``, recipe
``rootfs-delta-module``) needs to check the source before it writes anything. The full
artifact stays beside it.

Both root filesystems come out of the bundles' own ``.mender`` files (read and verified by the
format library), so a bundle needs no separate ``.ext4``. Every delta is decoded again here
before it is shipped: its result must hash to the new checksum (that is also the apply time
reported).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from buildctl.errors import UserError
from buildctl.ota.mender import (ArtifactError, ArtifactSpec, Compression, DataSource, PrivateKey,
                                 load_private_key, module_payload, read_artifact, write_artifact)
from buildctl.ota.mender.gate import check_artifacts
from buildctl.ota.mender.tario import TarStream
from buildctl.release import bundle as B
from buildctl.release.errors import ReleaseError

MODULE = "rootfs-delta"  # the update module's name: /usr/share/mender/modules/v3/rootfs-delta
PAYLOAD_NAME = "rootfs.vcdiff"
KIND = "mender-delta"  # the bundle file kind of a delta artifact
CHECKSUM = "rootfs-image.checksum"
# xdelta3: its default level (-9 took twice the time, 10x under load, for no smaller delta
# on the bench images), the whole old image as the source window (files move between two images made by
# mke2fs -d), and djw secondary compression: built into every xdelta3, whereas lzma (3% smaller
# on the bench) needs meta-oe's xdelta3 built with PACKAGECONFIG lzma on the device. The
# artifact stores the VCDIFF uncompressed (compressing it again gains nothing).
# docs/benchmarks.md has the measurements (bench/delta.py --compare).
XDELTA_LEVEL = "-3"
XDELTA_SECONDARY = "djw"
MAX_WINDOW = 1 << 30  # xdelta3's largest source window (-B)


@dataclass(frozen=True)
class BundleBoard:
    dir: str  # the board's directory in the bundle: <board>-<variant>
    board: str
    mender: Path  # the full rootfs-image artifact


@dataclass(frozen=True)
class Bundle:
    root: Path
    product: str
    version: str
    boards: dict[str, BundleBoard]  # by board name
    source_date_epoch: int | None = None  # the release's: the delta artifacts' member times


@dataclass
class DeltaFigures:
    board: str
    dir: str
    artifact: str  # file name of the delta artifact
    artifact_name: str
    source_checksum: str
    target_checksum: str
    source_size: int
    target_size: int
    full_size: int  # the full .mender
    delta_size: int  # the delta .mender
    ratio: float  # delta_size / full_size
    write_seconds: float  # xdelta3 encode + artifact write
    apply_seconds: float  # xdelta3 decode of the whole image (here, on this host)
    signed: bool

    def to_dict(self) -> dict:
        return asdict(self)


# -- bundles ----------------------------------------------------------------------------------

def open_bundle(path: Path, what: str) -> Bundle:
    """A release bundle's product, version and each board's full .mender (UserError if it is
    not a bundle)."""
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"{what} {root}: not a directory (a release bundle: "
                        f"release/<product>/<version>)")
    meta = root / B.RELEASE_JSON
    try:
        rel = json.loads(meta.read_text())
    except FileNotFoundError:
        raise UserError(f"{what} {root}: no {B.RELEASE_JSON}, not a release bundle") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{meta}: cannot read ({exc})") from None
    except RecursionError:
        raise UserError(f"{meta}: cannot read (nested too deeply)") from None
    if not isinstance(rel, dict) or not rel.get("product") or not rel.get("version"):
        raise UserError(f"{meta}: product/version: missing, not a release bundle")
    boards: dict[str, BundleBoard] = {}
    files = rel.get("files") or []
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise UserError(f"{meta}: files: not a list of files, not a release bundle")
    for b in rel.get("boards") or []:
        if not isinstance(b, dict) or not isinstance(b.get("board"), str):
            raise UserError(f"{meta}: boards: an entry without a board name")
        d = b.get("dir") or b["board"]
        if not isinstance(d, str) or "/" in d or d in (".", ".."):  # deltas are written there
            raise UserError(f"{meta}: board {b['board']}: dir {d!r} is not a directory name "
                            "of the bundle")
        menders = [f["path"] for f in files if f.get("kind") == "mender"
                   and isinstance(f.get("path"), str) and f["path"].split("/", 1)[0] == d]
        if any(".." in m.split("/") for m in menders):  # read from inside the bundle only
            raise UserError(f"{meta}: board {b['board']}: a .mender path with '..' in it, "
                            "not a file of the bundle")
        if len(menders) != 1:
            raise UserError(f"{meta}: board {b.get('board')}: {len(menders)} full .mender "
                            f"artifacts listed, expected 1")
        mender = root / menders[0]
        if not mender.is_file():
            raise UserError(f"{what} {root}: {menders[0]}: listed in {B.RELEASE_JSON} but missing")
        boards[b["board"]] = BundleBoard(d, b["board"], mender)
    sde = rel.get("source_date_epoch")
    return Bundle(root, str(rel["product"]), str(rel["version"]), boards,
                  sde if isinstance(sde, int) and not isinstance(sde, bool) else None)


def pair_boards(old: Bundle, new: Bundle, only: list[str]) -> list[str]:
    """The boards both bundles have (the ones named, each of which must be in both)."""
    if old.product != new.product:
        raise UserError(f"--from {old.root} is a bundle of product {old.product!r}, --to "
                        f"{new.root} of {new.product!r}: a delta needs two releases of one product")
    for b in only:
        for bundle, flag in ((old, "--from"), (new, "--to")):
            if b not in bundle.boards:
                raise UserError(f"--board {b}: not in the {flag} bundle {bundle.root} "
                                f"(it has: {', '.join(sorted(bundle.boards)) or 'no boards'})")
    names = only or sorted(set(old.boards) & set(new.boards))
    if not names:
        raise UserError(f"--from {old.root} and --to {new.root} have no board in common")
    return names


# -- one delta ---------------------------------------------------------------------------------

def xdelta3() -> str:
    exe = shutil.which("xdelta3")
    if not exe:
        raise UserError("xdelta3 not found: install Debian's xdelta3 (apt-get install xdelta3)")
    return exe


def _signature(path: Path) -> tuple[bytes, bytes | None]:
    """(manifest, manifest.sig or None) from the artifact's first members (nothing else read)."""
    manifest, sig = b"", None
    try:
        with open(path, "rb") as f:
            ts = TarStream(f, "artifact")
            for _ in range(3):
                hdr = ts.next()
                if hdr is None:
                    break
                if hdr.name == "manifest":
                    manifest = ts.read_all(1 << 20)
                elif hdr.name == "manifest.sig":
                    sig = ts.read_all(1 << 20)
    except (OSError, ArtifactError) as exc:
        raise UserError(f"{path}: not a readable Mender artifact ({exc})") from None
    return manifest, sig


def is_signed(path: Path) -> bool:
    return _signature(path)[1] is not None


def check_key(path: Path, key: PrivateKey | None) -> bool:
    """Whether path is signed; when it is, key must be the one that signed it (UserError)."""
    from buildctl.ota.mender import load_public_key

    manifest, sig = _signature(path)
    if sig is None:
        return False
    if key is None:
        raise UserError(f"{path}: the artifact is signed: give the key that signed it "
                        f"(--signing-key, the product's mender.signing_key) to sign its delta")
    try:
        load_public_key(key.public_pem(), "signing key").verify(manifest, sig)
    except ArtifactError:
        raise UserError(f"{path}: its signature does not verify with the signing key given: "
                        f"not the key that signed the new release") from None
    return True


def sha256_stream(cmd: list[str]) -> tuple[str, int]:
    """sha256 and length of a command's standard output (streamed)."""
    h = hashlib.sha256()
    n = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise ReleaseError(f"{cmd[0]} failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
    return h.hexdigest(), n


def _rootfs(info, where: str) -> tuple[str, dict, list[str], dict]:
    """(checksum, provides, clears, depends) of a full rootfs-image artifact's payload."""
    if len(info.payloads) != 1 or info.payloads[0].type != "rootfs-image":
        raise UserError(f"{where}: payload type {info.payload_types}, expected one rootfs-image")
    p = info.payloads[0]
    if len(p.files) != 1:
        raise UserError(f"{where}: {len(p.files)} payload files, expected one root filesystem")
    digest = p.files[0].sha256
    if p.provides.get(CHECKSUM, digest) != digest:
        raise UserError(f"{where}: provides {CHECKSUM} {p.provides[CHECKSUM]} but its root "
                        f"filesystem's sha256 is {digest}")
    return digest, dict(p.provides), list(p.clears_provides), dict(p.depends)


def encode(old: Path, new: Path, out: Path) -> None:
    window = min(MAX_WINDOW, max(1 << 20, old.stat().st_size))
    cmd = [xdelta3(), "-e", XDELTA_LEVEL, "-S", XDELTA_SECONDARY, "-B", str(window), "-f",
           "-s", str(old), str(new), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReleaseError(f"xdelta3 could not encode {new.name} against {old.name}: "
                           f"{proc.stderr.strip()}")


def make_delta(old_mender: Path, new_mender: Path, out: Path, *, board: str, dir: str = "",
               key: PrivateKey | None = None, mtime: int = 0,
               workdir: Path | None = None) -> DeltaFigures:
    """Write the delta artifact of new_mender against old_mender to out (atomically).

    When new_mender is signed, key must be the key that signed it (checked) and the delta is
    signed with it; an unsigned new_mender gives an unsigned delta."""
    signed = check_key(new_mender, key)
    pub = None
    if signed:
        from buildctl.ota.mender import load_public_key
        pub = load_public_key(key.public_pem(), "signing key")
    with tempfile.TemporaryDirectory(prefix=".delta-", dir=workdir or out.parent) as tmp:
        t = Path(tmp)
        try:
            new_info = read_artifact(new_mender, public_key=pub, extract_to=t / "new")
        except ArtifactError as exc:
            if signed and exc.member == "manifest.sig":
                raise UserError(f"{new_mender}: its signature does not verify with the signing "
                                f"key given: not the key that signed the new release") from None
            raise UserError(str(exc)) from None
        try:
            old_info = read_artifact(old_mender, extract_to=t / "old")
        except ArtifactError as exc:
            raise UserError(str(exc)) from None
        new_sum, provides, clears, depends = _rootfs(new_info, str(new_mender))
        old_sum, _, _, _ = _rootfs(old_info, str(old_mender))
        if set(old_info.device_types).isdisjoint(new_info.device_types):
            raise UserError(f"{old_mender} is for devices {old_info.device_types}, {new_mender} "
                            f"for {new_info.device_types}: no device runs both")
        old_img = t / "old" / "0000" / old_info.payloads[0].files[0].name
        new_img = t / "new" / "0000" / new_info.payloads[0].files[0].name
        vcdiff = t / PAYLOAD_NAME
        start = time.monotonic()
        encode(old_img, new_img, vcdiff)
        provides[CHECKSUM] = new_sum
        provides.setdefault("rootfs-image.version", new_info.name)
        meta = {"encoding": "vcdiff", "source_size": str(old_img.stat().st_size),
                "target_size": str(new_img.stat().st_size)}
        payload = module_payload(MODULE, [DataSource.from_path(vcdiff, PAYLOAD_NAME)],
                                 new_info.name, meta_data=meta, provides=provides,
                                 depends={**depends, CHECKSUM: old_sum}, clears_provides=clears,
                                 default_software_version=False, default_clears=False)
        spec = ArtifactSpec(name=new_info.name, device_types=list(new_info.device_types),
                            payload=payload, group=new_info.group,
                            depends_artifact_names=list(new_info.depends_artifact_names),
                            depends_groups=list(new_info.depends_groups),
                            compression=Compression("none"))
        try:
            write_artifact(spec, out, key=key if signed else None, mtime=mtime)
        except ArtifactError as exc:
            raise ReleaseError(f"{out}: {exc}") from None
        write_s = time.monotonic() - start
        start = time.monotonic()
        got, size = sha256_stream([xdelta3(), "-d", "-c", "-s", str(old_img), str(vcdiff)])
        apply_s = time.monotonic() - start
        if got != new_sum or size != new_img.stat().st_size:
            out.unlink(missing_ok=True)
            raise ReleaseError(f"{board}: the delta decodes to sha256 {got}, not the new root "
                               f"filesystem's {new_sum}")
        findings = check_artifacts([out], board=board, device_types=new_info.device_types,
                                   artifact_name=new_info.name, require_signature=signed,
                                   public_key_pem=key.public_pem() if signed else None)
        errors = [f for f in findings if f.severity == "error"]
        if errors:
            out.unlink(missing_ok=True)
            raise ReleaseError(f"{board}: delta artifact gate: {errors[0].message}")
        full, dsize = new_mender.stat().st_size, out.stat().st_size
        return DeltaFigures(board=board, dir=dir, artifact=out.name,
                            artifact_name=new_info.name, source_checksum=old_sum,
                            target_checksum=new_sum, source_size=old_img.stat().st_size,
                            target_size=new_img.stat().st_size, full_size=full,
                            delta_size=dsize, ratio=round(dsize / full, 4) if full else 0.0,
                            write_seconds=round(write_s, 3), apply_seconds=round(apply_s, 3),
                            signed=signed)


def delta_file_name(full: str, old_version: str) -> str:
    """``<stem>.mender`` -> ``<stem>.delta-from-<old version>.mender`` (beside the full one)."""
    stem = full[:-len(".mender")] if full.endswith(".mender") else full
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in old_version)
    return f"{stem}.delta-from-{safe}.mender"


# -- `release delta --from OLD --to NEW` -------------------------------------------------------

@dataclass
class DeltaRun:
    old: Path
    new: Path
    out: Path  # deltas land in <out>/<board dir>/ (default <new bundle>-deltas)
    boards: list[str]
    signing_key: str | None = None  # env:/file: reference
    source_date_epoch: int | None = None  # default: the new bundle's


def run_delta(run: DeltaRun, on_board=None) -> dict:
    """Every board's delta into a staging directory renamed to run.out when all succeeded."""
    old = open_bundle(run.old, "--from")
    new = open_bundle(run.new, "--to")
    if old.root.resolve() == new.root.resolve() or old.version == new.version:
        raise UserError(f"--from {old.root} and --to {new.root} are the same release "
                        f"({new.product} {new.version}): a delta needs two versions")
    names = pair_boards(old, new, run.boards)
    key = load_private_key(run.signing_key, "--signing-key") if run.signing_key else None
    xdelta3()
    for name in names:  # bad input fails before any work
        check_key(new.boards[name].mender, key)
    final = run.out
    if final.exists() and not final.is_dir():
        raise UserError(f"--out {final}: exists and is not a directory")
    staging = B.staging_dir(final)
    figures = []
    try:
        for name in names:
            nb, ob = new.boards[name], old.boards[name]
            if on_board:
                on_board(name)
            dest = staging / nb.dir / delta_file_name(nb.mender.name, old.version)
            dest.parent.mkdir(parents=True, exist_ok=True)
            figures.append(make_delta(ob.mender, nb.mender, dest, board=name, dir=nb.dir,
                                      key=key,
                                      mtime=run.source_date_epoch or new.source_date_epoch or 0,
                                      workdir=staging))
        report = {"product": new.product, "from": old.version, "to": new.version,
                  "boards": [f.to_dict() for f in figures],
                  "skipped": sorted((set(old.boards) ^ set(new.boards)) - set(names))}
        B.write_text(staging / "delta.json", B.dump_json(report))
        B.normalise_modes(staging)
        B.commit(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report["out"] = str(final)
    return report
