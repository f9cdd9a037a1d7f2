"""new-board end to end on real BSPs from the kit: three kinds of boards, compared with trees
written by hand, checked by real `kas dump`, `board check` and `validate`."""
from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from buildctl.cli import main
from tests.boards import kit
from tests.helpers import skips

FSL = "4143744bc82508f00395a0ffe30e624b2341176a"
FSL3 = "ce10c065119c2d4e359235c77aae7e0d843533ef"
COMMUNITY = "3fc71db2ad10034855c84b285127dade0d9a56ba"

CASES = {
    # U-Boot, SD card; the vendor include (nxp.yml) and meta-mender-nxp already exist upstream.
    "imx8mp-lpddr4-evk": """\
machine: imx8mp-lpddr4-evk
vendor: nxp
description: NXP i.MX 8M Plus EVK (LPDDR4), SD card
bsp:
  - url: https://github.com/Freescale/meta-freescale.git
    commit: %s
storage: {device: /dev/mmcblk1, total_mb: 7168}
integration_layer: meta-mender-nxp
""" % FSL,
    # UEFI x86-64: the MACHINE is in poky's meta-yocto-bsp, no BSP repository.
    "genericx86-64": """\
machine: genericx86-64
description: Generic x86-64 PC (UEFI, GRUB)
storage: {total_mb: 8192, data_mb: 1024}
""",
    # UBI on raw NAND: new vendor include, new integration layer, mender-full-ubi.
    "colibri-imx7-nand": """\
machine: colibri-imx7-nand
vendor: toradex
description: Toradex Colibri iMX7 (raw NAND, UBI)
bsp:
  - url: https://github.com/Freescale/meta-freescale.git
    commit: %s
  - url: https://github.com/Freescale/meta-freescale-3rdparty.git
integration_layer: meta-mender-toradex-nxp
storage: {total_mb: 512, data_mb: 64}
mtdids: nand0=gpmi-nand
""" % FSL,
}

