"""`buildctl shell` and `buildctl getvar` without a real BitBake: argument handling, the way a
board is entered (the build's own environment, through a stand-in `kas` on the host runtime),
the probe's two ways of asking BitBake, redaction of secrets, and the table / JSON output.

Real kas + BitBake from the kit: tests/realbb/test_shell_getvar.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from buildctl.builder import getvar_probe
from buildctl.builder.runtime.base import Mount, RunSpec
from buildctl.builder.session import REDACTED, BoardValues, read_probe
from buildctl.cli import main

WT = Path(__file__).resolve().parents[2]

# Stand-in for kas: records how it was called (argv, environment), then does what `kas shell`
# does last: runs $SHELL -c CMD (or $SHELL) in the build directory and exits with its code.
FAKE_KAS = """#!/bin/sh
out="$KAS_WORK_DIR/kas-call"
printf '%s\\n' "$@" > "$out.argv"
env > "$out.env"
while [ $# -gt 0 ]; do
  case "$1" in -c) shift; cmd="$1";; esac
  shift
done
mkdir -p "$KAS_BUILD_DIR" && cd "$KAS_BUILD_DIR" || exit 99
if [ -n "$cmd" ]; then exec "${SHELL:-/bin/sh}" -c "$cmd"; fi
exec "${SHELL:-/bin/sh}"
"""
# Stand-in for bitbake-getvar: two defined variables, the rest undefined (BitBake's words).
FAKE_GETVAR = """#!/bin/sh
echo "$@" >> "$KAS_WORK_DIR/getvar-calls"
case "$2" in
  MACHINE) echo qemux86-64 ;;
  IMAGE_FSTYPES) echo "wic mender" ;;
  *) echo "The variable '$2' is not defined" >&2; exit 1 ;;
esac
"""
FAKE_BITBAKE_E = """#!/bin/sh
if [ "$1" = "-m" ]; then echo "-m" >> "$KAS_WORK_DIR/bitbake-calls"; exit 0; fi
echo "$@" >> "$KAS_WORK_DIR/bitbake-calls"
echo '# $MACHINE [2 operations]'
echo 'MACHINE="qemux86-64"'
echo 'export DISTRO="poky"'
echo 'QUOTED="say \\"hi\\""'
echo 'do_fetch() {'
echo '}'
"""


@pytest.fixture
def world():
    """A plain kas project (one board), the stand-in tools, a cache root: all in a directory
    the build's user can reach (builds never run as root)."""
    base = Path(tempfile.mkdtemp(prefix="buildctl-shell-test-"))
    os.chmod(base, 0o755)
    (base / "bin").mkdir()
    for name, text in (("kas", FAKE_KAS), ("bitbake-getvar", FAKE_GETVAR)):
        (base / "bin" / name).write_text(text)
        os.chmod(base / "bin" / name, 0o755)
    kas = base / "project.yml"
    kas.write_text("header: {version: 14}\nmachine: qemux86-64\nrepos:\n  poky:\n"
                   "    url: https://git.example.invalid/poky.git\n    commit: " + "a" * 40 + "\n")
    yield base
    shutil.rmtree(base, ignore_errors=True)


def cli(world: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(WT), BUILDCTL_CACHE_DIR=str(world / "cache"),
               PATH=f"{world / 'bin'}:/usr/bin:/bin", COLUMNS="200", **extra_env)
    env.pop("KAS_REPO_REF_DIR", None)
    return subprocess.run([sys.executable, "-m", "buildctl", *args], cwd=world, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def recorded_env(path: Path) -> dict[str, str]:
    skip = {"PWD", "SHLVL", "_", "OLDPWD"}
    return dict(ln.split("=", 1) for ln in path.read_text().splitlines()
                if "=" in ln and ln.split("=", 1)[0] not in skip)


# -- arguments ---------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["getvar", "products/demo.yml", "MACHINE"], "one of the arguments --board/-b --all-boards"),
    (["getvar", "products/demo.yml", "--board", "qemux86-64", "--all-boards", "MACHINE"],
     "not allowed with"),
    (["getvar", "products/demo.yml", "--board", "qemux86-64"], "VAR"),
    (["getvar", "products/demo.yml", "--board", "qemux86-64", "MACHINE; rm -rf /"],
     "is not a BitBake variable name"),
    (["shell", "products/demo.yml"], "--board"),
    (["shell", "products/demo.yml", "--board", "qemux86-64", "-c", " "], "-c: empty command"),
    (["shell", "products/demo.yml", "--board", "qemux86-64", "--runtime", "lxc"], "invalid choice"),
    (["getvar", "products/demo.yml", "--board", "qemux86-64", "--series", "Bad One", "MACHINE"],
     "--series"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, message, capsys, monkeypatch):
    monkeypatch.chdir(WT)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) <= 2, err  # usage + one line


