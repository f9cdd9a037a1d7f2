"""Every shipped board manifest (machines/*.yml) is complete, pinned and consistent.

These checks read the files as data (the lead's schema validation comes on top):
they catch the mistakes a board author makes by hand - a series without a pinned
commit, an abbreviated hash, storage that leaves no room for the root
filesystems, a BitBake variable set twice through local_conf.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ._helpers import HEX40, SERIES, board_files, load_yaml, product_file

BOARD_KEYS = {"machine", "description", "series", "family", "tune", "repos", "mender",
              "local_conf", "packages", "machine_name_differs"}
REQUIRED = {"machine", "description", "series", "family", "repos", "mender"}
REPO_KEYS = {"url", "refs", "layers", "path"}
MENDER_KEYS = {"device_types", "bootloader", "image_types", "storage"}
STORAGE_KEYS = {"device", "total_mb", "boot_mb", "data_mb"}
BOOTLOADERS = {"u-boot", "grub-efi", "grub-bios", "tegra", "none"}
DISK_IMAGES = {"sdimg", "uefiimg", "biosimg", "gptimg", "ubimg", "tegraflash"}
DEVICE = re.compile(r"^/dev/(mmcblk\d+|sd[a-z]|vd[a-z]|hd[a-z]|nvme\d+n\d+)$")
# Variables the structured fields own (buildctl writes them); local_conf must not.
OWNED = {"MACHINE", "MENDER_STORAGE_DEVICE", "MENDER_STORAGE_TOTAL_SIZE_MB",
         "MENDER_BOOT_PART_SIZE_MB", "MENDER_DATA_PART_SIZE_MB", "MENDER_DEVICE_TYPE",
         "MENDER_DEVICE_TYPES_COMPATIBLE", "MENDER_FEATURES_ENABLE", "MENDER_FEATURES_DISABLE",
         "MENDER_ARTIFACT_NAME", "DISTRO"}
# The smallest rootfs slot that holds core-image-minimal + the Mender client with room
# to grow (core-image-minimal with Mender is around 60-100 MB).
MIN_ROOTFS_MB = 256
MIB = 1024 * 1024

BOARDS = board_files()


def _id(path: Path) -> str:
    return path.stem


def rootfs_slot_mb(storage: dict, alignment: int = 8 * MIB, uboot: bool = False) -> int:
    """Size of each rootfs slot as meta-mender computes it (mender_calculate_rootfs_size_kb):
    partitions rounded up to the alignment, partitioning overhead of two alignments'
    worth of KiB, and under U-Boot twice the aligned environment as reserved space."""
    def align(n: int) -> int:
        return -(-n // alignment) * alignment

    space = storage["total_mb"] * MIB
    space -= align(storage["boot_mb"] * MIB) + align(storage["data_mb"] * MIB)
    space -= 2 * (-(-alignment // 1024)) * 1024
    if uboot:
        space -= 2 * align(16 * 1024)  # default BOOTENV_SIZE 0x4000, two copies
    return (space // 2) // alignment * alignment // MIB


def test_there_are_enough_boards_and_families():
    boards = {p.stem for p in BOARDS}
    families = {load_yaml(p)["family"] for p in BOARDS}
    assert len(boards) >= 8, boards
    assert len(families) >= 4, families
    for needed in ("qemux86-64", "qemuarm64", "raspberrypi4-64", "raspberrypi5",
                   "beaglebone-yocto"):
        assert needed in boards


@pytest.mark.parametrize("path", BOARDS, ids=_id)
def test_board_passes_the_shipped_schema_and_loader(path: Path):
    from buildctl.manifest import load_board

    board = load_board(path)
    assert board.name == path.stem and board.machine and board.series


@pytest.mark.parametrize("path", BOARDS, ids=_id)
def test_board_has_exactly_the_documented_fields(path: Path):
    board = load_yaml(path)
    assert REQUIRED <= board.keys(), f"{path.name}: missing {REQUIRED - board.keys()}"
    assert board.keys() <= BOARD_KEYS, f"{path.name}: unknown {board.keys() - BOARD_KEYS}"
    assert board["machine"] == path.stem or board.get("machine_name_differs") is True
    assert isinstance(board["description"], str) and board["description"].strip()


@pytest.mark.parametrize("path", BOARDS, ids=_id)
def test_board_series_are_known_and_include_scarthgap(path: Path):
    series = load_yaml(path)["series"]
    assert isinstance(series, list) and series
    assert "scarthgap" in series, f"{path.name}: every board must support the scarthgap LTS"
    assert set(series) <= SERIES, f"{path.name}: unknown series {set(series) - SERIES}"
    assert len(series) == len(set(series))


@pytest.mark.parametrize("path", BOARDS, ids=_id)
def test_every_repo_pins_a_full_commit_for_every_declared_series(path: Path):
    board = load_yaml(path)
    for name, repo in board["repos"].items():
        assert repo.keys() <= REPO_KEYS, f"{path.name}: repos.{name}: unknown {repo.keys() - REPO_KEYS}"
        assert "url" in repo and "refs" in repo, f"{path.name}: repos.{name} must be remote and pinned"
        assert repo["url"].startswith("https://"), f"{path.name}: repos.{name}.url"
        for series in board["series"]:
            ref = repo["refs"].get(series)
            assert ref, f"{path.name}: repos.{name} has no ref for declared series {series}"
            assert set(ref) == {"branch", "commit"}, f"{path.name}: repos.{name}.refs.{series}"
            assert HEX40.match(str(ref["commit"])), f"{path.name}: repos.{name}.refs.{series}.commit"
            assert isinstance(ref["branch"], str) and ref["branch"]
        extra = set(repo["refs"]) - set(board["series"])
        assert not extra, f"{path.name}: repos.{name} pins series the board does not declare: {extra}"
        layers = repo.get("layers", ["."])
        assert layers and all(isinstance(layer, str) and not layer.startswith("/") for layer in layers)


@pytest.mark.parametrize("path", BOARDS, ids=_id)
def test_mender_settings_fit_the_hardware_description(path: Path):
    board = load_yaml(path)
    mender = board["mender"]
    assert mender.keys() == MENDER_KEYS, f"{path.name}: mender keys {sorted(mender)}"
    assert mender["bootloader"] in BOOTLOADERS
    assert mender["device_types"] and all(isinstance(t, str) and t for t in mender["device_types"])
    types = mender["image_types"]
    assert "mender" in types, f"{path.name}: a board without the .mender artifact cannot be updated"
    disk = DISK_IMAGES & set(types)
    assert len(disk) == 1, f"{path.name}: exactly one disk image type expected, got {disk}"
    # The disk image must match the bootloader: GRUB-EFI wants a GPT UEFI image,
    # U-Boot boards here boot MBR SD/eMMC images, Tegra flashes a tegraflash bundle.
    if mender["bootloader"] == "grub-efi":
        assert disk == {"uefiimg"}
    if mender["bootloader"] == "u-boot":
        assert disk & {"sdimg", "gptimg", "ubimg"}
    if "tegraflash" in disk:
        assert "dataimg" in types, f"{path.name}: tegraflash needs the data image"
    storage = mender["storage"]
    assert storage.keys() == STORAGE_KEYS
    assert DEVICE.match(storage["device"]), f"{path.name}: storage.device {storage['device']}"
    for key in ("total_mb", "boot_mb", "data_mb"):
        assert isinstance(storage[key], int) and storage[key] >= 0, f"{path.name}: storage.{key}"


@pytest.mark.parametrize("path", BOARDS, ids=_id)
def test_storage_sizes_leave_room_for_two_root_filesystems(path: Path):
    mender = load_yaml(path)["mender"]
    slot = rootfs_slot_mb(mender["storage"], uboot=mender["bootloader"] == "u-boot")
    assert slot >= MIN_ROOTFS_MB, f"{path.name}: each rootfs slot would be {slot} MiB"


@pytest.mark.parametrize("storage,uboot,calc_kib", [
    # MENDER_CALC_ROOTFS_SIZE printed by real BitBake (`bitbake -e`, scarthgap pins,
    # see docs/real-bitbake-check.md) for four shipped boards' storage settings.
    ({"total_mb": 2048, "boot_mb": 16, "data_mb": 128}, False, 966656),     # qemux86-64
    ({"total_mb": 16384, "boot_mb": 128, "data_mb": 2048}, False, 7266304),  # genericx86-64
    ({"total_mb": 3584, "boot_mb": 64, "data_mb": 512}, True, 1523712),      # beaglebone-yocto
    ({"total_mb": 7168, "boot_mb": 100, "data_mb": 1024}, True, 3072000),    # raspberrypi4-64
])
def test_rootfs_formula_agrees_with_meta_mender(storage, uboot, calc_kib):
    assert rootfs_slot_mb(storage, uboot=uboot) * 1024 == calc_kib


def test_rootfs_formula_matches_a_hand_computed_layout():
    # 7168 MiB, boot 100 (-> 104 aligned), data 1024, overhead 16, U-Boot env 16:
    # (7168 - 104 - 1024 - 16 - 16) / 2 = 3004 -> rounded down to 8 MiB = 3000.
    assert rootfs_slot_mb({"total_mb": 7168, "boot_mb": 100, "data_mb": 1024}, uboot=True) == 3000
    assert rootfs_slot_mb({"total_mb": 1024, "boot_mb": 512, "data_mb": 512}) < 0


@pytest.mark.parametrize("path", BOARDS, ids=_id)
def test_local_conf_is_plain_strings_and_leaves_owned_variables_alone(path: Path):
    local_conf = load_yaml(path).get("local_conf", {}) or {}
    assert isinstance(local_conf, dict), f"{path.name}: local_conf is a VAR: value mapping"
    for var, value in local_conf.items():
        assert re.match(r"^[A-Za-z0-9_][A-Za-z0-9_\-:${}/.+]*$", var), f"{path.name}: {var!r}"
        assert isinstance(value, str), f"{path.name}: local_conf.{var} must be a string (quote it)"
        base = var.split(":")[0]
        assert base not in OWNED, f"{path.name}: local_conf.{var}: set through the manifest field"


def _product_core_repos() -> dict:
    return load_yaml(product_file())["repos"]


def test_boards_reusing_a_core_repo_pin_the_same_commits():
    core = _product_core_repos()
    for path in BOARDS:
        for name, repo in load_yaml(path)["repos"].items():
            if name not in core:
                continue
            assert repo["url"] == core[name]["url"], f"{path.name}: repos.{name}.url differs from the product"
            for series, ref in repo["refs"].items():
                assert ref == core[name]["refs"][series], f"{path.name}: repos.{name}.refs.{series}"


def test_one_repository_is_pinned_the_same_way_by_every_board():
    seen: dict[tuple[str, str], tuple[str, dict]] = {}
    for path in BOARDS:
        for name, repo in load_yaml(path)["repos"].items():
            for series, ref in repo["refs"].items():
                key = (repo["url"], series)
                if key in seen:
                    other, other_ref = seen[key]
                    assert ref == other_ref, f"{path.name} and {other} pin {name} ({series}) differently"
                else:
                    seen[key] = (path.name, ref)


def test_boards_without_own_bsp_repos_follow_every_core_series():
    # A board whose layers all come from the core repos has nothing holding it back:
    # it must declare every series the product's core repos are pinned for, so that
    # switching the product's series does not drop it for no reason.
    core_series = set.intersection(*(set(r["refs"]) for r in _product_core_repos().values()
                                     if "refs" in r))
    followers = set()
    for path in BOARDS:
        board = load_yaml(path)
        if not board["repos"]:
            assert set(board["series"]) == core_series, f"{path.name}: series {board['series']}"
        if "wrynose" in board["series"]:
            followers.add(path.stem)
    assert followers, "at least one board must be able to move to wrynose"
