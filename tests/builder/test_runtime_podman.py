"""The podman runtime's command line, checked against a recording stand-in `podman`."""
from __future__ import annotations

import json
import os
from pathlib import Path

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
