"""Real BitBake 2.8 on the shipped product's composed configurations, offline, from the kit.

One session does, in order: `buildctl validate` and `buildctl compose` of products/demo.yml
against `<repo>/../shared/yocto-kit`; `kas checkout` of each board's composed file into one
shared work dir (repositories the boards share are cloned once; kas clones from the kit through
`url.<kit dir>.insteadOf` rewrites in the file named by GITCONFIG_FILE); then, per board, as an
unprivileged user (BitBake refuses root), one BitBake server session that runs `bitbake -p`,
`bitbake -e core-image-minimal` and `bitbake -g core-image-minimal`: the server stays up between
the commands (`-T`), so the later two reuse the first one's parse. The boards share the
persistent dir (BitBake's code-parser cache), so the second board's cold parse is shorter.
Times of every step are printed (`-s` shows them) and kept in `stack.times`.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.helpers import skips

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "products" / "demo.yml"
# products/demo.yml's mender.signing_key: never committed; a throw-away key is made when absent
# (and removed afterwards), as a user makes one (keys/README.md)
SIGNING_KEY = ROOT / "keys" / "artifact-signing.pem"
BOARDS = ("qemux86-64", "raspberrypi4-64")
TARGET = "core-image-minimal"
USER = "buildctl-bb"  # .ci/run creates it; the fixture does too when it runs as root
# What OE-core's sanity check demands on the host at parse time (HOSTTOOLS, bitbake.conf),
# plus what this test itself calls.
HOST_TOOLS = ["chrpath", "diffstat", "cpio", "gawk", "lz4c", "pzstd", "zstd", "unzstd", "file",
              "rpcgen", "gcc", "g++", "make", "patch", "perl", "python3", "wget", "git",
              "setpriv", "useradd", "openssl"]
OFFLINE_CONF = """\
# parsed after local.conf (-R): nothing may reach the network
BB_NO_NETWORK = "1"
CONNECTIVITY_CHECK_URIS = ""
BB_HASHSERVE_UPSTREAM = ""
SSTATE_MIRRORS = ""
PERSISTENT_DIR = "{persistent}"
"""


@dataclass
class BoardRun:
    board: str
    build: Path
    env: dict[str, str]  # bitbake -e of the image: name -> value
    graph: str  # task-depends.dot
    buildlist: list[str]  # pn-buildlist
    times: dict[str, float] = field(default_factory=dict)


@dataclass
class Stack:
    base: Path
    composed: Path
    validate_output: str
    boards: dict[str, BoardRun]
    times: dict[str, float]
    signing_key: Path


def _expect_ok(r: subprocess.CompletedProcess, what: str) -> None:
    if r.returncode != 0:
        tail = ((r.stdout or "") + (r.stderr or ""))[-4000:]
        pytest.fail(f"{what} failed with exit {r.returncode}:\n{tail}", pytrace=False)


def _locale_ok() -> bool:
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.lower()
    return "en_us.utf8" in out or "en_us.utf-8" in out


def _unprivileged() -> tuple[int, int, list[str]]:
    """uid, gid and the argv prefix that runs a command as a user BitBake accepts."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid(), []
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--create-home", "--shell", "/bin/sh", USER],
                       check=True, capture_output=True)
        pw = pwd.getpwnam(USER)
    return pw.pw_uid, pw.pw_gid, ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                                  "--clear-groups", "--"]


def kit_dir_name(url: str) -> str:
    """kas's reference-mirror name of a repository URL (the kit's directory names)."""
    return re.sub(r"^[a-z+]+://", "", url).replace("/", ".")


def write_gitconfig(path: Path, kit: Path, urls: set[str]) -> None:
    # file:// (not a plain path): git then copies objects instead of hard-linking the kit's files
    lines = ["[safe]", "\tdirectory = *"]
    for url in sorted(urls):
        src = kit / kit_dir_name(url)
        if not src.is_dir():
            pytest.fail(f"{url}: no {src.name} in the yocto kit", pytrace=False)
        lines += [f'[url "file://{src}"]', f"\tinsteadOf = {url}"]
    path.write_text("\n".join(lines) + "\n")


