"""End-to-end builds in a real Docker engine with the stand-in bitbake (kas runs for real)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from build_world import Server, make_world, run_build

pytestmark = [pytest.mark.docker, pytest.mark.slow]
WT = Path(__file__).resolve().parents[2]


def bitbake_envs(out: Path, board: str) -> list[dict]:
    tmp = out / f"{board}-release" / "work" / "build" / "tmp"
    return [json.loads(p.read_text()) for p in sorted(tmp.glob("bitbake-env-*.json"),
                                                      key=lambda p: p.stat().st_mtime)]


class _UpstreamServer:
    """BitBake's bitbake-hashserv on 127.0.0.1 (a free TCP port), from the kit's bitbake."""

    def __init__(self, bitbake: Path) -> None:
        import socket
        import subprocess
        import sys
        import time

        from test_hashserv_real import Client

        self.client = Client(bitbake)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        self.dir = Path(__import__("tempfile").mkdtemp(prefix="buildctl-upstream-"))
        self.proc = subprocess.Popen([sys.executable, str(bitbake / "bin" / "bitbake-hashserv"),
                                      "-b", self.address, "-d", str(self.dir / "up.db")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, "upstream did not start"
                time.sleep(0.2)

    def seed(self, outhashes: list[str]) -> dict[str, str]:
        """Report each output under another task hash; returns outhash -> the upstream's unihash."""
        import hashlib

        pairs = [(hashlib.sha256(b"upstream" + o.encode()).hexdigest(), o) for o in outhashes]
        settled = self.client.report(self.address, "fixture", pairs)
        return {o: settled[t] for t, o in pairs}

    def stop(self) -> None:
        import shutil

        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_two_boards_share_caches_in_order_owned_by_the_user(tmp_path, builder_image):
    world = make_world(tmp_path)
    owner = (4321, 4322)
    b, rep = run_build(world, [world.job("boarda"), world.job("boardb")], builder_image,
                       caches=world.caches(hermetic=True), owner=owner, concurrency=2, cpus=8,
                       source_date_epoch=1709528767, series="scarthgap")
    assert rep.status == "succeeded", [r.message for r in rep.boards]
    a, bb = rep.boards
    assert rep.image_digest.startswith("sha256:") and a.image_digest == rep.image_digest
    # the second board of the same tune waited and started from the first one's sstate
    assert bb.started >= a.started
    assert a.bitbake["sstate"]["local"] == 0 and bb.bitbake["sstate"]["local"] > 0
    assert bb.bitbake["tasks_run"] < a.bitbake["tasks_run"]
    # the first board is checked out first: the shared hash server runs from its bitbake
    assert [p.name for p in a.phases] == ["checkout", "fetch", "build", "collect"]
    assert [p.name for p in bb.phases] == ["fetch", "build", "collect"]
    db = world.root / "cache/sstate/hashserv-scarthgap.db"
    assert rep.hashserve["mode"] == "shared" and rep.hashserve["database"] == str(db)
    out = world.root / "out"
    # what bitbake saw: caches from the environment, never from local.conf; threads split
    local_conf = (out / "boarda-release/work/build/conf/local.conf").read_text()
    assert "DL_DIR" not in local_conf and "SSTATE_DIR" not in local_conf
    fetch_env, build_env = bitbake_envs(out, "boarda")
    for seen in (fetch_env["seen"], build_env["seen"]):
        assert seen["DL_DIR"] == str(world.root / "cache/downloads")
        assert seen["SSTATE_DIR"] == str(world.root / "cache/sstate")
        assert seen["BB_HASHSERVE"] == rep.hashserve["address"]
        assert seen["BB_HASHSERVE"].startswith("unix://")
        assert seen["BB_NUMBER_THREADS"] == "4" and seen["PARALLEL_MAKE"] == "-j 4"
        # the product's time is the root file system's, never every recipe's SOURCE_DATE_EPOCH
        assert seen["REPRODUCIBLE_TIMESTAMP_ROOTFS"] == "1709528767"
        assert "SOURCE_DATE_EPOCH" not in seen
    assert "BB_NO_NETWORK" not in fetch_env["seen"] and build_env["seen"]["BB_NO_NETWORK"] == "1"
    assert build_env["uid"] == owner[0]
    import sqlite3
    con = sqlite3.connect(db)
    # the build's server is BitBake's own (its schema): what both boards reported is kept, in the
    # database beside the sstate objects, for the next build
    reported = {r[0] for r in con.execute("SELECT taskhash FROM outhashes_v2 WHERE method = 'fixture'")}
    assert reported and reported == {r[0] for r in con.execute("SELECT taskhash FROM unihashes_v3")}
    con.close()
    assert "bitbake/bin/bitbake-hashserv" in rep.hashserve["server"]
    assert not list((out / "boarda-release/work/build").glob("cache/hashserv.db"))
    assert not Path(rep.hashserve["address"][len("unix://"):]).exists()  # stopped, removed
    # outputs: linked into deploy/, owned by the invoking user, listed in the report
    deploy = out / "boarda-release" / "deploy"
    image = deploy / "core-image-minimal-boarda.rootfs.ext4"
    assert image.is_symlink() and image.resolve().is_file()
    assert {e["path"] for e in a.deploy} == {p.name for p in deploy.iterdir()}
    for p in [out, *out.rglob("*"), world.root / "cache", *(world.root / "cache").rglob("*")]:
        assert (p.lstat().st_uid, p.lstat().st_gid) == owner, p  # nothing is root's
    board_json = json.loads((out / "boarda-release" / "report.json").read_text())
    build_json = json.loads((out / "build-report.json").read_text())
    assert board_json["status"] == "succeeded" and build_json["status"] == "succeeded"
    assert board_json["layers"]["poky"]["checked_out"] == world.poky[1]
    assert board_json["bitbake"]["sstate"]["wanted"] > 0
    assert set(board_json["durations"]) == {"checkout", "fetch", "build", "collect"}
    assert build_json["summary"]["succeeded"] == 2 and build_json["order"] == ["boarda", "boardb"]