def test_unknown_board_names_the_boards_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "buildctl", "shell", "products/demo.yml",
                        "--board", "nosuchboard", "--out", str(out), "-c", "true"], cwd=WT,
                       env=dict(os.environ, PYTHONPATH=str(WT)), capture_output=True, text=True)
    assert r.returncode == 2
    assert "board 'nosuchboard' is not in this product" in r.stderr and "qemux86-64" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_host_runtime_without_kas_says_what_to_install(world):
    os.remove(world / "bin" / "kas")
    r = cli(world, "shell", "project.yml", "--board", "qemux86-64", "--runtime", "host",
            "-c", "true")
    assert r.returncode == 2 and "host: kas is not on PATH" in r.stderr, r.stderr


def test_an_unreachable_docker_engine_is_one_line(world):
    r = cli(world, "shell", "project.yml", "--board", "qemux86-64", "--runtime", "docker",
            "-c", "true", DOCKER_HOST=f"unix://{world}/no-engine.sock")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("buildctl: error: docker: cannot reach the Docker engine")
    assert len(r.stderr.splitlines()) == 1


# -- entering a board --------------------------------------------------------------------------
def test_shell_runs_in_the_builds_environment_and_returns_the_commands_exit_code(world):
    r = cli(world, "shell", "project.yml", "--board", "qemux86-64", "--runtime", "host",
            "-c", "pwd; echo \"threads=$BB_NUMBER_THREADS\"; exit 3")
    assert r.returncode == 3, r.stderr
    board = world / "out" / "project" / "qemux86-64"
    build_dir = board / "work" / "build"
    assert r.stdout.splitlines()[0] == str(build_dir)  # in the board's build directory
    argv = (board / "work" / "kas-call.argv").read_text().splitlines()
    assert argv[:3] == ["--log-level", "warning", "shell"]
    assert argv[3] == f"{board / 'kas' / 'project.yml'}:{board / 'kas' / 'buildctl-shell.yml'}"
    assert argv[4:] == ["-c", "pwd; echo \"threads=$BB_NUMBER_THREADS\"; exit 3"]
    shell_env = recorded_env(board / "work" / "kas-call.env")
    assert not (board / "logs" / "build.log").exists()  # nothing was built

    # the same board built (parse only, the stand-in kas exits at once): kas gets the same
    # environment from build as from shell, apart from the shell to start
    b = cli(world, "build", "project.yml", "--runtime", "host", "--parse-only", "--no-preflight",
            "--no-release", "--json")
    assert b.returncode == 1, b.stderr  # `bitbake -p` never ran: the stand-in has no bitbake
    build_env = recorded_env(board / "work" / "kas-call.env")
    assert build_env["KAS_BUILD_DIR"] == str(build_dir)
    for name in ("DL_DIR", "SSTATE_DIR", "BB_HASHSERVE", "KAS_REPO_REF_DIR", "HOME"):
        assert name in build_env, name
    shell_env.pop("SHELL", None)
    build_env.pop("SHELL", None)
    assert shell_env == build_env