# Whole files the contribution adds (written by hand from the rules in docs/boards.md).
NEW_FILES = {
    "imx8mp-lpddr4-evk": {
        "kas/imx8mp-lpddr4-evk.yml": f"""\
header:
  version: 14
  includes:
    - kas/include/mender-full.yml
    - kas/include/nxp.yml

repos:
  meta-freescale:
    url: https://github.com/Freescale/meta-freescale.git
    branch: scarthgap
    commit: {FSL}
  meta-freescale-3rdparty:
    commit: {FSL3}

machine: imx8mp-lpddr4-evk

local_conf_header:
  imx8mp-lpddr4-evk: |
    MENDER_FEATURES_ENABLE:append = " mender-uboot mender-image-sd"
    MENDER_FEATURES_DISABLE:append = " mender-grub mender-image-uefi"
    MENDER_STORAGE_DEVICE = "/dev/mmcblk1"
    MENDER_STORAGE_TOTAL_SIZE_MB = "7168"
    MENDER_BOOT_PART_SIZE_MB = "64"
    MENDER_DATA_PART_SIZE_MB = "512"
    IMAGE_FSTYPES:remove = "wic.bmap wic.gz"
""",
    },
    "genericx86-64": {
        "kas/genericx86-64.yml": """\
header:
  version: 14
  includes:
    - kas/include/mender-full.yml

machine: genericx86-64

local_conf_header:
  genericx86-64: |
    MENDER_STORAGE_DEVICE = "/dev/sda"
    MENDER_STORAGE_TOTAL_SIZE_MB = "8192"
    MENDER_BOOT_PART_SIZE_MB = "16"
    MENDER_DATA_PART_SIZE_MB = "1024"
    IMAGE_FSTYPES:remove = "wic wic.bmap"
""",
    },
    "colibri-imx7-nand": {
        "kas/colibri-imx7-nand.yml": """\
header:
  version: 14
  includes:
    - kas/include/mender-full-ubi.yml
    - kas/include/toradex.yml

machine: colibri-imx7-nand

local_conf_header:
  colibri-imx7-nand: |
    MENDER_STORAGE_TOTAL_SIZE_MB = "512"
    MENDER_DATA_PART_SIZE_MB = "64"
    MENDER_MTDIDS = "nand0=gpmi-nand"
    IMAGE_FSTYPES:remove = "wic.bmap wic.gz"
""",
        "kas/include/toradex.yml": f"""\
header:
  version: 14

repos:
  meta-freescale:
    url: https://github.com/Freescale/meta-freescale.git
    branch: scarthgap
    commit: {FSL}

  meta-freescale-3rdparty:
    url: https://github.com/Freescale/meta-freescale-3rdparty.git
    branch: scarthgap
    commit: {FSL3}

  meta-mender-community:
    layers:
      meta-mender-toradex-nxp:
""",
        "meta-mender-toradex-nxp/conf/layer.conf": """\
# Mender integration for boards of the meta-freescale-3rdparty BSP layer.

BBPATH .= ":${LAYERDIR}"

BBFILES += "${LAYERDIR}/recipes-*/*/*.bb \\
            ${LAYERDIR}/recipes-*/*/*.bbappend"

BBFILE_COLLECTIONS += "mender-toradex-nxp"
BBFILE_PATTERN_mender-toradex-nxp = "^${LAYERDIR}/"
BBFILE_PRIORITY_mender-toradex-nxp = "10"

LAYERDEPENDS_mender-toradex-nxp = "mender freescale-3rdparty"
LAYERSERIES_COMPAT_mender-toradex-nxp = "scarthgap"
""",
        "meta-mender-toradex-nxp/README.md": f"""\
# meta-mender-toradex-nxp

Mender integration for boards of the meta-freescale-3rdparty BSP layer.

## Supported boards

| Board | MACHINE | Bootloader | Storage | Mender Hub |
|---|---|---|---|---|
| Toradex Colibri iMX7 (raw NAND, UBI) | `colibri-imx7-nand` | u-boot | UBI raw flash | (post pending) |

## Dependencies

- https://github.com/Freescale/meta-freescale.git (branch `scarthgap`, commit `{FSL}`, layers: .)
- https://github.com/Freescale/meta-freescale-3rdparty.git (branch `scarthgap`, commit `{FSL3}`, layers: .)
- https://github.com/mendersoftware/meta-mender (branch `scarthgap`, layer meta-mender-core)

## Quick start

```
mkdir -p build-colibri-imx7-nand && cd build-colibri-imx7-nand
kas build ../kas/colibri-imx7-nand.yml
```
""",
    },
}

# Lines the contribution adds to files that exist upstream.
ADDED_LINES = {
    "imx8mp-lpddr4-evk": {
        ".github/workflows/build.yml": ["          - board: imx8mp-lpddr4-evk",
                                        "            experimental: true"],
        "meta-mender-nxp/README.md": [" - NXP i.MX 8M Plus EVK (LPDDR4), SD card (`imx8mp-lpddr4-evk`)"],
    },
    "genericx86-64": {
        ".github/workflows/build.yml": ["          - board: genericx86-64",
                                        "            experimental: true"],
    },
    "colibri-imx7-nand": {
        ".github/workflows/build.yml": ["          - board: colibri-imx7-nand",
                                        "            experimental: true"],
    },
}

