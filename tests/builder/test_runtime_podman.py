"""The podman runtime: its command line (against a recording stand-in `podman`), then the real
podman with the builder image, rootful and rootless, and who owns what the container wrote."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from buildctl.builder.runtime.base import Mount, RunSpec
from buildctl.builder.runtime.podman import PodmanRuntime

FAKE = """#!/usr/bin/env python3
import json, os, sys
env = {k: os.environ[k] for k in os.environ if k.startswith(("BUILDCTL_", "DL_", "SECRETISH"))}
json.dump({"argv": sys.argv[1:], "env": env}, open(os.environ["RECORD"], "w"))
print("NOTE: Running task 1 of 2 (/l/x.bb:do_fetch)")
print("line two")
sys.exit(4)
"""


def test_podman_command_mounts_network_owner_and_env_by_name(tmp_path, monkeypatch):
    fake = tmp_path / "podman"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    record = tmp_path / "record.json"
    monkeypatch.setenv("RECORD", str(record))
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    rt = PodmanRuntime("buildctl-builder:test", binary=str(fake))
    spec = RunSpec(name="b1-fetch", argv=["kas", "shell", "x.yml", "-c", "bitbake -p"],
                   env={"DL_DIR": "/c/dl", "SECRETISH_VALUE": "v-123"},
                   mounts=[Mount(Path("/c/dl")), Mount(Path("/src/poky"), read_only=True)],
                   workdir=Path("/o/b1/work"), owner=(1500, 1501), network=False,
                   labels={"org.buildctl.board": "b1"})
    lines: list[str] = []
    assert rt.run(spec, lines.append) == 4
    assert lines == ["NOTE: Running task 1 of 2 (/l/x.bb:do_fetch)", "line two"]
    got = json.loads(record.read_text())
    argv = got["argv"]
    assert argv[:2] == ["run", "--rm"] and "--init" in argv
    assert argv[argv.index("--network") + 1] == "none"
    assert argv[argv.index("--name") + 1] == "b1-fetch"
    assert "/c/dl:/c/dl:rw,z" in argv and "/src/poky:/src/poky:ro,z" in argv
    assert argv[-6:] == ["buildctl-builder:test", "kas", "shell", "x.yml", "-c", "bitbake -p"]
    assert "v-123" not in " ".join(argv)  # values travel in the environment, not on argv
    assert got["env"]["SECRETISH_VALUE"] == "v-123" and got["env"]["BUILDCTL_UID"] == "1500"
    assert got["env"]["BUILDCTL_GID"] == "1501"


# --- the real podman (Debian's 4.3) with the builder image --------------------------------
ROOTLESS_USER = "buildctl-rl"  # a regular user: useradd gives it subordinate ids (/etc/subuid)
WT = Path(__file__).resolve().parents[2]
PROBE = """\
import sys
from pathlib import Path
sys.path.insert(0, {wt!r})
from buildctl.builder.runtime.base import Mount, RunSpec
from buildctl.builder.runtime.podman import PodmanRuntime
out = Path({out!r})
spec = RunSpec(name={name!r}, argv=["sh", "-c", "id -u > who && echo made > made.txt && mkdir -p d/e"],
               env={{}}, mounts=[Mount(out)], workdir=out, owner=({uid}, {gid}), network=False,
               labels={{}})
sys.exit(PodmanRuntime({image!r}).run(spec, print))
"""


def _podman_env(home: Path, uid: int) -> dict[str, str]:
    run = Path(f"/run/user/{uid}")
    return {"HOME": str(home), "XDG_RUNTIME_DIR": str(run), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8"}


@pytest.fixture(scope="session")
def podman_image(builder_image, docker_engine) -> str:
    """The builder image, copied from docker into root's podman storage."""
    from tests.helpers import skips

    skips.tools(["podman", "catatonit"], "apt-get install podman catatonit")
    skips.root("the rootful podman test runs as root (CI does)")
    _load_into_podman(builder_image, [], dict(os.environ))
    return builder_image


def _load_into_podman(image: str, as_user: list[str], env: dict[str, str]) -> None:
    import subprocess

    if subprocess.run([*as_user, "podman", "image", "exists", image], env=env).returncode == 0:
        return
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    load = subprocess.run([*as_user, "podman", "load"], stdin=save.stdout, env=env,
                          capture_output=True, text=True)
    save.stdout.close()
    assert save.wait() == 0 and load.returncode == 0, load.stderr[-1000:]


