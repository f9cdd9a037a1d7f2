"""Generators for the build tests: a stand-in "poky", a BSP layer, kas files, a product repo."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.helpers import skips
from tests.helpers.fixture_layers import git  # noqa: F401 (the build tests import it from here)

HERE = Path(__file__).parent
BITBAKE = HERE / "fixture_files" / "bitbake"
OE_DEPLOY = HERE / "fixture_files" / "oe_deploy.py"  # what the stand-in deploys, imported by it

INIT_SCRIPT = """\
# Stand-in for poky's oe-init-build-env (sourced with the build directory as $1)
OEROOT=$(dirname "$(readlink -f "${BASH_SOURCE[0]:-$0}")")
export BUILDDIR=$(readlink -f "${1:-build}")
mkdir -p "$BUILDDIR/conf"
export PATH="$OEROOT/bitbake/bin:$PATH"
export BBPATH="$BUILDDIR"
export BB_ENV_PASSTHROUGH_ADDITIONS="ALL_PROXY BBPATH_EXTRA BB_NO_NETWORK BB_NUMBER_THREADS BB_SETSCENE_ENFORCE BB_SRCREV_POLICY DISTRO FTPS_PROXY FTP_PROXY GIT_PROXY_COMMAND HTTPS_PROXY HTTP_PROXY MACHINE NO_PROXY PARALLEL_MAKE SCREENDIR SDKMACHINE SOCKS5_PASSWD SOCKS5_USER SSH_AGENT_PID SSH_AUTH_SOCK STAMPS_DIR TCLIBC TCMODE all_proxy ftp_proxy ftps_proxy http_proxy https_proxy no_proxy"
cd "$BUILDDIR"
"""

def export_kit_bitbake(dest: Path, branch: str = "2.8") -> Path:
    """BitBake's tree at ``branch`` of the kit's bitbake (scarthgap's, as products/demo.yml pins
    it) written to dest, never committed to this repository, with the tests' hashequiv client
    helper beside its lib/hashserv."""
    kit_repo = skips.kit_repo("git.openembedded.org.bitbake")
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-c", "safe.directory=*", "--git-dir", str(kit_repo),
                              "archive", "--format=tar", branch, "bin", "lib"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    shutil.copy(HERE / "fixture_files" / "hashequiv.py", dest / "lib")
    return dest


def commit_all(repo: Path, message: str = "fixture", date: str = "2024-01-02T03:04:05Z") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, date=date)
    return git(repo, "rev-parse", "HEAD")


def init_repo(repo: Path) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")


# The stand-in's configuration entry point, written for these tests (not OE-core's file):
# locations, the includes BitBake configurations use, and reduced forms of the image naming
# (image-artifact-names.bbclass), meta-mender's feature -> image type mapping and the variables
# OE-core keeps out of task signatures.
BITBAKE_CONF = """\
TMPDIR ?= "${TOPDIR}/tmp"
DL_DIR ?= "${TOPDIR}/downloads"
SSTATE_DIR ?= "${TOPDIR}/sstate-cache"
DEPLOY_DIR ?= "${TMPDIR}/deploy"
DEPLOY_DIR_IMAGE ?= "${DEPLOY_DIR}/images/${MACHINE}"

include conf/site.conf
include conf/auto.conf
include conf/local.conf
include conf/machine/${MACHINE}.conf
include conf/distro/${DISTRO}.conf

SOURCE_DATE_EPOCH_FALLBACK ??= "1302044400"
REPRODUCIBLE_TIMESTAMP_ROOTFS ??= "1520598896"

IMAGE_BASENAME ?= "${PN}"
IMAGE_MACHINE_SUFFIX ??= "-${MACHINE}"
IMAGE_NAME_SUFFIX ??= ".rootfs"
IMAGE_VERSION_SUFFIX ?= "-${DATETIME}"
IMAGE_LINK_NAME ?= "${IMAGE_BASENAME}${IMAGE_MACHINE_SUFFIX}${IMAGE_NAME_SUFFIX}"
IMAGE_NAME ?= "${IMAGE_LINK_NAME}${IMAGE_VERSION_SUFFIX}"
IMAGE_FSTYPES ?= "ext4"

# a Mender board (one with an artifact name): meta-mender's defaults, reduced
MENDER_DEVICE_TYPE ?= "${MACHINE}"
MENDER_DEVICE_TYPES_COMPATIBLE ?= "${MENDER_DEVICE_TYPE}"
MENDER_FEATURES_ENABLE ?= "${@'mender-image' if d.getVar('MENDER_ARTIFACT_NAME') else ''}"
MENDER_FEATURES_DISABLE ?= ""
MENDER_FEATURES = "${@' '.join(f for f in d.getVar('MENDER_FEATURES_ENABLE').split() if f not in d.getVar('MENDER_FEATURES_DISABLE').split())}"
IMAGE_FSTYPES += "${@bb.utils.contains('MENDER_FEATURES', 'mender-image', 'mender', '', d)}"
IMAGE_FSTYPES += "${@bb.utils.contains('MENDER_FEATURES', 'mender-image-sd', 'sdimg sdimg.bmap', '', d)}"
IMAGE_FSTYPES += "${@bb.utils.contains('MENDER_FEATURES', 'mender-image-uefi', 'uefiimg uefiimg.bmap', '', d)}"
IMAGE_FSTYPES += "${@bb.utils.contains('MENDER_FEATURES', 'mender-image-bios', 'biosimg biosimg.bmap', '', d)}"
IMAGE_FSTYPES += "${@bb.utils.contains('MENDER_FEATURES', 'mender-image-gpt', 'gptimg gptimg.bmap', '', d)}"
IMAGE_FSTYPES += "${@bb.utils.contains('MENDER_FEATURES', 'mender-image-ubi', 'ubimg ubimg.bmap', '', d)}"