def test_getvar_asks_bitbake_getvar_once_per_variable_and_stops_the_server(world):
    (world / "bin" / "bitbake").write_text(FAKE_BITBAKE_E)
    os.chmod(world / "bin" / "bitbake", 0o755)
    r = cli(world, "getvar", "project.yml", "--board", "qemux86-64", "--runtime", "host",
            "MACHINE", "IMAGE_FSTYPES", "NOPE")
    assert r.returncode == 1  # NOPE is not defined
    assert r.stdout == 'MACHINE="qemux86-64"\nIMAGE_FSTYPES="wic mender"\n'
    assert r.stderr.strip() == "qemux86-64: NOPE: The variable 'NOPE' is not defined"
    work = world / "out" / "project" / "qemux86-64" / "work"
    assert (work / "getvar-calls").read_text().splitlines() == [
        "--value MACHINE", "--value IMAGE_FSTYPES", "--value NOPE"]
    assert (work / "bitbake-calls").read_text().splitlines() == ["-m"]  # server stopped

    j = cli(world, "getvar", "project.yml", "--all-boards", "--runtime", "host", "MACHINE",
            "--json")
    assert j.returncode == 0, j.stderr
    data = json.loads(j.stdout)
    assert data["product"] == "project" and data["variables"] == ["MACHINE"]
    assert data["boards"] == [{"board": "qemux86-64", "tool": "bitbake-getvar",
                               "values": {"MACHINE": "qemux86-64"}, "errors": {}, "error": "",
                               "redacted": []}]

    (work / "getvar-calls").unlink()
    r = cli(world, "getvar", "project.yml", "-b", "qemux86-64", "--runtime", "host",
            "--recipe", "busybox", "MACHINE")
    assert r.returncode == 0 and r.stdout == 'MACHINE="qemux86-64"\n', r.stderr
    assert (work / "getvar-calls").read_text() == "--value MACHINE --recipe busybox\n"


def test_getvar_reports_a_board_that_cannot_be_entered(world):
    (world / "bin" / "kas").write_text("#!/bin/sh\necho '2026-01-01 10:00:00 - ERROR    - "
                                       "Command failed:' >&2\necho \"fatal: unable to access "
                                       "'https://git.example.invalid/poky.git/'\" >&2\nexit 2\n")
    r = cli(world, "getvar", "project.yml", "--board", "qemux86-64", "--runtime", "host",
            "MACHINE")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("qemux86-64: the build environment could not be entered: "
                               "fatal: unable to access"), r.stderr
    assert "getvar.log" in r.stderr


# -- the probe, inside the build environment ---------------------------------------------------
def test_probe_falls_back_to_bitbake_e_without_bitbake_getvar(tmp_path, capsys, monkeypatch):
    (tmp_path / "bitbake").write_text(FAKE_BITBAKE_E)
    os.chmod(tmp_path / "bitbake", 0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setenv("KAS_WORK_DIR", str(tmp_path))
    assert getvar_probe.main(["MACHINE", "DISTRO", "QUOTED", "NOPE"]) == 0
    line = capsys.readouterr().out
    assert line.startswith(getvar_probe.MARKER)
    data = json.loads(line[len(getvar_probe.MARKER):])
    assert data == {"tool": "bitbake -e",
                    "values": {"MACHINE": "qemux86-64", "DISTRO": "poky", "QUOTED": 'say "hi"'},
                    "errors": {"NOPE": "The variable 'NOPE' is not defined"}}
    assert (tmp_path / "bitbake-calls").read_text().split() == ["-e"]


# -- secrets and output ------------------------------------------------------------------------
def test_secrets_never_reach_the_output():
    token = "tok-4711-secret"
    probe = getvar_probe.MARKER + json.dumps({
        "tool": "bitbake-getvar",
        "values": {"MENDER_TENANT_TOKEN": token, "MENDER_CONF": f"url=x token={token}",
                   "MACHINE": "qemux86-64"},
        "errors": {"X": f"ERROR: bad {token}"}})
    r = read_probe("b", ["noise", probe], 0, {"MENDER_TENANT_TOKEN": token})
    assert r.values == {"MENDER_TENANT_TOKEN": REDACTED, "MENDER_CONF": f"url=x token={REDACTED}",
                        "MACHINE": "qemux86-64"}
    assert sorted(r.redacted) == ["MENDER_CONF", "MENDER_TENANT_TOKEN"]
    assert token not in json.dumps(r.to_dict())
    failed = read_probe("b", [f"ERROR: token {token} refused"], 1, {"T": token})
    assert token not in failed.error and REDACTED in failed.error


def test_several_boards_print_a_table(capsys, monkeypatch):
    import buildctl.builder.session as session

    results = {"qemux86-64": BoardValues("qemux86-64", "bitbake-getvar",
                                         {"MACHINE": "qemux86-64", "DISTRO": "poky"}),
               "raspberrypi4-64": BoardValues("raspberrypi4-64", "bitbake-getvar",
                                              {"MACHINE": "raspberrypi4-64"},
                                              {"DISTRO": "The variable 'DISTRO' is not defined"}),
               "broken": BoardValues("broken", error="the build environment could not be "
                                                     "entered: fatal: nope")}

    class FakeSession:
        def __init__(self, args):
            self.args = args
            self.jobs = [type("J", (), {"name": n})() for n in (args.boards or list(results))]
            self.opened = type("O", (), {"target": type("T", (), {"name": "demo",
                                                                    "variant": "release"})()})()

        def getvar(self, job, names, recipe=None):
            assert names == ["MACHINE", "DISTRO"] and recipe is None
            return results[job.name]

    monkeypatch.setattr(session, "Session", FakeSession)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["getvar", str(WT / "products/demo.yml"), "--all-boards", "MACHINE",
                 "DISTRO", "MACHINE"]) == 1
    out, err = capsys.readouterr()
    rows = [ln.split() for ln in out.strip().splitlines()]
    assert rows[0] == ["board", "MACHINE", "DISTRO"]
    assert rows[1] == ["qemux86-64", "qemux86-64", "poky"]
    assert rows[2] == ["raspberrypi4-64", "raspberrypi4-64", "(not", "defined)"]
    assert rows[3] == ["broken", "(error)", "(error)"]
    assert err.splitlines() == [
        "raspberrypi4-64: DISTRO: The variable 'DISTRO' is not defined",
        "broken: the build environment could not be entered: fatal: nope"]

    assert main(["getvar", str(WT / "products/demo.yml"), "-b", "qemux86-64", "MACHINE",
                 "DISTRO"]) == 0
    assert capsys.readouterr().out == 'MACHINE="qemux86-64"\nDISTRO="poky"\n'