MACHINES = {
    "imx8mp-lpddr4-evk": f"""\
# NXP i.MX 8M Plus EVK (LPDDR4), SD card
# Written by `buildctl new-board`; MACHINE conf: meta-freescale/conf/machine/imx8mp-lpddr4-evk.conf.
machine: imx8mp-lpddr4-evk
description: "NXP i.MX 8M Plus EVK (LPDDR4), SD card"
series: [scarthgap]
family: nxp
repos:
  meta-freescale:
    url: https://github.com/Freescale/meta-freescale.git
    refs:
      scarthgap: {{branch: "scarthgap", commit: {FSL}}}
    layers: [.]
  meta-mender-community:
    url: https://github.com/mendersoftware/meta-mender-community.git
    refs:
      scarthgap: {{branch: "scarthgap", commit: {COMMUNITY}}}
    layers: [meta-mender-nxp]
mender:
  device_types: [imx8mp-lpddr4-evk]
  bootloader: u-boot
  image_types: [sdimg, mender]
  storage:
    device: /dev/mmcblk1
    total_mb: 7168
    boot_mb: 64
    data_mb: 512
local_conf:
  IMAGE_FSTYPES:remove: "wic.bmap wic.gz"
""",
    "genericx86-64": """\
# Generic x86-64 PC (UEFI, GRUB)
# Written by `buildctl new-board`; MACHINE conf: meta-yocto/meta-yocto-bsp/conf/machine/genericx86-64.conf.
machine: genericx86-64
description: "Generic x86-64 PC (UEFI, GRUB)"
series: [scarthgap]
repos:
  meta-yocto: {layers: [meta-yocto-bsp]}
mender:
  device_types: [genericx86-64]
  bootloader: grub-efi
  image_types: [uefiimg, mender]
  storage:
    device: /dev/sda
    total_mb: 8192
    boot_mb: 16
    data_mb: 1024
local_conf:
  IMAGE_FSTYPES:remove: "wic wic.bmap"
""",
    "colibri-imx7-nand": f"""\
# Toradex Colibri iMX7 (raw NAND, UBI)
# Written by `buildctl new-board`; MACHINE conf: meta-freescale-3rdparty/conf/machine/colibri-imx7-nand.conf.
# Add meta-mender-toradex-nxp (meta-mender-community) to repos once the contribution is merged.
# UBI: storage.device is left to meta-mender's default (ubi0).
machine: colibri-imx7-nand
description: "Toradex Colibri iMX7 (raw NAND, UBI)"
series: [scarthgap]
family: toradex
repos:
  meta-freescale:
    url: https://github.com/Freescale/meta-freescale.git
    refs:
      scarthgap: {{branch: "scarthgap", commit: {FSL}}}
    layers: [.]
  meta-freescale-3rdparty:
    url: https://github.com/Freescale/meta-freescale-3rdparty.git
    refs:
      scarthgap: {{branch: "scarthgap", commit: {FSL3}}}
    layers: [.]
mender:
  device_types: [colibri-imx7-nand]
  bootloader: u-boot
  image_types: [ubimg, mender]
  storage:
    total_mb: 512
    boot_mb: 0
    data_mb: 64
local_conf:
  IMAGE_FSTYPES:remove: "wic.bmap wic.gz"
  MENDER_MTDIDS: "nand0=gpmi-nand"
""",
}


