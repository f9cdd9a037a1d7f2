"""The host runtime: output streaming, environment allowlist, never running builds as root."""
from __future__ import annotations

import os

import pytest

from buildctl.builder.runtime import get_runtime, resolve_owner
from buildctl.builder.runtime.base import RunSpec, allowed_host_env
from buildctl.errors import UserError


def test_owner_is_the_invoking_user_never_root(monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(os, "getgid", lambda: 0)
    monkeypatch.setenv("SUDO_UID", "1500")
    monkeypatch.setenv("SUDO_GID", "1600")
    assert resolve_owner() == (1500, 1600)
    monkeypatch.delenv("SUDO_UID")
    assert resolve_owner() == (1000, 1000)
    monkeypatch.setattr(os, "getuid", lambda: 2000)
    monkeypatch.setattr(os, "getgid", lambda: 2001)
    assert resolve_owner() == (2000, 2001)


def test_only_allowlisted_host_variables_pass():
    env = allowed_host_env({"https_proxy": "http://p:3128", "MENDER_TENANT_TOKEN": "x",
                            "AWS_SECRET_ACCESS_KEY": "y", "TZ": "UTC"})
    assert env == {"https_proxy": "http://p:3128", "TZ": "UTC"}


def test_host_runtime_streams_lines_and_drops_root(tmp_path):
    rt = get_runtime("host")
    lines: list[str] = []
    spec = RunSpec(name="t", argv=["sh", "-c", "echo one; echo two >&2; id -u; exit 3"],
                   env={"PATH": "/usr/bin:/bin"}, mounts=[], workdir=tmp_path,
                   owner=(1234, 1234))
    assert rt.run(spec, lines.append) == 3
    assert lines[:2] == ["one", "two"]
    expected = "1234" if os.geteuid() == 0 else str(os.geteuid())
    assert lines[2] == expected


def test_unknown_runtime_is_a_usage_error():
    with pytest.raises(UserError, match="--runtime"):
        get_runtime("lxc")
