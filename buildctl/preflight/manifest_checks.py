"""Checks that need only the manifests (no repository access): fast, run first."""
from __future__ import annotations

from buildctl.compose import localconf
from buildctl.compose.lockfile import Lock
from buildctl.findings import Finding
from buildctl.layers import bbconf
from buildctl.layers.checks import check_assignments
from buildctl.manifest.model import Board, Product

MiB = 1024 * 1024
DEFAULT_ALIGNMENT = 8 * MiB  # meta-mender's default partition alignment (MENDER_STORAGE_PEB_SIZE)
MIN_ROOTFS_MB = 64

# image type -> bootloaders it can work with
IMAGE_BOOTLOADERS = {"uefiimg": {"grub-efi"}, "biosimg": {"grub-bios"}, "ubimg": {"u-boot"},
                     "sdimg": {"u-boot", "grub-efi"}, "gptimg": {"u-boot", "grub-efi"},
                     "tegraflash": {"tegra"}}


def _f(board: Board, code: str, msg: str, *keypath, severity: str = "error") -> Finding:
    return Finding(board.name, code, msg, str(board.path or ""), board.line(*keypath), severity)


UBOOT_ENV_SIZE = 0x4000  # BOOTENV_SIZE default; meta-mender reserves two aligned copies


def rootfs_size_bytes(total_mb: int, boot_mb: int, data_mb: int, alignment: int,
                      uboot: bool = False) -> int:
    """meta-mender's rootfs size for each of the A/B partitions (see mender_calculate_rootfs_size_kb)."""
    def align(n: int) -> int:
        return -(-n // alignment) * alignment
    overhead = 2 * -(-alignment // 1024) * 1024
    space = total_mb * MiB - align(boot_mb * MiB) - align(data_mb * MiB) - overhead
    if uboot:
        space -= 2 * align(UBOOT_ENV_SIZE)
    return (space // 2) // alignment * alignment


def check_board(product: Product, board: Board, lock: Lock | None) -> list[Finding]:
    out: list[Finding] = []
    if board.name != board.machine and not board.machine_name_differs:
        out.append(_f(board, "board-name", f"file name says {board.name!r} but machine is "
                      f"{board.machine!r} (rename the file or set machine_name_differs: true)",
                      "machine"))
    if product.series not in board.series:
        out.append(_f(board, "series-unsupported", f"board cannot follow series {product.series}: "
                      f"it supports {', '.join(board.series)}", "series"))
    for name, repo in board.repos.items():
        if repo.extends:
            continue  # layers of a core repo: its refs are the product's
        for s in board.series:
            if s not in repo.refs:
                out.append(_f(board, "repo-series", f"repo {name} has no ref for series {s}, "
                              "which the board declares", "repos", name, "refs"))
    out += _floating(product, board, lock)
    out += _mender(product, board)
    out += duplicate_assignments(product, board)
    return out


def _floating(product: Product, board: Board, lock: Lock | None) -> list[Finding]:
    out = []
    for name, repo in list(product.repos.items()) + list(board.repos.items()):
        if repo.is_local or repo.extends:
            continue
        ref = repo.ref(product.series)
        if ref is None or ref.commit or (lock and lock.commit(name)):
            continue
        what = f"branch {ref.branch}" if ref.branch else f"tag {ref.tag}"
        source = board if name in board.repos else product
        out.append(Finding(board.name, "floating-ref", f"repo {name} follows {what} without a "
                           "commit and is not locked: run `buildctl lock`",
                           str(source.path), source.line("repos", name), "error"))
    return out


def _mender(product: Product, board: Board) -> list[Finding]:
    m = board.mender
    out = []
    # no mender.device_types: the layers' own value applies (meta-mender: MACHINE; BSP
    # integration layers may set theirs); validate prints the effective one per board
    s = m.storage
    if s.total_mb is None or s.data_mb is None:
        out.append(_f(board, "mender-storage", "mender.storage needs total_mb and data_mb "
                      "(the rootfs A/B size is derived from them)", "mender", "storage"))
    else:
        align = (s.alignment_kb or 0) * 1024 or DEFAULT_ALIGNMENT
        rootfs = rootfs_size_bytes(s.total_mb, s.boot_mb or 0, s.data_mb, align,
                                   uboot=m.bootloader == "u-boot")
        if rootfs < MIN_ROOTFS_MB * MiB:
            out.append(_f(board, "mender-storage", f"storage does not add up: total {s.total_mb} MB - "
                          f"boot {s.boot_mb or 0} MB - data {s.data_mb} MB leaves "
                          f"{max(rootfs, 0) // MiB} MB per rootfs (A and B), under {MIN_ROOTFS_MB} MB",
                          "mender", "storage", "total_mb"))
    if not s.device:
        out.append(_f(board, "mender-storage", "mender.storage.device is missing "
                      "(MENDER_STORAGE_DEVICE, e.g. /dev/mmcblk0)", "mender", "storage"))
    if m.bootloader:
        for t in m.image_types:
            ok = IMAGE_BOOTLOADERS.get(t)
            if ok and m.bootloader not in ok:
                out.append(_f(board, "mender-bootloader", f"image type {t} cannot boot with "
                              f"bootloader {m.bootloader} (needs {' or '.join(sorted(ok))})",
                              "mender", "image_types"))
    if "mender" not in m.image_types:
        out.append(_f(board, "mender-artifact", "image_types has no 'mender': no OTA artifact "
                      "would be built", "mender", "image_types", severity="warning"))
    out += signing(product, board)
    return out


def signing(product: Product, board: Board) -> list[Finding]:
    """Devices and releases must agree on signatures: a device without a verification key
    installs any artifact, one with a key refuses unsigned ones."""
    pm = product.mender
    where = (str(product.path), product.line("mender"))
    if pm.require_signed and not pm.signing_key:
        return [Finding(board.name, "mender-signing", "require_signed without signing_key", *where, "error")]
    if pm.signing_key and not pm.require_signed and not pm.verify_key:
        return [Finding(board.name, "mender-signing", "releases are signed but devices would accept "
                        "unsigned artifacts: set mender.require_signed (devices get the signing "
                        "key's public half) or mender.verify_key", *where, "error")]
    if pm.verify_key and not pm.signing_key:
        return [Finding(board.name, "mender-signing", "devices verify signatures (mender.verify_key) "
                        "but releases are not signed: set mender.signing_key, or every update will "
                        "be refused", *where, "error")]
    return []


def board_statements(product: Product, board: Board, variant) -> list[bbconf.Statement]:
    """The board's generated local.conf (one variant) as parsed statements, with their origins."""
    statements = []
    for assignments in localconf.sections(product, board, variant).values():
        for a in assignments:
            file, _, line = a.origin.rpartition(":")
            var, _, override = a.var.partition(":")
            statements.append(bbconf.Statement(
                kind="assign", var=var, override=override, op=a.op, value=a.value,
                filename=file if line.isdigit() else a.origin,
                line=int(line) if line.isdigit() else 0))
    return statements


def duplicate_assignments(product: Product, board: Board) -> list[Finding]:
    """The same variable set to different values by two places of one board's configuration."""
    out: list[Finding] = []
    for variant in product.variants.values():
        out += check_assignments(board.name, board_statements(product, board, variant))
    return sorted(set(out))