def test_hermetic_build_has_no_network_but_fetch_has(tmp_path, builder_image):
    world = make_world(tmp_path)
    server = Server()
    try:
        conf = f'FIXTURE_SRC_URL = "{server.url}/hello.tar.gz"\n' \
               f'FIXTURE_COMPILE_URL = "{server.url}/during-compile"\n'
        _, rep = run_build(world, [world.job("boarda", conf)], builder_image,
                           caches=world.caches(hermetic=True))
        assert server.hits == ["/hello.tar.gz"]  # fetch phase had the network, compile none
        board = rep.boards[0]
        assert board.status == "failed" and rep.status == "failed"
        fail = board.bitbake["failures"][0]
        assert (fail["recipe"], fail["task"]) == ("hello-1.0-r0", "do_compile")
        assert Path(fail["log"]).is_file() and "failed" in Path(fail["log"]).read_text()
        assert "hello-1.0-r0 do_compile failed" in board.message
        assert not (world.root / "out/boarda-release/deploy").exists()
        assert (world.root / "cache/downloads/hello-1.0.tar.gz").read_text() == "source tarball\n"
        # the same recipe builds when the product is not hermetic
        _, rep2 = run_build(world, [world.job("boarda", conf)], builder_image,
                            caches=world.caches(hermetic=False))
        assert rep2.status == "succeeded" and server.hits[-1] == "/during-compile"
    finally:
        server.close()


def test_failing_board_does_not_stop_others_unless_fail_fast(tmp_path, builder_image):
    world = make_world(tmp_path)
    bad = world.job("boarda", 'FIXTURE_FAIL = "busybox:do_compile"\n')
    _, rep = run_build(world, [bad, world.job("boardc")], builder_image)
    status = {b.board: b.status for b in rep.boards}
    assert status == {"boarda": "failed", "boardc": "succeeded"} and rep.status == "failed"
    fail = rep.boards[0].bitbake["failures"][0]
    assert fail["task"] == "do_compile" and fail["recipe"].startswith("busybox")
    assert fail["recipe_file"].endswith("busybox_1.0.bb")
    _, rep = run_build(world, [bad, world.job("boardc")], builder_image, fail_fast=True)
    status = {b.board: b.status for b in rep.boards}
    assert status == {"boarda": "failed", "boardc": "skipped"}


def test_secrets_never_reach_the_build(tmp_path, builder_image, monkeypatch):
    world = make_world(tmp_path)
    monkeypatch.setenv("MENDER_TENANT_TOKEN", "tok-very-secret-4711")
    monkeypatch.setenv("ARTIFACTORY_TOKEN", "tok-very-secret-4712")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:3128")
    _, rep = run_build(world, [world.job("boarda")], builder_image)
    assert rep.status == "succeeded"
    (env,) = bitbake_envs(world.root / "out", "boarda")
    assert "MENDER_TENANT_TOKEN" not in env["env"] and "ARTIFACTORY_TOKEN" not in env["env"]
    assert env["seen"].get("https_proxy") == "http://127.0.0.1:3128"  # allowlisted
    for p in (world.root / "out").rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert b"tok-very-secret" not in p.read_bytes(), p