# -- runtimes: the caller's terminal -----------------------------------------------------------
def spec(tmp_path: Path) -> RunSpec:
    return RunSpec(name="n", argv=["kas", "shell", "f.yml"], env={"MENDER_TENANT_TOKEN": "s3"},
                   mounts=[Mount(tmp_path), Mount(Path("/src"), read_only=True)],
                   workdir=tmp_path, owner=(1000, 1000), network=True, labels={"a": "b"})


def test_docker_and_podman_attach_with_stdin_and_a_tty_and_no_secret_in_argv(tmp_path):
    from buildctl.builder.runtime.docker import DockerRuntime
    from buildctl.builder.runtime.podman import PodmanRuntime

    argv, env = DockerRuntime("img:1").cli_command(spec(tmp_path), tty=True)
    assert argv[:6] == ["docker", "run", "--rm", "--init", "-i", "-t"]
    assert argv[-4:] == ["img:1", "kas", "shell", "f.yml"]
    assert f"{tmp_path}:{tmp_path}:rw" in argv and "/src:/src:ro" in argv
    assert "MENDER_TENANT_TOKEN" in argv and "s3" not in " ".join(argv) and env["MENDER_TENANT_TOKEN"] == "s3"
    assert env["BUILDCTL_UID"] == "1000"
    argv, _ = DockerRuntime("img:1").cli_command(spec(tmp_path), tty=False)
    assert "-i" in argv and "-t" not in argv
    pod = PodmanRuntime("img:1", rootless=False)
    argv, _ = pod.command(spec(tmp_path), tty=True)
    assert argv[:6] == ["podman", "run", "--rm", "--init", "-i", "-t"]
    assert pod.command(spec(tmp_path))[0][:5] == ["podman", "run", "--rm", "--init", "--name"]


def test_host_attach_returns_the_exit_code(tmp_path):
    from buildctl.builder.runtime.host import HostRuntime

    s = RunSpec(name="n", argv=["sh", "-c", "exit 5"], env={}, mounts=[], workdir=tmp_path,
                owner=(os.getuid(), os.getgid()))
    assert HostRuntime().attach(s, tty=False) == 5
    s.argv = ["sh", "-c", "kill -TERM $$"]
    assert HostRuntime().attach(s, tty=False) == 128 + 15