def _upstream(path: str) -> str | None:
    r = subprocess.run(["git", f"--git-dir={kit.KIT / kit.COMMUNITY}", "show", f"scarthgap:{path}"],
                       capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def _new_board(tmp: Path, board: str, *extra: str, capsys=None) -> tuple[int, str, str]:
    answers = tmp / f"{board}.answers.yml"
    if not answers.is_file() or answers.read_text() != CASES[board]:
        answers.write_text(CASES[board])
    rc = main(["new-board", "--answers", str(answers), "--repo-ref-dir", str(kit.KIT), "--offline",
               "--non-interactive", "--machines-dir", str(tmp / "machines"), "--out",
               str(tmp / "out" / board), *extra])
    out = capsys.readouterr() if capsys else None
    return rc, out.out if out else "", out.err if out else ""


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The three boards generated once, applied to one clone of the kit's community checkout."""
    kit.need_kit()
    tmp = tmp_path_factory.mktemp("newboard")
    checkout = tmp / "meta-mender-community"
    subprocess.run(["git", "clone", "-q", "-b", "scarthgap", str(kit.KIT / kit.COMMUNITY), str(checkout)],
                   check=True)
    for k, v in (("user.name", "Board Author"), ("user.email", "author@example.invalid")):
        subprocess.run(["git", "-C", str(checkout), "config", k, v], check=True)
    for board in CASES:
        assert _new_board(tmp, board, "--apply", str(checkout))[0] == 0
    return tmp, checkout


@pytest.mark.parametrize("board", sorted(CASES))
def test_generated_tree_matches_the_hand_written_one(generated, board):
    tmp, _ = generated
    contrib = tmp / "out" / board / "contribution"
    got = {p.relative_to(contrib).as_posix(): p.read_text() for p in contrib.rglob("*") if p.is_file()}
    assert set(got) == set(NEW_FILES[board]) | set(ADDED_LINES[board])
    for path, text in NEW_FILES[board].items():
        assert _upstream(path) is None, f"{path} exists upstream"
        assert got[path] == text, path
    for path, lines in ADDED_LINES[board].items():
        diff = difflib.ndiff(_upstream(path).splitlines(), got[path].splitlines())
        added = [l[2:] for l in diff if l.startswith("+ ")]
        removed = [l for l in difflib.ndiff(_upstream(path).splitlines(), got[path].splitlines())
                   if l.startswith("- ")]
        assert (added, removed) == (lines, []), path
    assert (tmp / "machines" / f"{board}.yml").read_text() == MACHINES[board]


@pytest.mark.parametrize("board", sorted(CASES))
def test_patch_applies_to_upstream_with_git_apply(generated, board, tmp_path):
    tmp, _ = generated
    clone = tmp_path / "c"
    subprocess.run(["git", "clone", "-q", "-b", "scarthgap", str(kit.KIT / kit.COMMUNITY), str(clone)], check=True)
    patch = tmp / "out" / board / "contribution.patch"
    r = subprocess.run(["git", "-C", str(clone), "apply", "--check", str(patch)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    subprocess.run(["git", "-C", str(clone), "apply", str(patch)], check=True)
    for path, text in NEW_FILES[board].items():
        assert (clone / path).read_text() == text


def test_apply_made_one_signed_off_conventional_commit_per_board(generated):
    _, checkout = generated
    log = subprocess.run(["git", "-C", str(checkout), "log", "--format=%s%x00%b%x01", "-3"],
                         capture_output=True, text=True, check=True).stdout
    commits = [c.strip("\n").split("\0") for c in log.split("\x01") if c.strip()]
    assert [s for s, _ in commits] == [f"feat: add {b} board" for b in reversed(list(CASES))]
    for _, body in commits:
        assert "Signed-off-by: Board Author <author@example.invalid>" in body
        assert "Changelog: Title" in body and "Ticket: None" in body


def test_rerun_with_the_same_answers_changes_nothing(generated, capsys):
    tmp, checkout = generated
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout
    files = sorted(p for p in tmp.rglob("*") if p.is_file() and ".git" not in p.parts)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    for board in CASES:
        rc, out, _ = _new_board(tmp, board, "--apply", str(checkout), capsys=capsys)
        assert rc == 0 and "wrote" not in out and "already has this contribution" in out
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout == head


def test_changed_answers_never_overwrite_without_force(generated, tmp_path, capsys):
    tmp, _ = generated
    work = tmp_path / "w"
    shutil.copytree(tmp / "machines", work / "machines")
    shutil.copytree(tmp / "out", work / "out")
    answers = work / "a.yml"
    answers.write_text(CASES["genericx86-64"].replace("8192", "16384"))
    args = ["new-board", "--answers", str(answers), "--repo-ref-dir", str(kit.KIT), "--offline",
            "--non-interactive", "--machines-dir", str(work / "machines"), "--out",
            str(work / "out" / "genericx86-64")]
    before = (work / "machines/genericx86-64.yml").read_text()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "genericx86-64.yml: exists with other content (use --force" in err
    assert (work / "machines/genericx86-64.yml").read_text() == before
    assert not list(work.rglob("*.tmp"))
    assert main(args + ["--force"]) == 0
    assert "total_mb: 16384" in (work / "machines/genericx86-64.yml").read_text()


@pytest.mark.parametrize("board", ["genericx86-64", "colibri-imx7-nand"])
def test_board_check_passes_on_the_contribution(generated, board, capsys):
    _, checkout = generated
    rc = main(["board", "check", str(checkout / "kas" / f"{board}.yml"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert (rc, out["findings"]) == (0, [])


def test_board_on_an_existing_include_pins_what_it_can(generated, capsys):
    """nxp.yml (upstream) leaves three repositories on a branch: the board pins meta-freescale
    (its BSP) and meta-freescale-3rdparty (resolved from the mirror); meta-freescale-distro is
    not in the kit, so it stays floating: board check names exactly that, and the hub post
    lists it as a known issue."""
    tmp, checkout = generated
    main(["board", "check", str(checkout / "kas" / "imx8mp-lpddr4-evk.yml"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert [(f["code"], f["file"].rsplit("/kas/", 1)[1], f["line"]) for f in out["findings"]] == [
        ("floating-revision", "include/nxp.yml", 12)]
    assert "meta-freescale-distro" in out["findings"][0]["message"]
    post = (tmp / "out" / "imx8mp-lpddr4-evk" / "hub-post.md").read_text()
    assert "kas/include/nxp.yml leaves meta-freescale-distro on a branch" in post


def _kas_gitconfig(tmp: Path) -> Path:
    """Clone rules for kas: upstream URLs -> the kit; poky and meta-freescale-distro (not in the
    kit) -> an empty fixture repository (kas dump does not check them out here)."""
    empty = tmp / "empty.git"
    if not empty.exists():
        subprocess.run(["git", "init", "-q", "--bare", str(empty)], check=True)
        work = tmp / "empty-work"
        subprocess.run(["git", "clone", "-q", str(empty), str(work)], check=True, capture_output=True)
        subprocess.run(["git", "-C", str(work), "-c", "user.name=f", "-c", "user.email=f@example.invalid",
                        "commit", "-q", "--allow-empty", "-m", "empty"], check=True)
        subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "HEAD:refs/heads/master"], check=True,
                       capture_output=True)
    rules = {
        kit.KIT / "git.openembedded.org.meta-openembedded": ["https://git.openembedded.org/meta-openembedded"],
        kit.KIT / kit.MENDER: ["https://github.com/mendersoftware/meta-mender.git"],
        kit.KIT / kit.FSL: ["https://github.com/Freescale/meta-freescale.git"],
        kit.KIT / kit.FSL3: ["https://github.com/Freescale/meta-freescale-3rdparty.git"],
        empty: ["git://git.yoctoproject.org/poky", "https://github.com/Freescale/meta-freescale-distro.git"],
    }
    cfg = tmp / "gitconfig"
    text = "[safe]\n\tdirectory = *\n"
    for target, urls in rules.items():
        text += f'[url "{target}"]\n' + "".join(f"\tinsteadOf = {u}\n" for u in urls)
    cfg.write_text(text)
    return cfg


@pytest.mark.parametrize("board", sorted(CASES))
def test_real_kas_dump_reads_the_board(generated, board):
    skips.tool("kas", "pip install kas")
    tmp, checkout = generated
    cfg = _kas_gitconfig(tmp)
    env = dict(os.environ, GITCONFIG_FILE=str(cfg), KAS_WORK_DIR=str(tmp / f"kas-{board}"))
    (tmp / f"kas-{board}").mkdir(exist_ok=True)
    # Repositories are cloned (offline, from the kit) but not checked out: mender-base.yml pins
    # poky and meta-openembedded commits that the kit does not hold.
    r = subprocess.run(["kas", "dump", "--skip", "repos_checkout", f"kas/{board}.yml"], cwd=checkout,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    dumped = yaml.safe_load(r.stdout)
    assert dumped["machine"] == board
    baseline = "mender-full-ubi" if board == "colibri-imx7-nand" else "mender-full"
    assert dumped["local_conf_header"]["mender-full"] == f'INHERIT += "{baseline}"\n'
    written = NEW_FILES[board][f"kas/{board}.yml"].split(f"  {board}: |\n")[1]
    assert dumped["local_conf_header"][board] == written.replace("    ", "")
    for rid, entry in dumped["repos"].items():
        if entry and entry.get("url") and "freescale" in rid and rid != "meta-freescale-distro":
            assert entry.get("commit") in (FSL, FSL3), rid


def _product(tmp: Path, boards: list[str]) -> Path:
    demo = yaml.safe_load((kit.ROOT / "products" / "demo.yml").read_text())
    product = {"name": "newboard", "series": "scarthgap", "distro": "poky",
               "target": "core-image-minimal",
               "repos": {k: v for k, v in demo["repos"].items() if "url" in v},
               "boards": boards, "boards_dir": "machines",
               "release": {"version": "1.0.0", "artifact_name": "{product}-{version}-{board}"}}
    path = tmp / "newboard.yml"
    path.write_text(yaml.safe_dump(product, sort_keys=False))
    return path


@pytest.mark.parametrize("board", [
    "imx8mp-lpddr4-evk", "genericx86-64",
    "colibri-imx7-nand",
])
def test_machine_manifest_passes_validate(generated, board, capsys):
    tmp, _ = generated
    product = _product(tmp, [board])
    rc = main(["validate", str(product), "--repo-ref-dir", str(kit.KIT), "--offline", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert (rc, [f["message"] for f in out["findings"] if f["severity"] == "error"]) == (0, [])


def test_ubi_board_gets_its_storage_device_from_meta_mender(generated, capsys):
    """new-board leaves the UBI device out; validate takes meta-mender's own default (ubi0)."""
    tmp, _ = generated
    product = _product(tmp, ["colibri-imx7-nand"])
    rc = main(["validate", str(product), "--repo-ref-dir", str(kit.KIT), "--offline", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and not [f for f in out["findings"] if f["code"] == "mender-storage"]


def test_hub_post_has_build_steps_and_the_test_checklist(generated):
    tmp, _ = generated
    post = (tmp / "out" / "imx8mp-lpddr4-evk" / "hub-post.md").read_text()
    assert post.startswith("# NXP i.MX 8M Plus EVK (LPDDR4), SD card\n")
    for needle in ("kas build ../kas/imx8mp-lpddr4-evk.yml",
                   "buildctl build products/<product>.yml --board imx8mp-lpddr4-evk",
                   "- [ ] Boots from the sdimg image (console on ttymxc1)",
                   "- [ ] Rollback:", "- [ ] Update:",
                   "- [ ] U-Boot environment access from Linux: `fw_printenv",
                   "## Known issues"):
        assert needle in post, needle
    uefi = (tmp / "out" / "genericx86-64" / "hub-post.md").read_text()
    assert "GRUB environment access from Linux" in uefi and "U-Boot environment" not in uefi
    ubi = (tmp / "out" / "colibri-imx7-nand" / "hub-post.md").read_text()
    assert "`.ubimg`" in ubi and "MENDER_MTDIDS" not in ubi.split("## Known issues")[1]


def test_interactive_asks_with_proposals_and_records_answers(tmp_path):
    """Each question shows its one-line reason and the probed default; Enter keeps it."""
    kit.need_kit()

    # series, BSP URL, board, bootloader, UBI, device, total, boot, data, description
    answers = "\n\n\n\n\n/dev/nvme0n1\n\n\n\n\n"
    r = subprocess.run([__import__("sys").executable, "-m", "buildctl", "new-board", "--interactive",
                        "--machine", "genericx86-64", "--repo-ref-dir", str(kit.KIT), "--offline",
                        "--out", str(tmp_path / "out"), "--machines-dir", str(tmp_path / "m")],
                       input=answers, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(kit.ROOT), COLUMNS="250"))
    assert r.returncode == 0, r.stderr
    assert "the Linux device holding the A/B partitions" in r.stderr
    assert "storage device (/dev/sda):" in r.stderr          # the proposal is the default
    rows = {line.split("│")[1].strip(): line for line in r.stdout.splitlines() if line.count("│") >= 4}
    assert "asked" in rows["device"] and "/dev/nvme0n1" in rows["device"]
    assert "genericx86-common.inc" in rows["bootloader"] and "(confirmed)" in rows["bootloader"]
    assert "device: /dev/nvme0n1" in (tmp_path / "m" / "genericx86-64.yml").read_text()
    ended = subprocess.run([__import__("sys").executable, "-m", "buildctl", "new-board", "--interactive",
                            "--machine", "genericx86-64", "--repo-ref-dir", str(kit.KIT), "--offline",
                            "--out", str(tmp_path / "o2"), "--machines-dir", str(tmp_path / "m2")],
                           input="\n", capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, PYTHONPATH=str(kit.ROOT)))
    assert ended.returncode == 2 and "input ended while asking" in ended.stderr
    assert not (tmp_path / "m2").exists()


@pytest.mark.parametrize("flags, message", [
    (["--machine", "raspberrypi4-46", "--vendor", "rpi",
      "--bsp", "https://github.com/agherzan/meta-raspberrypi.git"],
     "'raspberrypi4-46' is not defined by any layer"),
    (["--machine", "raspberrypi4-64", "--vendor", "rpi",
      "--bsp", "https://github.com/agherzan/meta-raspberrypi.git,branch=master"],
     "branch 'master' does not follow the LTS series scarthgap"),
    (["--machine", "raspberrypi4-64", "--series", "styhead"], "is not an LTS series"),
    (["--machine", "raspberrypi4-64", "--vendor", "rpi",
      "--bsp", "https://github.com/agherzan/meta-raspberrypi.git,commit=" + "0" * 40],
     "not found"),
    (["--vendor", "rpi"], "machine: required"),
])
def test_bad_input_is_one_line_and_writes_nothing(flags, message, tmp_path, capsys):
    kit.need_kit()
    rc = main(["new-board", "--non-interactive", "--repo-ref-dir", str(kit.KIT), "--offline",
               "--out", str(tmp_path / "out"), "--machines-dir", str(tmp_path / "m"), *flags])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("text, message", [
    ("machine: m\nintegration_layer: mender-acme\n", ":2: integration_layer: 'mender-acme': integration layers are named"),
    ("machine: m\nmtdids: 'a\"b'\n", ":2: mtdids:"),
    ("machine: m\nbootloader: lilo\n", ":2: bootloader: 'lilo' is not one of u-boot, grub-efi, tegra, none"),
    ("machine: m\ncolour: red\n", ":2: unknown key 'colour'"),
    ("machine: m\nbsp:\n  - url: https://x.invalid/r.git\n    commit: abc\n", ":3: bsp.commit: 'abc' is not a full"),
])
def test_answers_file_rejects_bad_values(text, message, tmp_path, capsys):
    bad = tmp_path / "a.yml"
    bad.write_text(text)
    assert main(["new-board", "--answers", str(bad), "--non-interactive", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}{message}" in err and err.count("\n") == 1, err


def test_answers_file_errors_name_file_and_line(tmp_path, capsys):
    bad = tmp_path / "a.yml"
    bad.write_text("machine: genericx86-64\nstorage:\n  total_mb: -5\n")
    rc = main(["new-board", "--answers", str(bad), "--non-interactive", "--out", str(tmp_path / "o"),
               "--machines-dir", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2 and f"{bad}:3: total_mb: must be a positive whole number" in err


def test_whole_checkout_check_finds_nothing_in_the_contributed_files(generated, capsys):
    """With the layer rules too (they run on whole checkouts): the skeleton layer's name and
    LAYERSERIES_COMPAT, the CI entries, the new include."""
    _, checkout = generated
    main(["board", "check", str(checkout), "--json"])
    out = json.loads(capsys.readouterr().out)
    ours = {p for files in NEW_FILES.values() for p in files} | {".github/workflows/build.yml"}
    mine = [f for f in out["findings"] if f["file"].split(f"{checkout}/", 1)[1] in ours]
    assert mine == []
    # upstream's own drifts are still there (the checkout is the real repository)
    assert any(f["code"] == "machine-name" and f["file"].endswith("kas/raspberrypi4-64.yml")
               for f in out["findings"])


def test_the_fstypes_proposal_can_be_overridden(tmp_path, capsys):
    kit.need_kit()
    answers = tmp_path / "a.yml"
    answers.write_text(CASES["genericx86-64"])
    rc = main(["new-board", "--answers", str(answers), "--fstypes-remove", "", "--repo-ref-dir",
               str(kit.KIT), "--offline", "--non-interactive", "--machines-dir", str(tmp_path / "m"),
               "--out", str(tmp_path / "o")])
    assert rc == 0
    assert "flag --fstypes-remove" in capsys.readouterr().out
    assert "IMAGE_FSTYPES" not in (tmp_path / "o/contribution/kas/genericx86-64.yml").read_text()
    assert "local_conf: {}" in (tmp_path / "m/genericx86-64.yml").read_text()
