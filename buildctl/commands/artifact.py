"""Read, verify, sign and write Mender update artifacts (.mender, format version 3).

  buildctl artifact inspect FILE [--json] [--key PUB]
  buildctl artifact verify FILE [--key PUB] [--device-type T ...] [--artifact-name N]
  buildctl artifact sign FILE --key PRIV [-o OUT] [--force]
  buildctl artifact write rootfs-image -f IMAGE -n NAME -t DEVICE [...] -o OUT
  buildctl artifact write module-image -T MODULE -n NAME -t DEVICE [-f FILE ...] -o OUT

Keys are paths or references (env:NAME holding PEM, file:PATH). Private keys are never printed.
verify exits 1 when the artifact is invalid or does not match, 2 on usage errors.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from buildctl.commands._common import add_json_flag, console, print_json
from buildctl.errors import EXIT_PROBLEMS, UserError
from buildctl.ota.mender import (ArtifactError, ArtifactSpec, Compression, DataSource, Limits,
                                 load_private_key, load_public_key, module_payload,
                                 read_artifact, rootfs_payload, sign_artifact, write_artifact)
from buildctl.ota.mender import modules
from buildctl.ota.mender.writer import source_date_epoch


def _kv(text: str) -> tuple[str, str]:
    key, sep, value = text.partition(":")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY:VALUE")
    return key, value


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return n


def _compression(text: str) -> Compression:
    try:
        return Compression.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers) -> None:
    p = subparsers.add_parser("artifact", help="read, verify, sign and write Mender artifacts",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="artifact_command", metavar="ACTION", required=True)

    i = sub.add_parser("inspect", help="show what an artifact says about itself (fully verified)")
    i.add_argument("file")
    i.add_argument("--key", "-k", help="public key (PEM path, env:NAME or file:PATH) to check the signature")
    add_json_flag(i)
    i.set_defaults(func=cmd_inspect)

    v = sub.add_parser("verify", help="verify checksums, structure, signature and expectations")
    v.add_argument("file")
    v.add_argument("--key", "-k", help="public key: the artifact must be signed with it")
    v.add_argument("--require-signature", action="store_true",
                   help="fail when the artifact is unsigned (implied by --key)")
    v.add_argument("--device-type", "-t", action="append", default=[],
                   help="device type the artifact must be compatible with (repeatable; each must be)")
    v.add_argument("--artifact-name", "-n", help="expected artifact name")
    v.add_argument("--extract", metavar="DIR", help="also write the verified payload files to DIR")
    v.add_argument("--max-payload-bytes", type=_positive, metavar="N",
                   help="refuse artifacts whose payload files add up to more than N bytes")
    add_json_flag(v)
    v.set_defaults(func=cmd_verify)

    s = sub.add_parser("sign", help="sign an existing artifact (RSA or ECDSA P-256)")
    s.add_argument("file")
    s.add_argument("--key", "-k", required=True, help="private key: PEM path, env:NAME or file:PATH")
    s.add_argument("--output-path", "-o", help="write here instead of replacing FILE")
    s.add_argument("--force", "-f", action="store_true", help="replace an existing signature")
    s.set_defaults(func=cmd_sign)

    w = sub.add_parser("write", help="write a new artifact")
    wsub = w.add_subparsers(dest="payload_kind", metavar="KIND", required=True)
    r = wsub.add_parser("rootfs-image", help="a full root filesystem image update")
    r.add_argument("--file", "-f", required=True, help="the filesystem image (e.g. rootfs.ext4)")
    r.add_argument("--no-checksum-provide", action="store_true",
                   help="do not provide rootfs-image.checksum")
    r.add_argument("--legacy-rootfs-image-checksum", action="store_true",
                   help="provide the checksum as rootfs_image_checksum")
    _common_write(r)
    r.set_defaults(func=cmd_write)
    m = wsub.add_parser("module-image", help="an update-module payload (single-file, directory, deb, docker, ...)")
    m.add_argument("--type", "-T", required=True, help="update module name")
    m.add_argument("--file", "-f", action="append", default=[], help="payload file (repeatable)")
    m.add_argument("--meta-data", "-m", help="meta-data JSON file (a JSON object)")
    m.add_argument("--dest-dir", help="single-file/directory modules: destination on the device; "
                   "-f FILE (single-file) or --directory DIR (directory) is packed as the module expects")
    m.add_argument("--directory", help="directory module: the tree to install at --dest-dir")
    m.add_argument("--permissions", help="single-file module: octal mode (default: the file's)")
    m.add_argument("--container", action="append", default=[],
                   help="docker module: container image to run (repeatable), becomes meta-data")
    _common_write(m)
    m.set_defaults(func=cmd_write)


def _common_write(p) -> None:
    p.add_argument("--artifact-name", "-n", required=True)
    p.add_argument("--device-type", "-t", action="append", required=True,
                   help="compatible device type (repeatable)")
    p.add_argument("--output-path", "-o", default="artifact.mender",
                   help="where to write the artifact (default: artifact.mender)")
    p.add_argument("--version", "-v", type=int, choices=[3], default=3,
                   help="artifact format version (only 3)")
    p.add_argument("--no-progress", action="store_true", help="accepted for mender-artifact "
                   "compatibility; buildctl shows no progress bar")
    p.add_argument("--artifact-name-depends", "-N", action="append", default=[])
    p.add_argument("--provides-group", "-g", default="")
    p.add_argument("--depends-groups", "-G", action="append", default=[])
    p.add_argument("--provides", "-p", type=_kv, action="append", default=[], metavar="KEY:VALUE")
    p.add_argument("--depends", "-d", type=_kv, action="append", default=[], metavar="KEY:VALUE")
    p.add_argument("--clears-provides", action="append", default=[])
    p.add_argument("--no-default-clears-provides", action="store_true")
    p.add_argument("--no-default-software-version", action="store_true")
    p.add_argument("--software-name", default="")
    p.add_argument("--software-version", default="")
    p.add_argument("--software-filesystem", default="")
    p.add_argument("--script", "-s", action="append", default=[],
                   help="state script file, or a directory of them (repeatable)")
    p.add_argument("--key", "-k", help="private key to sign with: PEM path, env:NAME or file:PATH")
    p.add_argument("--compression", type=_compression, default=Compression("gzip"),
                   help="none, gzip[:LEVEL], lzma, zstd_fastest|zstd_fast|zstd_better|zstd_best")
    p.add_argument("--threads", type=int, default=2, help="compression threads (default 2)")


def _public(key: str | None):
    return load_public_key(key) if key else None


def cmd_inspect(args) -> int:
    info = read_artifact(args.file, public_key=_public(args.key))
    if args.json:
        print_json(info.to_dict())
        return 0
    _show(info)
    return 0


def _show(info) -> None:
    c = console()
    sig = {"unsigned": "no signature", "verified": "signed and verified",
           "not-verified": "signed (no key given to verify)"}[info.signature]
    c.print(f"[bold]{info.path}[/bold]")
    rows = [("Name", info.name), ("Format", f"{info.format} {info.version}"), ("Signature", sig),
            ("Compatible devices", ", ".join(info.device_types)), ("Provides group", info.group),
            ("Depends on artifacts", ", ".join(info.depends_artifact_names)),
            ("Depends on groups", ", ".join(info.depends_groups)),
            ("Compression", info.compression), ("State scripts", ", ".join(info.scripts))]
    for k, v in rows:
        c.print(f"  {k}: {v}", markup=False)
    for p in info.payloads:
        c.print(f"  Payload {p.index}: type {p.type if p.type is not None else '(empty)'}", markup=False)
        for title, d in (("Provides", p.provides), ("Depends", p.depends)):
            c.print(f"    {title}:" + ("" if d else " nothing"), markup=False)
            for k, v in d.items():
                c.print(f"      {k}: {v}", markup=False)
        c.print(f"    Clears provides: {json.dumps(p.clears_provides)}", markup=False)
        c.print(f"    Meta-data: {json.dumps(p.meta_data) if p.meta_data is not None else 'nothing'}",
                markup=False)
        for f in p.files:
            c.print(f"    File {f.name}: {f.size} bytes, sha256 {f.sha256}", markup=False)
    if info.augment:
        a = info.augment
        c.print(f"  Augmented: type {a.type}, provides {a.provides}, depends {a.depends}", markup=False)
        for f in a.files:
            c.print(f"    File {f.name}: {f.size} bytes, sha256 {f.sha256}", markup=False)


def cmd_verify(args) -> int:
    if not Path(args.file).is_file():  # bad input (2), not an invalid artifact (1)
        raise UserError(f"{args.file}: no such file" if not Path(args.file).exists()
                        else f"{args.file}: not a regular file")
    key = _public(args.key)
    problems: list[str] = []
    try:
        info = read_artifact(args.file, public_key=key,
                             require_signature=args.require_signature or key is not None,
                             extract_to=args.extract,
                             limits=Limits(data_bytes=args.max_payload_bytes))
    except ArtifactError as exc:
        info = None
        problems.append(str(exc))
    if info is not None:
        missing = [t for t in args.device_type if t not in info.device_types]
        if missing:
            problems.append(f"{args.file}: not compatible with device type(s) "
                            f"{', '.join(missing)} (artifact: {', '.join(info.device_types)})")
        if args.artifact_name and info.name != args.artifact_name:
            problems.append(f"{args.file}: artifact name {info.name!r}, expected {args.artifact_name!r}")
    if args.json:
        print_json({"file": args.file, "ok": not problems, "problems": problems,
                    "artifact": info.to_dict() if info else None})
    else:
        err = console(stderr=True)
        for msg in problems:
            err.print(f"buildctl: verify failed: {msg}", markup=False)
        if not problems:
            console().print(f"{args.file}: OK ({info.name}, {info.signature})", markup=False)
    return EXIT_PROBLEMS if problems else 0


def cmd_sign(args) -> int:
    key = load_private_key(args.key)
    out = sign_artifact(args.file, key, args.output_path, force=args.force)
    console(stderr=True).print(f"signed {out} ({key.algorithm})", markup=False)
    return 0


def _scripts(items: list[str]) -> list[Path]:
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(x for x in p.iterdir() if x.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"state script {item}: no such file or directory")
    return out


def _meta(path: str | None):
    if not path:
        return None
    try:
        obj = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"meta-data {path}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's stack
        raise UserError(f"meta-data {path}: not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(obj, dict):
        raise UserError(f"meta-data {path}: the top level must be a JSON object")
    return obj


def cmd_write(args) -> int:
    key = load_private_key(args.key) if args.key else None
    common = dict(provides=dict(args.provides), depends=dict(args.depends),
                  clears_provides=args.clears_provides, software_name=args.software_name,
                  software_version=args.software_version,
                  software_filesystem=args.software_filesystem,
                  default_software_version=not args.no_default_software_version,
                  default_clears=not args.no_default_clears_provides)
    with tempfile.TemporaryDirectory(prefix="buildctl-write-") as work:
        if args.payload_kind == "rootfs-image":
            payload = rootfs_payload(args.file, args.artifact_name,
                                     checksum_provide=not args.no_checksum_provide,
                                     legacy_checksum=args.legacy_rootfs_image_checksum, **common)
        else:
            files, meta = _module_files(args, work)
            payload = module_payload(args.type, files, args.artifact_name, meta_data=meta, **common)
        spec = ArtifactSpec(name=args.artifact_name, device_types=args.device_type, payload=payload,
                            group=args.provides_group,
                            depends_artifact_names=args.artifact_name_depends,
                            depends_groups=args.depends_groups, scripts=_scripts(args.script),
                            compression=args.compression)
        out = write_artifact(spec, args.output_path, key=key, threads=max(1, args.threads),
                             mtime=source_date_epoch(args.settings.source_date_epoch))
    console(stderr=True).print(f"wrote {out}", markup=False)
    return 0


def _module_files(args, work: str):
    meta = _meta(args.meta_data)
    if args.container:
        if meta is not None:
            raise UserError("give either --meta-data or --container, not both")
        meta = modules.docker_meta(args.container)
    if args.dest_dir and args.type == "single-file":
        if len(args.file) != 1:
            raise UserError("single-file with --dest-dir takes exactly one -f FILE")
        try:
            perms = int(args.permissions, 8) if args.permissions else None
        except ValueError:
            raise UserError(f"--permissions: {args.permissions!r} is not an octal mode") from None
        return modules.single_file(args.file[0], args.dest_dir, permissions=perms), meta
    if args.type == "directory" and args.directory:
        if not args.dest_dir:
            raise UserError("the directory module needs --dest-dir")
        return modules.directory(args.directory, args.dest_dir, work), meta
    return [DataSource.from_path(f) for f in args.file], meta
