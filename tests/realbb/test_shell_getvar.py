"""`buildctl shell -c` and `buildctl getvar` on the shipped product's qemux86-64 board with real
kas + BitBake 2.8 from the kit, on the host runtime as the unprivileged build user.

The board directory buildctl uses (`<out>/qemux86-64-release/work`) starts from a copy of the
session's checkout (conftest's `stack`), the way a user's board directory holds the checkouts
of an earlier build; `--repo-ref-dir` names the kit's mirrors as kas names them. buildctl
composes the board itself, kas shell finds every pinned commit in place (nothing is fetched)
and BitBake parses the configuration. Expected values are what `bitbake -e` printed for the
same board in the session.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from buildctl.builder.session import REDACTED
from tests.helpers import skips
from tests.realbb.conftest import PRODUCT, ROOT, _unprivileged

BOARD = "qemux86-64"
TOKEN = "tenant-token-9f3b2c-never-printed"  # MENDER_TENANT_TOKEN of these runs
ASKED = ["MACHINE", "DISTRO", "MENDER_STORAGE_DEVICE", "MENDER_ARTIFACT_NAME",
         "MENDER_DEVICE_TYPE"]


@dataclass
class Board:
    out: Path
    env: dict[str, str]  # for buildctl (its HOME, the build user, the token)
    refs: Path
    bb_env: dict[str, str]  # bitbake -e of the session for this board


def _kas_bin(base: Path) -> Path | None:
    """A directory holding a kas the build user can run. The host runtime runs `kas` from PATH
    as that user; the one beside the tests' interpreter will not do when that interpreter lives
    where the user cannot read (a pyenv under /root): then a venv of Debian's python3 with the
    same kas version, installed the way .ci/run installs everything (pip, offline indexes)."""
    kas = skips.tool("kas", "pip install kas (the host runtime runs kas from PATH)")
    uid, gid, _ = _unprivileged()
    as_user = {"user": uid, "group": gid, "extra_groups": []} if os.geteuid() == 0 else {}
    try:  # exactly as the host runtime starts it (subprocess with the build user)
        if subprocess.run([kas, "--version"], capture_output=True, **as_user).returncode == 0:
            return None
    except PermissionError:
        pass
    python = Path("/usr/bin/python3")
    skips.require(python.is_file(), "Debian's python3", "apt-get install python3 python3-venv")
    venv = base / "kas-venv"
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True, capture_output=True)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                        f"kas=={importlib.metadata.version('kas')}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return venv / "bin"


@pytest.fixture(scope="module")
def board(stack) -> Board:
    base = stack.base / "shell-getvar"
    home, refs, work = base / "home", base / "refs", base / "out" / f"{BOARD}-release" / "work"
    for d in (home, refs, work):
        d.mkdir(parents=True)
    kas_bin = _kas_bin(base)
    for d in [base, *base.rglob("*")]:
        os.chmod(d, 0o755)
    for mirror in skips.kit().iterdir():  # named the way kas names its reference mirrors
        if mirror.is_dir():
            (refs / mirror.name).symlink_to(mirror)
    spec = yaml.safe_load((stack.composed / f"{BOARD}.yml").read_text())
    for name, repo in spec["repos"].items():
        if repo and repo.get("url"):
            subprocess.run(["cp", "-a", str(stack.base / "work" / name), str(work / name)],
                           check=True)
    uid, gid, _ = _unprivileged()
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{uid}:{gid}", str(base)], check=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(home), MENDER_TENANT_TOKEN=TOKEN,
               COLUMNS="200")
    if kas_bin is not None:
        env["PATH"] = f"{kas_bin}:{env.get('PATH', '/usr/bin:/bin')}"
    if os.geteuid() == 0:  # buildctl runs as root, builds as this user (as under sudo)
        env.update(SUDO_UID=str(uid), SUDO_GID=str(gid))
    for k in ("KAS_REPO_REF_DIR", "BUILDCTL_CACHE_DIR", "BUILDCTL_GIT_CACHE"):
        env.pop(k, None)
    return Board(out=base / "out", env=env, refs=refs, bb_env=stack.boards[BOARD].env)


def buildctl(b: Board, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "buildctl", *args, "--runtime", "host",
                           "--out", str(b.out), "--repo-ref-dir", str(b.refs)],
                          env=b.env, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)


def test_getvar_prints_what_bitbake_e_gives_and_never_the_token(board):
    r = buildctl(board, "getvar", str(PRODUCT), "--board", BOARD, *ASKED, "MENDER_TENANT_TOKEN",
                 "BUILDCTL_NO_SUCH_VARIABLE", "--json")
    assert r.returncode == 1, r.stderr  # the unknown variable, reported by BitBake
    (got,) = json.loads(r.stdout)["boards"]
    assert got["tool"] == "bitbake-getvar", got
    assert got["values"].pop("MENDER_TENANT_TOKEN") == REDACTED
    assert got["values"] == {name: board.bb_env[name] for name in ASKED}
    assert got["values"]["MACHINE"] == BOARD
    assert got["errors"] == {"BUILDCTL_NO_SUCH_VARIABLE":
                             "The variable 'BUILDCTL_NO_SUCH_VARIABLE' is not defined"}
    assert r.stderr.strip() == (f"{BOARD}: BUILDCTL_NO_SUCH_VARIABLE: The variable "
                                "'BUILDCTL_NO_SUCH_VARIABLE' is not defined")
    log = board.out / f"{BOARD}-release" / "logs" / "getvar.log"
    for text in (r.stdout, r.stderr, log.read_text()):
        assert TOKEN not in text
    # the plain form: VAR="value" lines, as bitbake -e writes them
    plain = buildctl(board, "getvar", str(PRODUCT), "-b", BOARD, "MENDER_ARTIFACT_NAME")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == f'MENDER_ARTIFACT_NAME="{board.bb_env["MENDER_ARTIFACT_NAME"]}"\n'


def test_shell_runs_a_command_in_the_build_environment(board):
    build_dir = board.out / f"{BOARD}-release" / "work" / "build"
    r = buildctl(board, "shell", str(PRODUCT), "--board", BOARD, "-c",
                 'pwd; echo "BUILDDIR=$BUILDDIR"; command -v bitbake; '
                 'bitbake -e | grep -E "^(MACHINE|DISTRO|MENDER_STORAGE_DEVICE)="')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == [str(build_dir), f"BUILDDIR={build_dir}",
                         str(build_dir.parent / "bitbake" / "bin" / "bitbake")]
    for name in ("MACHINE", "DISTRO", "MENDER_STORAGE_DEVICE"):
        assert f'{name}="{board.bb_env[name]}"' in lines[3:], lines
    assert not (build_dir / "tmp" / "deploy").exists()  # nothing was built

    r = buildctl(board, "shell", str(PRODUCT), "--board", BOARD, "-c", "exit 3")
    assert r.returncode == 3, r.stderr
    assert TOKEN not in r.stdout + r.stderr