def test_dry_run_and_parse_only(tmp_path, builder_image):
    world = make_world(tmp_path)
    _, rep = run_build(world, [world.job("boarda")], builder_image, mode="dry-run")
    b = rep.boards[0]
    assert rep.status == "succeeded" and [p.name for p in b.phases] == ["checkout", "dry-run"]
    assert b.bitbake["tasks_total"] > 0 and b.deploy == []
    assert not list((world.root / "cache/sstate").rglob("*.tar.zst"))
    argv = bitbake_envs(world.root / "out", "boarda")[-1]["argv"]
    assert argv[1:] == ["-n", "core-image-minimal"]
    _, rep = run_build(world, [world.job("boarda")], builder_image, mode="parse-only")
    assert rep.status == "succeeded" and [p.name for p in rep.boards[0].phases] == ["parse"]
    assert rep.hashserve == {}  # parsing needs no hash server


def _cli(args, env):
    return subprocess.Popen([sys.executable, "-m", "buildctl", "build", *args],
                            cwd=WT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_signal_stops_containers_and_a_rerun_continues(sig, tmp_path, builder_image,
                                                       docker_engine):
    import docker

    world = make_world(tmp_path)
    kas = world.job("boarda", 'FIXTURE_TASK_DELAY = "0.4"\n').kas_file
    out = world.root / "out"
    env = dict(os.environ, PYTHONPATH=str(WT), DOCKER_HOST=docker_engine,
               BUILDCTL_CACHE_DIR=str(world.root / "cache"))
    args = [str(kas), "--image", builder_image, "--out", str(out), "--json"]
    proc = _cli(args, env)
    log = out / "boarda" / "logs" / "build.log.partial"
    deadline = time.monotonic() + 60
    while not (log.exists() and "Running task 4 of" in log.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "build did not start"
        time.sleep(0.1)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert json.loads(stdout)["status"] == "interrupted"
    board = json.loads((out / "boarda" / "report.json").read_text())
    assert board["status"] == "interrupted"
    assert [(p["name"], p["status"]) for p in board["phases"]][-1] == ("build", "interrupted")
    assert not (out / "boarda" / "deploy").exists()
    assert not list(out.rglob("*.partial")) and not list(out.rglob(".report.json.*"))
    client = docker.DockerClient(base_url=docker_engine)
    # this build's containers (the engine may be shared with other builds of a "boarda")
    ours = [c for c in client.containers.list(all=True,
                                              filters={"label": "org.buildctl.board=boarda"})
            if any(m.get("Source", "").startswith(str(out)) for m in c.attrs.get("Mounts", []))]
    assert ours == []
    # the same command again continues: tasks finished before the signal are not run again
    proc = _cli(args, env)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    again = json.loads(stdout)["boards"][0]["bitbake"]
    assert again["sstate"]["current"] > 0 or again["tasks_run"] < again["tasks_attempted"]
    assert (out / "boarda" / "deploy").is_dir()


def test_sstate_mirrors_and_upstream_across_the_hermetic_phases(tmp_path, builder_image,
                                                               kit_bitbake):
    import shutil
    import sqlite3

    world = make_world(tmp_path)
    _, rep = run_build(world, [world.job("boarda")], builder_image)
    assert rep.status == "succeeded"
    rep_first_tasks = rep.boards[0].bitbake["tasks_run"]
    con = sqlite3.connect(rep.hashserve["database"])
    first = [r[0] for r in con.execute("SELECT taskhash FROM outhashes_v2 WHERE method = 'fixture'")]
    con.close()
    # an upstream server (BitBake's own, on 127.0.0.1) already knows these outputs under other
    # unihashes, as a CI server that built them first would
    upstream = _UpstreamServer(kit_bitbake)
    seeded = upstream.seed(first)
    mirror = tmp_path / "mirror"
    shutil.copytree(world.root / "cache/sstate", mirror)
    shutil.rmtree(world.root / "cache/sstate")
    shutil.rmtree(world.root / "out")
    caches = world.caches(hermetic=True, sstate_mirrors=(
        f"file://.* file://{mirror}/PATH;downloadfilename=PATH",
        "https://sstate.example.invalid/scarthgap"),
        hashserve_upstream=upstream.address)
    try:
        _, rep = run_build(world, [world.job("boarda")], builder_image, caches=caches)
    finally:
        upstream.stop()
    board = rep.boards[0]
    assert rep.hashserve["mode"] == "shared"
    assert board.status == "succeeded", board.message
    fetch_sstate = next(p for p in board.phases if p.name == "fetch").sstate
    # the setscene-only run in the fetch phase took them from the mirror
    assert fetch_sstate["mirrors"] > 0 and fetch_sstate["missed"] == 0
    assert board.bitbake["tasks_run"] < rep_first_tasks
    setscene, fetch, build = bitbake_envs(world.root / "out", "boarda")
    assert setscene["argv"][1] == "--setscene-only"  # network mirrors used while there is network
    assert "https://sstate.example.invalid" in setscene["seen"]["SSTATE_MIRRORS"]
    # the upstream belongs to the build's shared hash server (which alone has network)
    assert rep.hashserve["upstream"] == upstream.address
    con = sqlite3.connect(rep.hashserve["database"])
    local = dict(con.execute("SELECT taskhash, unihash FROM unihashes_v3 WHERE method = 'fixture'"))
    con.close()
    assert local and all(local[t] == seeded[t] for t in local)  # the upstream's unihashes won
    assert all("BB_HASHSERVE_UPSTREAM" not in e["seen"] for e in (setscene, fetch, build))
    assert fetch["argv"][1] == "--runall=fetch"
    assert "https://" not in build["seen"]["SSTATE_MIRRORS"]
    assert f"file://{mirror}/PATH" in build["seen"]["SSTATE_MIRRORS"]
    assert "BB_HASHSERVE_UPSTREAM" not in build["seen"]


def test_stand_in_refuses_what_bitbake_refuses_and_says_why(tmp_path, builder_image):
    """BitBake's own parser reads the configuration: an unterminated value fails the board
    with BitBake's message, shown as the root cause in the report."""
    world = make_world(tmp_path)
    _, rep = run_build(world, [world.job("boarda", 'BROKEN = "unterminated\n')], builder_image)
    board = rep.boards[0]
    assert board.status == "failed"
    assert "ParseError" in board.root_cause and "conf/local.conf" in board.root_cause
    assert "unparsed line" in board.root_cause and board.root_cause in board.message
    assert not (world.root / "out/boarda-release/deploy").exists()


def test_stand_in_refuses_a_layer_for_another_series(tmp_path, builder_image):
    """BitBake's own layer checks run too: a BSP layer for kirkstone on a scarthgap core."""
    from build_fixtures import make_bsp
    from build_world import MACHINES, World

    world = make_world(tmp_path)
    old = make_bsp(tmp_path / "src", MACHINES, compat="kirkstone", name="meta-old-bsp")
    world = World(world.root, world.poky, old)
    _, rep = run_build(world, [world.job("boarda")], builder_image)
    board = rep.boards[0]
    assert board.status == "failed"
    assert "Layer fixture-bsp is not compatible with the core layer" in board.root_cause
    assert "kirkstone" in board.root_cause and board.root_cause in board.message


def test_task_hashes_follow_the_configuration(tmp_path, builder_image):
    """Same tune, other configuration: nothing is reused; the same configuration again (in a
    fresh output directory) starts from the first build's sstate."""
    world = make_world(tmp_path)

    def build(out: str, conf: str = ""):
        _, rep = run_build(world, [world.job("boarda", conf)], builder_image,
                           out_dir=world.root / out)
        assert rep.status == "succeeded", rep.boards[0].message
        return rep.boards[0].bitbake["sstate"]

    build("out1")
    other = build("out2", 'DISTRO_FEATURES:append = " wayland"\n')
    assert other["local"] == 0 and other["missed"] == other["wanted"] > 0
    same = build("out3")
    assert same["local"] == same["wanted"] > 0 and same["missed"] == 0


def test_failed_checkout_shows_gits_message(tmp_path, builder_image):
    from build_fixtures import write_kas

    world = make_world(tmp_path)
    job = world.job("boarda")
    write_kas(job.kas_file, "boarda", "cortexa53", world.poky,
              (tmp_path / "src" / "no-such-bsp", world.bsp[1]))
    _, rep = run_build(world, [job], builder_image)
    board = rep.boards[0]
    assert board.status == "failed"
    assert "does not appear to be a git repository" in board.root_cause
    assert "git clone" in board.root_cause and board.root_cause in board.message