def _reachable(tmp: Path) -> None:
    """Let other users pass through pytest's private temporary directories to ``tmp``."""
    os.chmod(tmp, 0o755)
    for p in tmp.parents:
        if str(p).startswith("/tmp/") and p.stat().st_uid == os.getuid():
            os.chmod(p, p.stat().st_mode | 0o055)


def _probe(out: Path, image: str, uid: int, gid: int, as_user: list[str], env: dict[str, str]):
    import subprocess

    script = PROBE.format(wt=str(WT), out=str(out), name=f"buildctl-probe-{uid}-{os.getpid()}",
                          uid=uid, gid=gid, image=image)
    return subprocess.run([*as_user, "/usr/bin/python3", "-c", script], env=env,
                          capture_output=True, text=True, timeout=600)


def test_rootful_podman_outputs_belong_to_the_invoking_user(tmp_path, podman_image):
    out = tmp_path / "out"
    out.mkdir()
    _reachable(tmp_path)
    os.chown(out, 4321, 4322)  # as buildctl prepares a board's directories
    r = _probe(out, podman_image, 4321, 4322, [], {**os.environ})
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / "who").read_text().strip() == "4321"  # the entry point became the user
    for p in (out / "made.txt", out / "d", out / "d" / "e"):
        assert (p.stat().st_uid, p.stat().st_gid) == (4321, 4322)


def test_rootless_podman_outputs_belong_to_the_caller(tmp_path, podman_image):
    import pwd
    import subprocess

    from tests.helpers import skips

    skips.tools(["newuidmap", "newgidmap"], "apt-get install uidmap")
    try:
        pw = pwd.getpwnam(ROOTLESS_USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", ROOTLESS_USER], check=True)
        pw = pwd.getpwnam(ROOTLESS_USER)
    assert ROOTLESS_USER + ":" in Path("/etc/subuid").read_text(), "no subordinate uids for the user"
    run = Path(f"/run/user/{pw.pw_uid}")
    run.mkdir(parents=True, exist_ok=True)
    os.chown(run, pw.pw_uid, pw.pw_gid)
    os.chmod(run, 0o700)
    as_user = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
    env = _podman_env(Path(pw.pw_dir), pw.pw_uid)
    _load_into_podman(podman_image, as_user, env)  # the user's own storage (~/.local/share)
    _reachable(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, pw.pw_uid, pw.pw_gid)
    r = _probe(out, podman_image, pw.pw_uid, pw.pw_gid, as_user, env)
    assert r.returncode == 0, r.stdout + r.stderr
    # inside, the process is the caller's own uid (keep-id), not a subordinate id
    assert (out / "who").read_text().strip() == str(pw.pw_uid)
    for p in (out / "made.txt", out / "d", out / "d" / "e"):
        assert (p.stat().st_uid, p.stat().st_gid) == (pw.pw_uid, pw.pw_gid)
    # another owner than the caller cannot be had rootless: one clear line, no container
    r = _probe(out, podman_image, 4321, 4322, as_user, env)
    assert r.returncode != 0 and "outputs can only belong to the calling user" in r.stderr


def test_a_board_builds_with_podman_and_its_outputs_belong_to_the_user(tmp_path, podman_image):
    """The whole build (kas checkout, the hash server, fetch and build phases) under podman."""
    from build_world import make_world, run_build

    world = make_world(tmp_path)
    owner = (4321, 4322)
    _, rep = run_build(world, [world.job("boarda")], podman_image, runtime="podman",
                       caches=world.caches(hermetic=True), owner=owner)
    board = rep.boards[0]
    assert rep.status == "succeeded", board.message
    assert rep.runtime == "podman" and board.runtime == "podman"
    assert rep.hashserve["mode"] == "shared"  # BitBake's server ran in a podman container too
    deploy = world.root / "out" / "boarda-release" / "deploy"
    files = [p for p in deploy.iterdir()]
    assert files
    for p in files + [p.resolve() for p in files if p.is_symlink()]:
        assert (p.lstat().st_uid, p.lstat().st_gid) == owner, p
