"""Read, verify, sign and write Mender update artifacts (.mender, format version 3).

  buildctl artifact inspect FILE [--json] [--key PUB]
  buildctl artifact verify FILE [--key PUB] [--device-type T ...] [--artifact-name N]
                           [--extract DIR [--max-payload-bytes N]]
  buildctl artifact sign FILE --key PRIV [-o OUT] [--force]
  buildctl artifact write rootfs-image -f IMAGE -n NAME -t DEVICE [...] -o OUT
  buildctl artifact write module-image -T MODULE -n NAME -t DEVICE [-f FILE ...] -o OUT
  buildctl artifact write bootstrap-artifact -n NAME -t DEVICE [-p KEY:VALUE ...] -o OUT
  buildctl artifact dump FILE [--files DIR] [--scripts DIR] [--meta-data DIR] [--print-cmdline]
  buildctl artifact cat FILE:/PATH
  buildctl artifact cp FILE:/PATH DEST | buildctl artifact cp SRC FILE:/PATH [-k KEY] [--force]

mender-artifact 4.x spellings work too: -c/--compatible-types for -t/--device-type, dump,
cat and cp (files inside a rootfs-image's ext4 image, read and written with debugfs).

Keys are paths or references (env:NAME holding PEM, file:PATH). A private key may also stay in a
PKCS#11 token: --key 'pkcs11:token=T;object=LABEL?pin-source=env:PIN&module-path=/path/module.so'
(module-path may come from BUILDCTL_PKCS11_MODULE instead). Private keys and PINs are never printed.
verify exits 1 when the artifact is invalid or does not match, 2 on usage errors;
--require-signature needs --key (a signature nothing verified proves nothing). With --extract
the payload files may add up to at most 10 GiB (the Mender server's default artifact limit)
unless --max-payload-bytes says otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from buildctl.commands._common import add_json_flag, console, print_json
from buildctl.errors import EXIT_PROBLEMS, UserError
from buildctl.fsutil import special_file
from buildctl.ota.mender import (ArtifactError, ArtifactSpec, Compression, DataSource, Limits,
                                 bootstrap_payload, load_private_key, load_public_key,
                                 module_payload, read_artifact, rootfs_payload, sign_artifact,
                                 write_artifact)
from buildctl.ota.mender import modules
from buildctl.ota.mender.clients import client_problem, unknown_client_warning
from buildctl.ota.mender.writer import software_provides, source_date_epoch

EXTRACT_CAP = 10 * 1024 ** 3  # the Mender server's default maximum artifact size
SOFTWARE_FLAGS = ("software_name", "software_version", "software_filesystem")


def _kv(text: str) -> tuple[str, str]:
    key, sep, value = text.partition(":")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY:VALUE")
    return key, value


class _Ordered(argparse.Action):
    """store (or append, with nargs=None and append=True) that also records the order in
    which flags were given: mender-artifact lets a later --software-* flag win over an
    earlier -p with the same key, and an earlier one lose."""

    def __init__(self, *args, append: bool = False, **kwargs):
        self.append = append
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if self.append:
            items = list(getattr(namespace, self.dest, None) or [])
            items.append(values)
            setattr(namespace, self.dest, items)
        else:
            setattr(namespace, self.dest, values)
        order = getattr(namespace, "flag_order", None)
        if order is None:
            order = []
            setattr(namespace, "flag_order", order)
        order.append((self.dest, values))


def _software_overrides(args, key: str | None) -> bool:
    """Whether the software-version provide replaces a -p with the same key: yes when no -p
    names it, or when a --software-* flag comes after the last -p that does."""
    order = getattr(args, "flag_order", None) or []
    last_p = max((i for i, (d, v) in enumerate(order) if d == "provides" and v[0] == key),
                 default=None)
    if last_p is None:
        return True
    last_soft = max((i for i, (d, _) in enumerate(order) if d in SOFTWARE_FLAGS), default=-1)
    return last_soft > last_p


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


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
    v.add_argument("--extract", metavar="DIR", help="also write the verified payload files to DIR "
                   "(at most 10 GiB unless --max-payload-bytes says otherwise)")
    v.add_argument("--max-payload-bytes", type=_size, metavar="N",
                   help="refuse artifacts whose payload files add up to more than N bytes "
                   "(0: no limit; default: none, or 10 GiB with --extract)")
    add_json_flag(v)
    v.set_defaults(func=cmd_verify)

    s = sub.add_parser("sign", help="sign an existing artifact (RSA or ECDSA P-256)")
    s.add_argument("file")
    s.add_argument("--key", "-k", required=True, help="private key: PEM path, env:NAME, file:PATH or a pkcs11: URI")
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
    b = wsub.add_parser("bootstrap-artifact", help="an empty payload that seeds a device's "
                        "provides at first boot (no files, no state scripts)")
    _base_write(b)
    b.add_argument("--clears-provides", action="append", default=[])
    b.set_defaults(func=cmd_write)

    d = sub.add_parser("dump", help="write an artifact's files, state scripts and meta-data "
                       "into directories; print the write flags that recreate it")
    d.add_argument("file")
    d.add_argument("--files", metavar="DIR", help="the first payload's files")
    d.add_argument("--scripts", metavar="DIR", help="the state scripts")
    d.add_argument("--meta-data", metavar="DIR", help="the first payload's meta-data")
    d.add_argument("--print-cmdline", action="store_true",
                   help="print the write command line (long flags) that recreates the artifact")
    d.add_argument("--print0-cmdline", action="store_true",
                   help="the same, arguments separated by NUL characters")
    d.set_defaults(func=cmd_dump)

    c = sub.add_parser("cat", help="print a file from a rootfs-image artifact's filesystem")
    c.add_argument("ref", metavar="FILE:/PATH")
    c.set_defaults(func=cmd_cat)

    cp = sub.add_parser("cp", help="copy a file out of, or into, a rootfs-image artifact's "
                        "filesystem (copying in rewrites the artifact)")
    cp.add_argument("src", metavar="SRC", help="ARTIFACT:/path, a host file, or - (standard "
                    "input) when copying into an artifact")
    cp.add_argument("dst", metavar="DST")
    cp.add_argument("--key", "-k", help="private key to sign the rewritten artifact with "
                    "(PEM path, env:NAME, file:PATH or a pkcs11: URI)")
    cp.add_argument("--force", action="store_true",
                    help="write a signed artifact's changed copy unsigned when no key is given")
    cp.set_defaults(func=cmd_cp)


def _base_write(p) -> None:
    """The flags every write command takes (mender-artifact's names)."""
    p.add_argument("--artifact-name", "-n", required=True)
    p.add_argument("--device-type", "-t", "--compatible-types", "-c", action="append",
                   required=True, help="compatible device type (repeatable; -c/--compatible-"
                   "types is mender-artifact 4.x's name)")
    p.add_argument("--output-path", "-o", default="artifact.mender",
                   help="where to write the artifact (default: artifact.mender)")
    p.add_argument("--version", "-v", type=int, choices=[3], default=3,
                   help="artifact format version (only 3)")
    p.add_argument("--no-progress", action="store_true", help="accepted for mender-artifact "
                   "compatibility; buildctl shows no progress bar")
    p.add_argument("--artifact-name-depends", "-N", action="append", default=[])
    p.add_argument("--provides-group", "-g", default="")
    p.add_argument("--depends-groups", "-G", action="append", default=[])
    p.add_argument("--provides", "-p", type=_kv, action=_Ordered, append=True, default=[],
                   metavar="KEY:VALUE")
    p.add_argument("--depends", "-d", type=_kv, action="append", default=[], metavar="KEY:VALUE")
    p.add_argument("--key", "-k", help="private key to sign with: PEM path, env:NAME, file:PATH or a pkcs11: URI")
    p.add_argument("--compression", type=_compression, default=Compression("gzip"),
                   help="none, gzip[:LEVEL], lzma, zstd_fastest|zstd_fast|zstd_better|zstd_best")
    p.add_argument("--mender-client", metavar="VERSION",
                   help="Mender client version on the devices (e.g. 3.4, 5.0): refuse a "
                   "compression it cannot read")
    p.add_argument("--threads", type=int, default=2, help="compression threads (default 2)")


def _common_write(p) -> None:
    _base_write(p)
    p.add_argument("--clears-provides", action="append", default=[])
    p.add_argument("--no-default-clears-provides", action="store_true")
    p.add_argument("--no-default-software-version", action="store_true",
                   help="no rootfs-image[.NAME].version provide and no default clears")
    for flag in ("--software-name", "--software-version", "--software-filesystem"):
        p.add_argument(flag, action=_Ordered, default="")
    p.add_argument("--script", "-s", action="append", default=[],
                   help="state script file, or a directory of them (repeatable)")


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
    if info.unsigned_parts:
        c.print(f"  Not covered by the signature: {', '.join(info.unsigned_parts)}", markup=False)
    if info.augment:
        a = info.augment
        c.print(f"  Augmented: type {a.type}, provides {a.provides}, depends {a.depends}", markup=False)
        for f in a.files:
            c.print(f"    File {f.name}: {f.size} bytes, sha256 {f.sha256}", markup=False)


def cmd_verify(args) -> int:
    if not Path(args.file).is_file():  # bad input (2), not an invalid artifact (1)
        raise UserError(f"{args.file}: no such file" if not Path(args.file).exists()
                        else f"{args.file}: not a regular file")
    if args.require_signature and not args.key:
        raise UserError("artifact verify: --require-signature needs --key PUB: a signature "
                        "that nothing verified proves nothing")
    key = _public(args.key)
    cap, advice = args.max_payload_bytes, ""
    if cap is None and args.extract is not None:
        cap, advice = EXTRACT_CAP, "for --extract (raise it with --max-payload-bytes N, 0 for none)"
    problems: list[str] = []
    try:
        info = read_artifact(args.file, public_key=key,
                             require_signature=args.require_signature or key is not None,
                             extract_to=args.extract,
                             limits=Limits(data_bytes=cap or None, data_bytes_advice=advice))
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
        if info is not None and info.unsigned_parts:
            err.print(f"buildctl: warning: {args.file}: augmented; "
                      f"{'the signature does not cover' if info.signed else 'unsigned'}: "
                      f"{', '.join(info.unsigned_parts)}", markup=False)
        if not problems:
            console().print(f"{args.file}: OK ({info.name}, {info.signature})", markup=False)
    return EXIT_PROBLEMS if problems else 0


def cmd_sign(args) -> int:
    key = load_private_key(args.key, pkcs11_module=args.settings.pkcs11_module)
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


def _check_compression(args) -> None:
    """zstd that the devices' Mender client cannot read: refuse; client unknown: warn."""
    kind = args.compression.kind
    if args.mender_client:
        try:
            problem = client_problem(kind, args.mender_client)
        except ValueError as exc:
            raise UserError(f"--mender-client: {exc}") from None
        if problem:
            raise UserError(f"--compression {kind}: {problem}")
    elif (warning := unknown_client_warning(kind)):
        console(stderr=True).print(f"buildctl: warning: {warning}", markup=False)


def cmd_write(args) -> int:
    _check_compression(args)
    key = (load_private_key(args.key, pkcs11_module=args.settings.pkcs11_module)
           if args.key else None)
    with tempfile.TemporaryDirectory(prefix="buildctl-write-") as work:
        scripts: list[Path] = []
        if args.payload_kind == "bootstrap-artifact":
            payload = bootstrap_payload(provides=dict(args.provides), depends=dict(args.depends),
                                        clears_provides=args.clears_provides)
        else:
            module = args.type if args.payload_kind == "module-image" else ""
            soft = software_provides(args.artifact_name, default_name=module,
                                     software_name=args.software_name,
                                     software_version=args.software_version,
                                     software_filesystem=args.software_filesystem,
                                     default_software_version=not args.no_default_software_version)
            common = dict(provides=dict(args.provides), depends=dict(args.depends),
                          clears_provides=args.clears_provides, software_name=args.software_name,
                          software_version=args.software_version,
                          software_filesystem=args.software_filesystem,
                          default_software_version=not args.no_default_software_version,
                          default_clears=not args.no_default_clears_provides,
                          software_overrides=_software_overrides(args, next(iter(soft), None)))
            if args.payload_kind == "rootfs-image":
                payload = rootfs_payload(args.file, args.artifact_name,
                                         checksum_provide=not args.no_checksum_provide,
                                         legacy_checksum=args.legacy_rootfs_image_checksum,
                                         **common)
            else:
                files, meta = _module_files(args, work)
                payload = module_payload(args.type, files, args.artifact_name, meta_data=meta,
                                         **common)
            scripts = _scripts(args.script)
        spec = ArtifactSpec(name=args.artifact_name, device_types=args.device_type, payload=payload,
                            group=args.provides_group,
                            depends_artifact_names=args.artifact_name_depends,
                            depends_groups=args.depends_groups, scripts=scripts,
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


def cmd_dump(args) -> int:
    from buildctl.ota.mender.dump import dump_artifact, write_flags

    d = dump_artifact(args.file, files=args.files, scripts=args.scripts, meta_data=args.meta_data)
    if args.print0_cmdline:
        sys.stdout.write("".join(a + "\0" for a in write_flags(d)))
    elif args.print_cmdline:
        sys.stdout.write(" ".join(write_flags(d)) + "\n")
    return 0


def _bytes_atomic(path: Path, data: bytes) -> None:
    if (what := special_file(path)) is not None:
        raise UserError(f"artifact cp: {path}: is {what}; cp writes a file (use artifact cat "
                        "to write to a stream)")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                                   prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # named as the user named it, not as the temporary file
        raise UserError(f"artifact cp: {path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_cat(args) -> int:
    from buildctl.ota.mender.payloadfs import read_file, split_ref

    ref = split_ref(args.ref)
    if ref is None:
        raise UserError(f"artifact cat: {args.ref}: give ARTIFACT:/path with an existing artifact")
    data = read_file(*ref)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


def cmd_cp(args) -> int:
    from buildctl.ota.mender.payloadfs import copy_in, read_file, split_ref

    out_ref, in_ref = split_ref(args.src), split_ref(args.dst)
    if out_ref and in_ref:
        raise UserError("artifact cp: copying from one artifact into another is not supported")
    if out_ref:
        if args.key:
            raise UserError("artifact cp: --key only applies when copying into an artifact")
        dst = Path(args.dst)
        if dst.is_dir():
            dst = dst / Path(out_ref[1]).name
        if not dst.parent.is_dir():
            raise UserError(f"artifact cp: {dst.parent}: no such directory")
        _bytes_atomic(dst, read_file(*out_ref))
        return 0
    if not in_ref:
        raise UserError(f"artifact cp: neither {args.src} nor {args.dst} is ARTIFACT:/path "
                        "with an existing artifact")
    key = (load_private_key(args.key, pkcs11_module=args.settings.pkcs11_module)
           if args.key else None)
    with tempfile.TemporaryDirectory(prefix="buildctl-cp-stdin-") as tmp:
        src = args.src
        if src == "-":  # like mender-artifact: the new file's content from standard input
            src = str(Path(tmp) / Path(in_ref[1]).name)
            with open(src, "wb") as fh:
                fh.write(sys.stdin.buffer.read())
            os.chmod(src, 0o644)
        out = copy_in(src, in_ref[0], in_ref[1], key=key, force=args.force,
                      mtime=source_date_epoch(args.settings.source_date_epoch))
    console(stderr=True).print(f"wrote {out}" + (" (signed)" if key else ""), markup=False)
    return 0
