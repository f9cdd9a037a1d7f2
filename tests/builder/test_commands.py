"""The build/container/doctor verbs: help, usage errors, machine-readable output."""
from __future__ import annotations

import json

import pytest

from buildctl.cli import main


@pytest.mark.parametrize("verb", [["build"], ["container", "build"], ["container", "tag"],
                                  ["doctor"]])
def test_help(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*verb, "--help"])
    assert exc.value.code == 0
    assert "usage: buildctl" in capsys.readouterr().out


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert main(["build", str(tmp_path / "missing.yml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.yml: no such file" in err
    kas = tmp_path / "k.yml"
    kas.write_text("header: {version: 14}\nmachine: m1\nrepos: {}\n")
    assert main(["build", str(kas), "--board", "other"]) == 2
    assert "--board" in capsys.readouterr().err
    assert main(["build", str(kas), "--jobs", "0"]) == 2


def test_container_tag_json(capsys):
    assert main(["container", "tag", "--profile", "minimal", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tag"].startswith("buildctl-builder:minimal-") and len(data["inputs"]) == 64


def test_doctor_reports_a_missing_engine(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    monkeypatch.setenv("BUILDCTL_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["doctor", "--json", "--offline"]) == 1
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert not checks["engine"]["ok"] and "dockerd" in checks["engine"]["detail"]
    assert checks["cache:sstate"]["ok"] and checks["user-namespaces"]["ok"] in (True, False)
