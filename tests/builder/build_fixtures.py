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


def make_poky(root: Path) -> tuple[Path, str]:
    """A git repo with oe-init-build-env, bitbake/bin/bitbake (stand-in) and a meta layer."""
    repo = root / "poky"
    init_repo(repo)
    (repo / "oe-init-build-env").write_text(INIT_SCRIPT)
    # BitBake 2.8's own tree (bin/bitbake-hashserv, lib/hashserv, lib/bb) from the kit, with the
    # stand-in as bin/bitbake: the build's hash-equivalence server is the real one
    export_kit_bitbake(repo / "bitbake")
    shutil.copy(BITBAKE, repo / "bitbake" / "bin" / "bitbake")
    os.chmod(repo / "bitbake" / "bin" / "bitbake", 0o755)
    (repo / "meta" / "conf" / "machine").mkdir(parents=True)
    (repo / "meta" / "conf" / "layer.conf").write_text(
        'BBFILE_COLLECTIONS += "core"\nLAYERSERIES_CORENAMES = "scarthgap"\n')
    (repo / "meta" / "conf" / "machine" / "qemux86-64.conf").write_text('DEFAULTTUNE ?= "core2-64"\n')
    return repo, commit_all(repo)


def make_bsp(root: Path, machines: dict[str, str]) -> tuple[Path, str]:
    """A BSP layer repo defining ``machines`` (name -> DEFAULTTUNE)."""
    repo = root / "meta-fixture-bsp"
    init_repo(repo)
    (repo / "conf" / "machine").mkdir(parents=True)
    (repo / "conf" / "layer.conf").write_text('BBFILE_COLLECTIONS += "fixture-bsp"\n'
                                              'LAYERSERIES_COMPAT_fixture-bsp = "scarthgap"\n')
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