BB_BASEHASH_IGNORE_VARS ?= "TOPDIR TMPDIR DL_DIR SSTATE_DIR DEPLOY_DIR DEPLOY_DIR_IMAGE BBPATH \\
    BBLAYERS BBFILES BBINCLUDED BB_NUMBER_THREADS PARALLEL_MAKE BB_HASHSERVE \\
    BB_HASHSERVE_UPSTREAM BB_HASHSERVE_DB_DIR SSTATE_MIRRORS BB_NO_NETWORK \\
    BB_SIGNATURE_HANDLER BB_ENV_PASSTHROUGH_ADDITIONS BB_SETSCENE_ENFORCE BB_SRCREV_POLICY \\
    SOURCE_DATE_EPOCH DATETIME DATE TIME HOME PATH SSH_AUTH_SOCK SSH_AGENT_PID \\
    GIT_PROXY_COMMAND ALL_PROXY HTTP_PROXY HTTPS_PROXY FTP_PROXY FTPS_PROXY NO_PROXY \\
    all_proxy http_proxy https_proxy ftp_proxy ftps_proxy no_proxy"
"""
CORE_LAYER_CONF = """\
BBPATH .= ":${LAYERDIR}"
BBFILE_COLLECTIONS += "core"
BBFILE_PATTERN_core = "^${LAYERDIR}/"
LAYERSERIES_CORENAMES = "scarthgap"
LAYERSERIES_COMPAT_core = "scarthgap"
"""


def kit_dir() -> Path:
    """The offline upstream repositories, beside the checkout (see the kit's README)."""
    return HERE.parents[2] / "shared" / "yocto-kit"


def make_poky(root: Path) -> tuple[Path, str]:
    """A git repo with oe-init-build-env, the stand-in bitbake/bin/bitbake over BitBake's own
    library (bitbake/lib, from the kit), and a meta layer with a small bitbake.conf."""
    repo = root / "poky"
    init_repo(repo)
    (repo / "oe-init-build-env").write_text(INIT_SCRIPT)
    # BitBake 2.8's own tree (bin/bitbake-hashserv, lib/hashserv, lib/bb) from the kit, with the
    # stand-in as bin/bitbake: the build's hash-equivalence server is the real one
    export_kit_bitbake(repo / "bitbake")
    shutil.copy(BITBAKE, repo / "bitbake" / "bin" / "bitbake")
    os.chmod(repo / "bitbake" / "bin" / "bitbake", 0o755)
    shutil.copy(OE_DEPLOY, repo / "bitbake" / "lib" / "oe_deploy.py")
    meta = repo / "meta"
    for sub in ("conf/machine", "classes-global", "classes"):
        (meta / sub).mkdir(parents=True)
    (meta / "conf" / "layer.conf").write_text(CORE_LAYER_CONF)
    (meta / "conf" / "bitbake.conf").write_text(BITBAKE_CONF)
    (meta / "classes-global" / "base.bbclass").write_text("# the stand-in's base class\n")
    (meta / "classes" / "create-spdx.bbclass").write_text("# the stand-in's create-spdx\n")
    (meta / "conf" / "machine" / "qemux86-64.conf").write_text('DEFAULTTUNE ?= "core2-64"\n')
    return repo, commit_all(repo)


def make_bsp(root: Path, machines: dict[str, str], compat: str = "scarthgap",
             name: str = "meta-fixture-bsp") -> tuple[Path, str]:
    """A BSP layer repo defining ``machines`` (name -> DEFAULTTUNE)."""
    repo = root / name
    init_repo(repo)
    (repo / "conf" / "machine").mkdir(parents=True)
    (repo / "conf" / "layer.conf").write_text('BBPATH .= ":${LAYERDIR}"\n'
                                              'BBFILE_COLLECTIONS += "fixture-bsp"\n'
                                              f'LAYERSERIES_COMPAT_fixture-bsp = "{compat}"\n')
    for m, tune in machines.items():
        (repo / "conf" / "machine" / f"{m}.conf").write_text(f'DEFAULTTUNE ?= "{tune}"\n')
    return repo, commit_all(repo)


def make_product_repo(root: Path, date: str = "2024-03-04T05:06:07Z") -> Path:
    repo = root / "product"
    init_repo(repo)
    (repo / "README").write_text("fixture product\n")
    commit_all(repo, date=date)
    return repo


def write_kas(path: Path, machine: str, tune: str, poky: tuple[Path, str],
              bsp: tuple[Path, str], local_conf: str = "", target: str = "core-image-minimal") -> Path:
    data = {
        "header": {"version": 14},
        "machine": machine,
        "distro": "poky",
        "target": target,
        "repos": {
            "poky": {"url": f"file://{poky[0]}", "commit": poky[1], "layers": {"meta": None}},
            "meta-fixture-bsp": {"url": f"file://{bsp[0]}", "commit": bsp[1]},
        },
        "local_conf_header": {"fixture": f'DEFAULTTUNE = "{tune}"\n' + local_conf},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def repos_of(poky, bsp) -> dict[str, dict]:
    return {"poky": {"url": f"file://{poky[0]}", "commit": poky[1]},
            "meta-fixture-bsp": {"url": f"file://{bsp[0]}", "commit": bsp[1]}}
