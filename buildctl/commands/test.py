"""Boot a built image of an emulated board in QEMU and run the smoke checks on its console.

  buildctl test PRODUCT --board qemux86-64 [--variant V] [--out DIR]
  buildctl test PRODUCT --board qemux86-64 --image PATH
  buildctl test PRODUCT --board qemux86-64 --kernel VMLINUZ [--initrd FILE] [--append ARGS]
  buildctl test PRODUCT --board B --lava-job FILE        (write the LAVA job, do not run)
  buildctl test PRODUCT --board B --lava URL --image-url URL   (submit to a LAVA lab, follow it)
  buildctl test PRODUCT --board B --lava URL --image-url BASE/ (the lab fetches the deploy
      image from BASE/<board>-<variant>/deploy/<image>: where the out dir is served)

Without --image/--kernel the board's deploy outputs are booted (<out>/<board>-<variant>/deploy,
as `buildctl build` left them). QEMU uses KVM when /dev/kvm can be opened (--accel kvm|tcg to
choose). The serial console is read by buildctl: it waits for a login prompt, logs in and runs
the checks (the kernel booted, the Mender client reports the expected artifact name, no
systemd unit failed), then the OTA round trip (buildctl/devtest/ota.py): the board's .mender
from the deploy outputs (or --ota-artifact) is attached as a read-only disk, installed by the
device's Mender client, the VM reboots into the other rootfs, the update is committed; then
a failing update buildctl writes (a rootfs that does not mount) must be rolled back by the
boot loader. --no-ota leaves it out; --disk-interface when the image's kernel reads its disk
over another interface than the board's. Each step is recorded with its serial log excerpt:
--json prints the report, --junit FILE writes JUnit XML, --report FILE the JSON report
(default beside the deploy directory when the deploy outputs were booted or sent to the lab:
`buildctl release` reads it there, for this very image). Exit 0 when every step passed, 1 when
one failed (a boot that does not reach the prompt within --boot-timeout fails; the VM is
stopped), 2 on bad input.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from rich.markup import escape

from buildctl.commands._common import add_json_flag, console, path_arg, print_json
from buildctl.commands._product import add_product_args, open_product
from buildctl.devtest import checks as checks_mod
from buildctl.devtest import report
from buildctl.errors import EXIT_PROBLEMS, UserError

IMAGE_SUFFIXES = ("uefiimg", "wic", "sdimg", "img")


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = 0.0
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return v


def _megabytes(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size in MB (at least 64)")
    return v


def add_untested_flags(p, what: str) -> None:
    """--untested and --untested-board: the way past the device test gate of release,
    publish and rollout (buildctl.devtest.report.require_tested)."""
    p.add_argument("--untested", action="store_true",
                   help=f"{what} even boards whose image did not pass `buildctl test` "
                        "(the bundle records them as untested or failed)")
    p.add_argument("--untested-board", action="append", default=[], metavar="B",
                   help=f"{what} this board even if its image did not pass `buildctl test`; "
                        "the others stay gated (repeatable)")


def untested_of(args) -> bool | frozenset[str]:
    return True if args.untested else frozenset(args.untested_board)


def register(sub) -> None:
    p = sub.add_parser("test", help="device test stage: boot in QEMU (or a LAVA lab) and run smoke checks",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_product_args(p)
    p.add_argument("--out", type=path_arg, metavar="DIR",
                   help="build output directory (default: ./out/<product>)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", type=path_arg, help="disk image to boot instead of the deploy outputs")
    src.add_argument("--kernel", type=path_arg, help="kernel to boot directly (with --initrd)")
    p.add_argument("--initrd", type=path_arg, help="initramfs for --kernel")
    p.add_argument("--append", default="", help="more kernel command line for --kernel")
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                   help="QEMU accelerator (auto: KVM when /dev/kvm can be opened)")
    p.add_argument("--boot-timeout", type=_seconds, default=300.0, metavar="S",
                   help="seconds until the login prompt (default 300)")
    p.add_argument("--memory", type=_megabytes, default=512, metavar="MB", help="guest memory (default 512)")
    p.add_argument("--disk-interface", choices=("ide", "virtio", "scsi"), metavar="IF",
                   help="QEMU interface of the disks (ide, virtio, scsi; default: the board's)")
    p.add_argument("--ota-artifact", type=path_arg, metavar="FILE",
                   help="the .mender the OTA round trip installs (default: the board's, from "
                        "the deploy outputs)")
    p.add_argument("--no-ota", action="store_true", help="leave out the OTA round trip")
    p.add_argument("--junit", type=path_arg, metavar="FILE", help="write JUnit XML here")
    p.add_argument("--report", type=path_arg, metavar="FILE", help="write the JSON report here")
    p.add_argument("--lava-job", type=path_arg, metavar="FILE",
                   help="write the board's LAVA job definition here and stop")
    p.add_argument("--lava", metavar="URL", help="submit the LAVA job to this server and follow it")
    p.add_argument("--image-url", metavar="URL", help="where the LAVA lab downloads the image from")
    p.add_argument("--lava-token", metavar="REF",
                   help="LAVA API token (env:NAME or file:PATH; default env:LAVA_TOKEN when set)")
    p.add_argument("--lava-wait", type=_seconds, default=3600.0, metavar="S",
                   help="give up following the LAVA job after S seconds (default 3600)")
    p.add_argument("--lava-poll", type=_seconds, default=10.0, metavar="S",
                   help="seconds between looks at the LAVA job (default 10)")
    add_json_flag(p)
    p.set_defaults(func=run)


def _one_board(args, product):
    boards = product.select_boards(args.board)
    if len(boards) != 1:
        raise UserError("--board: name exactly one board to test "
                        f"(boards: {', '.join(product.boards)})")
    return boards[0]


def _deploy_dir(args, board, variant: str) -> Path:
    out = (args.out or Path.cwd() / "out" / args.product.stem)
    return out / f"{board.name}-{variant}" / "deploy"


def _deploy_image(args, product, board, variant: str) -> tuple[Path, Path]:
    """The disk image in the board's deploy outputs, and the board's output directory."""
    deploy = _deploy_dir(args, board, variant)
    bdir = deploy.parent
    if not deploy.is_dir():
        raise UserError(f"{deploy}: no deploy outputs (run `buildctl build {args.product} "
                        f"--board {board.name}` first, or give --image)")
    types = [t for t in board.mender.image_types if t in IMAGE_SUFFIXES] or list(IMAGE_SUFFIXES)
    for t in types:
        preferred = deploy / f"{product.target}-{board.machine}.{t}"
        if preferred.is_file():
            return preferred, bdir
        found = sorted(deploy.glob(f"*.{t}"))
        if found:
            return found[0], bdir
    raise UserError(f"{deploy}: no disk image ({', '.join('*.' + t for t in types)})")


def _ota_artifact(args, product, board, variant: str) -> Path | None:
    """--ota-artifact, else the board's .mender in its deploy outputs (the build's link name
    first), else None."""
    if args.ota_artifact:
        if not args.ota_artifact.is_file():
            raise UserError(f"{args.ota_artifact}: no such file")
        return args.ota_artifact
    deploy = _deploy_dir(args, board, variant)
    if args.kernel or args.image or not deploy.is_dir():
        return None
    for name in (f"{product.target}-{board.machine}.mender",
                 f"{product.target}-{board.machine}.rootfs.mender"):
        if (deploy / name).is_file():
            return deploy / name
    found = sorted(deploy.glob("*.mender"))
    return found[0] if found else None


def run(args) -> int:
    product = open_product(args)
    board = _one_board(args, product)
    variant = product.variant(args.variant).name
    checks = checks_mod.for_board(product, board.name, variant)
    if args.lava_job or args.lava:
        from buildctl.devtest import lava

        image, report_path = None, args.report
        if args.image:
            if not args.image.is_file():
                raise UserError(f"{args.image}: no such file")
            image = args.image
        elif not args.kernel and _deploy_dir(args, board, variant).is_dir():
            # the deploy outputs are what the lab boots: their report goes beside them, naming
            # the image by its sha256 (the release gate's input), and a --image-url ending in
            # "/" is the base the out dir is served from
            image, bdir = _deploy_image(args, product, board, variant)
            report_path = report_path or bdir / report.REPORT_NAME
            if args.image_url and args.image_url.endswith("/"):
                args.image_url += image.relative_to(bdir.parent).as_posix()
        return lava.run_command(args, product, board, variant, checks, image=image,
                                report_path=report_path)
    from buildctl.devtest import qemu

    machine = qemu.machine_for(board.name)
    report_path = args.report
    if args.kernel:
        for p in (args.kernel, args.initrd):
            if p is not None and not p.is_file():
                raise UserError(f"{p}: no such file")
        target = qemu.BootTarget(kernel=args.kernel.resolve(),
                                 initrd=args.initrd.resolve() if args.initrd else None,
                                 append=args.append)
    else:
        if args.initrd:
            raise UserError("--initrd: only with --kernel")
        if args.image:
            if not args.image.is_file():
                raise UserError(f"{args.image}: no such file")
            image = args.image
        else:
            image, bdir = _deploy_image(args, product, board, variant)
            report_path = report_path or bdir / report.REPORT_NAME
        target = qemu.BootTarget(image=image.resolve())
    kvm = None if args.accel == "auto" else args.accel == "kvm"
    t0 = time.monotonic()
    # what was tested, so that a release can tell this image from a rebuilt one
    tested = {"image_sha256": report.sha256_file(target.image)} if target.image else {}
    artifact = _ota_artifact(args, product, board, variant)
    with tempfile.TemporaryDirectory(prefix="buildctl-ota-") as work:
        ota_plan, why_not = None, None
        if args.no_ota:
            why_not = "--no-ota"
        elif "ota-update" not in checks_mod.types():
            why_not = None
        elif artifact is None:
            why_not = "no .mender to install (the deploy outputs have none; give --ota-artifact)"
        else:
            from buildctl.devtest import ota

            ota_plan = ota.prepare(artifact, Path(work))
            tested["ota_artifact_sha256"] = report.sha256_file(artifact)
            target = dataclasses.replace(target, extra=(artifact.resolve(), ota_plan.bad))
        target = dataclasses.replace(target, disk_if=args.disk_interface)
        steps, facts = qemu.run_session(machine, target, checks, boot_timeout=args.boot_timeout,
                                        memory_mb=args.memory, kvm=kvm, ota=ota_plan)
    if why_not and "ota-update" in checks_mod.types():
        steps.append(report.Step(name="ota-update", status="skipped", message=why_not))
    run_ = report.Run(product=product.name, board=board.name, runner="qemu",
                      target={k: [str(x) for x in v] if isinstance(v, tuple) else str(v)
                              for k, v in vars(target).items() if v},
                      steps=steps, facts={"variant": variant, **tested, **facts},
                      seconds=time.monotonic() - t0)
    report.write(run_, json_path=report_path, junit_path=args.junit)
    show(args, run_)
    return 0 if run_.verdict == "passed" else EXIT_PROBLEMS


def show(args, run_: report.Run) -> None:
    if args.json:
        print_json(run_.to_dict())
        return
    con = console()
    colours = {"passed": "green", "failed": "red", "skipped": "yellow"}
    for s in run_.steps:
        con.print(f"[{colours[s.status]}]{s.status:7}[/] [bold]{escape(s.name)}[/] "
                  f"{escape(s.message)} [dim]({s.seconds:.1f} s)[/]")
        if s.status == "failed" and s.serial:
            for line in s.serial.splitlines()[-10:]:
                con.print(f"    [dim]|[/] {escape(line)}")
    c = run_.counts()
    con.print(f"[{colours.get(run_.verdict, 'red')}]{run_.board}: {run_.verdict}[/] "
              f"({c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped, "
              f"{run_.seconds:.1f} s)")
