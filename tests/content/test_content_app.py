"""The example service builds with its own Makefile, behaves as its unit expects,
and its systemd unit is well-formed."""
from __future__ import annotations

import configparser
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import skips

from ._helpers import LAYERS

SRC = LAYERS / "meta-buildctl-app" / "recipes-example" / "hello-buildctl" / "files" / "hello-buildctl-1.0"
UNIT = SRC / "hello-buildctl.service"


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> Path:
    skips.tools(["gcc", "make"], "apt-get install gcc make")
    cc = shutil.which("cc") or shutil.which("gcc")
    work = tmp_path_factory.mktemp("hello")
    for f in SRC.iterdir():
        shutil.copy(f, work / f.name)
    env = dict(os.environ, CC=cc, CFLAGS="-O2 -Werror")
    subprocess.run(["make", "-s"], cwd=work, env=env, check=True)
    dest = work / "root"
    subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", "BINDIR=/usr/bin"], cwd=work,
                   env=env, check=True)
    installed = dest / "usr" / "bin" / "hello-buildctl"
    assert os.access(installed, os.X_OK)
    return installed


def test_once_reports_the_running_artifact(binary, tmp_path):
    info = tmp_path / "artifact_info"
    info.write_text("artifact_name=demo-1.0.0-qemux86-64-release\n")
    out = subprocess.run([binary, "--once", "--artifact-info", info], capture_output=True,
                         text=True, check=True).stdout
    assert out == "hello-buildctl 1.0 started, artifact demo-1.0.0-qemux86-64-release\n"


def test_missing_artifact_info_is_not_fatal(binary, tmp_path):
    out = subprocess.run([binary, "--once", "--artifact-info", tmp_path / "absent"],
                         capture_output=True, text=True, check=True).stdout
    assert "artifact unknown" in out


def test_bad_arguments_exit_2_with_a_message(binary):
    res = subprocess.run([binary, "--interval", "soon"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "--interval" in res.stderr
    assert subprocess.run([binary, "--frobnicate"], capture_output=True).returncode == 2


def test_sigterm_stops_the_daemon_cleanly(binary, tmp_path):
    proc = subprocess.Popen([binary, "--interval", "30", "--artifact-info", tmp_path / "x"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert "started" in proc.stdout.readline()
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "stopping" in out


def test_unit_file_sections_and_exec_path():
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    assert parser.sections() == ["Unit", "Service", "Install"]
    assert parser["Unit"]["Description"]
    exec_start = parser["Service"]["ExecStart"].split()
    assert exec_start[0] == "/usr/bin/hello-buildctl"   # where do_install puts it (${bindir})
    assert parser["Service"]["Type"] == "simple"
    assert parser["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verify_accepts_the_unit(binary, tmp_path):
    analyze = skips.tool("systemd-analyze", "apt-get install systemd")
    # verify also checks that ExecStart's program exists: point it at the binary
    # the Makefile just installed (on the device it is /usr/bin/hello-buildctl).
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/bin/hello-buildctl", str(binary)))
    res = subprocess.run([analyze, "verify", unit], capture_output=True, text=True)
    output = res.stdout + res.stderr
    assert res.returncode == 0, output
    for complaint in ("Unknown key", "Unknown section", "Failed to parse", "bad unit file"):
        assert complaint not in output, output