def parse_env(text: str) -> dict[str, str]:
    """Top-level `VAR="value"` lines of `bitbake -e` output (flags and functions ignored)."""
    out = {}
    for m in re.finditer(r'^(?:export )?([A-Za-z0-9_][A-Za-z0-9_\-]*)="(.*)"$', text, re.M):
        out[m.group(1)] = m.group(2).replace('\\"', '"').replace("\\$", "$")
    return out


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    if os.geteuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, gid)
        for n in filenames:
            os.lchown(os.path.join(dirpath, n), uid, gid)


def _bitbake_session(board: str, kasfile: Path, work: Path, base: Path, home: Path,
                     as_user: list[str], log) -> BoardRun:
    build = base / f"build-{board}"
    spec = yaml.safe_load(kasfile.read_text())
    bitbake_bin = work / "bitbake" / "bin"
    kas_env = {k: str(v) for k, v in (spec.get("env") or {}).items()}
    env = {"PATH": f"{bitbake_bin}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home),
           "LANG": "en_US.UTF-8", "LC_ALL": "en_US.UTF-8", "BBPATH": str(build),
           "BB_ENV_PASSTHROUGH_ADDITIONS": " ".join(sorted(kas_env)), **kas_env}
    offline = ["-R", str(base / "offline.conf")]
    times: dict[str, float] = {}

    def bitbake(label: str, *args: str, stdout=None) -> subprocess.CompletedProcess:
        t0 = time.monotonic()
        r = subprocess.run([*as_user, str(bitbake_bin / "bitbake"), "-T", "600", *offline, *args],
                           cwd=build, env=env, stdout=stdout or subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=1800)
        times[label] = round(time.monotonic() - t0, 1)
        log(f"{board}: bitbake {label}: {times[label]} s (exit {r.returncode})")
        return r

    try:
        r = bitbake("-p", "-p")
        _expect_ok(r, f"{board}: bitbake -p")
        with open(build / "env.txt", "w") as fh:
            r = bitbake("-e", "-e", TARGET, stdout=fh)
        _expect_ok(r, f"{board}: bitbake -e {TARGET}")
        r = bitbake("-g", "-g", TARGET)
        _expect_ok(r, f"{board}: bitbake -g {TARGET}")
    finally:
        subprocess.run([*as_user, str(bitbake_bin / "bitbake"), "-m"], cwd=build, env=env,
                       capture_output=True, timeout=300)
    return BoardRun(board=board, build=build,
                    env=parse_env((build / "env.txt").read_text(errors="replace")),
                    graph=(build / "task-depends.dot").read_text(),
                    buildlist=(build / "pn-buildlist").read_text().split(), times=times)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    kit = skips.kit()
    skips.tools(HOST_TOOLS, "Yocto host tools: see .ci/run")
    skips.require(_locale_ok(), "locale en_US.UTF-8 not generated", "locale-gen en_US.UTF-8")
    uid, gid, as_user = _unprivileged()
    if as_user:  # BitBake reads our layers in this checkout as that user
        closed = [str(d) for d in [ROOT, *ROOT.parents] if not os.stat(d).st_mode & 0o001]
        skips.require(not closed, f"{USER} cannot reach the checkout: {', '.join(closed)} "
                                  "not searchable by others", "chmod o+x, or check out elsewhere")
    log = lambda msg: print(f"\n[realbb] {msg}", end="", flush=True)  # noqa: E731
    times: dict[str, float] = {}
    t_all = time.monotonic()
    # a directory the unprivileged user can reach (pytest's own tmp dirs are private to root)
    base = Path(tempfile.mkdtemp(prefix="buildctl-realbb-"))
    os.chmod(base, 0o755)
    py = {"PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    made_key = not SIGNING_KEY.exists()
    try:
        if made_key:
            subprocess.run(["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout",
                            "-out", str(SIGNING_KEY)], check=True, capture_output=True)
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "buildctl", "validate", str(PRODUCT),
                            "--repo-ref-dir", str(kit), "--offline"], env={**os.environ, **py},
                           capture_output=True, text=True, timeout=600)
        _expect_ok(r, "buildctl validate")
        validate_output = r.stdout + r.stderr
        times["validate"] = round(time.monotonic() - t0, 1)

        t0 = time.monotonic()
        composed = base / "composed"
        r = subprocess.run([sys.executable, "-m", "buildctl", "compose", str(PRODUCT),
                            "--repo-ref-dir", str(kit), "--out", str(composed)],
                           env={**os.environ, **py}, capture_output=True, text=True, timeout=600)
        _expect_ok(r, "buildctl compose")
        times["compose"] = round(time.monotonic() - t0, 1)

        urls = set()
        for board in BOARDS:
            spec = yaml.safe_load((composed / f"{board}.yml").read_text())
            urls |= {repo["url"] for repo in spec["repos"].values() if repo and repo.get("url")}
        write_gitconfig(base / "gitconfig", kit, urls)
        work = base / "work"
        work.mkdir()
        kas_env = {k: v for k, v in os.environ.items()
                   if not k.lower().endswith("_proxy") and not k.startswith(("KAS_", "GIT_"))}
        kas_env.update(GITCONFIG_FILE=str(base / "gitconfig"), KAS_WORK_DIR=str(work))
        for board in BOARDS:
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "kas", "checkout",
                                str(composed / f"{board}.yml")],
                               env={**kas_env, "KAS_BUILD_DIR": str(base / f"build-{board}")},
                               capture_output=True, text=True, timeout=900)
            _expect_ok(r, f"kas checkout {board}")
            times[f"kas checkout {board}"] = round(time.monotonic() - t0, 1)
            log(f"kas checkout {board}: {times[f'kas checkout {board}']} s")

        home = base / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[safe]\n\tdirectory = *\n")
        persistent = base / "persistent"
        persistent.mkdir()
        (base / "offline.conf").write_text(OFFLINE_CONF.format(persistent=persistent))
        for d in [home, persistent] + [base / f"build-{b}" for b in BOARDS]:
            _chown_tree(d, uid, gid)

        boards = {}
        for board in BOARDS:
            boards[board] = _bitbake_session(board, composed / f"{board}.yml", work, base, home,
                                             as_user, log)
        times["total"] = round(time.monotonic() - t_all, 1)
        log(f"times: {times} " + " ".join(f"{b}={r.times}" for b, r in boards.items()))
        yield Stack(base=base, composed=composed, validate_output=validate_output,
                    boards=boards, times=times, signing_key=SIGNING_KEY)
    finally:
        if made_key:
            SIGNING_KEY.unlink(missing_ok=True)
        if os.environ.get("BUILDCTL_REALBB_KEEP"):
            print(f"\n[realbb] kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


# --- A board made by `buildctl new-board`, composed into a product and parsed by BitBake --------
# new-board runs non-interactively on a MACHINE of the kit's poky BSP layer (meta-yocto-bsp, at
# the demo product's pin); the storage answers differ from the shipped machines/genericx86-64.yml
# so the values BitBake ends with can only have come from the generated manifest. The product is
# products/demo.yml narrowed to that one board (boards_dir: the generated machines dir). It is
# checked out into the session's kas work dir (every repository is already there) and parsed by
# `bitbake -e` without a target: the configuration (layers, machine conf with its includes,
# distro, Mender classes, local.conf) is parsed in full, recipes are not, so this costs seconds,
# not the minutes of a full recipe parse.
NEW_BOARD = "genericx86-64"
NEW_BOARD_ARGS = ["--machine", "genericx86-64", "--description", "Generic x86-64 PC, NVMe disk",
                  "--device", "/dev/nvme0n1", "--total-mb", "6144", "--boot-mb", "32",
                  "--data-mb", "256"]


@dataclass
class NewBoardRun:
    board: str
    manifest: dict  # the machines/<board>.yml new-board wrote
    kasfile: dict  # what compose made of it
    env: dict[str, str]  # global `bitbake -e`
    times: dict[str, float]


def _global_env(kasfile: Path, build: Path, work: Path, base: Path, home: Path,
                as_user: list[str], log) -> tuple[dict[str, str], float]:
    spec = yaml.safe_load(kasfile.read_text())
    bitbake_bin = work / "bitbake" / "bin"
    kas_env = {k: str(v) for k, v in (spec.get("env") or {}).items() if v is not None}
    env = {"PATH": f"{bitbake_bin}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home),
           "LANG": "en_US.UTF-8", "LC_ALL": "en_US.UTF-8", "BBPATH": str(build),
           "BB_ENV_PASSTHROUGH_ADDITIONS": " ".join(sorted(kas_env)), **kas_env}
    t0 = time.monotonic()
    with open(build / "env.txt", "w") as fh:
        r = subprocess.run([*as_user, str(bitbake_bin / "bitbake"), "-R",
                            str(base / "offline.conf"), "-e"], cwd=build, env=env, stdout=fh,
                           stderr=subprocess.PIPE, text=True, timeout=900)
    took = round(time.monotonic() - t0, 1)
    log(f"{build.name}: bitbake -e: {took} s (exit {r.returncode})")
    if r.returncode != 0:
        tail = (build / "env.txt").read_text(errors="replace")[-3000:] + r.stderr[-2000:]
        pytest.fail(f"{build.name}: bitbake -e failed with exit {r.returncode}:\n{tail}",
                    pytrace=False)
    return parse_env((build / "env.txt").read_text(errors="replace")), took


@pytest.fixture(scope="session")
def new_board(stack) -> NewBoardRun:
    kit = skips.kit()
    uid, gid, as_user = _unprivileged()
    log = lambda msg: print(f"\n[realbb] {msg}", end="", flush=True)  # noqa: E731
    base, times = stack.base, {}
    gen = base / "new-board"
    py = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}

    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "buildctl", "new-board", *NEW_BOARD_ARGS,
                        "--repo-ref-dir", str(kit), "--offline", "--non-interactive",
                        "--machines-dir", str(gen / "machines"), "--out", str(gen / "out")],
                       env=py, capture_output=True, text=True, timeout=600)
    _expect_ok(r, "buildctl new-board")
    times["new-board"] = round(time.monotonic() - t0, 1)
    manifest = yaml.safe_load((gen / "machines" / f"{NEW_BOARD}.yml").read_text())

    product = yaml.safe_load(PRODUCT.read_text())
    product.update(name="newboard", boards=[NEW_BOARD], boards_dir=str(gen / "machines"))
    product.pop("board_overrides", None)
    for repo in product["repos"].values():  # local repositories: relative to products/
        if repo.get("path"):
            repo["path"] = str((PRODUCT.parent / repo["path"]).resolve())
    product["mender"]["signing_key"] = f"file:{stack.signing_key}"
    (gen / "newboard.yml").write_text(yaml.safe_dump(product, sort_keys=False))

    t0 = time.monotonic()
    for verb, extra in (("validate", ["--offline"]), ("compose", ["--out", str(gen / "composed")])):
        r = subprocess.run([sys.executable, "-m", "buildctl", verb, str(gen / "newboard.yml"),
                            "--repo-ref-dir", str(kit), *extra], env=py, capture_output=True,
                           text=True, timeout=600)
        _expect_ok(r, f"buildctl {verb} of the generated board's product")
        if verb == "validate":
            assert " 0 errors, 0 warnings" in r.stdout + r.stderr, r.stdout + r.stderr
    times["validate+compose"] = round(time.monotonic() - t0, 1)
    kasfile = gen / "composed" / f"{NEW_BOARD}.yml"
    spec = yaml.safe_load(kasfile.read_text())

    urls = {repo["url"] for repo in spec["repos"].values() if repo and repo.get("url")}
    write_gitconfig(base / "gitconfig-new-board", kit, urls)
    build = base / f"build-new-board-{NEW_BOARD}"
    kas_env = {k: v for k, v in os.environ.items()
               if not k.lower().endswith("_proxy") and not k.startswith(("KAS_", "GIT_"))}
    kas_env.update(GITCONFIG_FILE=str(base / "gitconfig-new-board"),
                   KAS_WORK_DIR=str(base / "work"), KAS_BUILD_DIR=str(build))
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "kas", "checkout", str(kasfile)], env=kas_env,
                       capture_output=True, text=True, timeout=900)
    _expect_ok(r, f"kas checkout of the generated {NEW_BOARD}")
    times["kas checkout"] = round(time.monotonic() - t0, 1)
    _chown_tree(build, uid, gid)

    env, times["bitbake -e"] = _global_env(kasfile, build, base / "work", base, base / "home",
                                           as_user, log)
    log(f"new-board {NEW_BOARD}: {times}")
    return NewBoardRun(board=NEW_BOARD, manifest=manifest, kasfile=spec, env=env, times=times)
