"""The fleet is real Mender clients: 6 sandboxed mender-client 3.4 daemons (2 canary, 4 field)
plus one device of another type, polling the Mender test server while `buildctl rollout`
drives the stages. The tests run in file order on one fleet (each release has its own
version), and the management API gets injected faults while they run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.publish.conftest import _stop
from tests.release.helpers import make_key
from tests.rollout import fleet
from tests.rollout.conftest import PASSWORD, PAT, ROOT, USER, make_bundle, start_server
from tests.helpers import skips

STAGES = "canary:group=canary,field:group=field"
DEPLOYMENTS = "/api/management/v1/deployments/deployments/"


def rollout(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "buildctl", "rollout", *args], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
                          capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if not fleet.userns_ok():
        skips.missing("unshare -r -m does not work: the fleet needs user namespaces")
    fleet.client_root()
    tmp = tmp_path_factory.mktemp("fleet")
    key, pub = make_key(tmp / "keys" / "fleet.pem")
    other_key, _ = make_key(tmp / "keys" / "other.pem")
    srv = start_server("--auto-accept")
    devices = []
    try:
        for i in range(6):
            devices.append(fleet.make_device(tmp / "devices", f"x86-{i}", f"02:00:00:00:00:1{i}",
                                             "qemux86-64", srv.url, pub))
        devices.append(fleet.make_device(tmp / "devices", "arm-0", "02:00:00:00:00:20",
                                         "qemuarm64", srv.url, pub))
        for d in devices:
            fleet.start(d)
        by_mac = fleet.wait_for(
            lambda: (lambda st: {v["identity"]["mac"]: k for k, v in st["devices"].items()}
                     if len(st["devices"]) == len(devices) else None)(srv.state()),
            90, "every client to authenticate")
        ids = {d.name: by_mac[d.mac] for d in devices}
        canary = [ids["x86-0"], ids["x86-1"]]
        field = [ids[f"x86-{i}"] for i in range(2, 6)] + [ids["arm-0"]]
        srv.mgmt("PATCH", "/api/management/v1/inventory/groups/canary/devices", canary)
        srv.mgmt("PATCH", "/api/management/v1/inventory/groups/field/devices", field)
        yield {"tmp": tmp, "srv": srv, "devices": {d.name: d for d in devices}, "ids": ids,
               "key": key, "other_key": other_key, "canary": canary, "field": field}
    finally:
        for d in devices:
            fleet.stop(d)
        _stop(srv.proc)


def deployments_of(srv, artifact_name: str) -> list[dict]:
    return [d for d in srv.state()["deployments"].values() if d["artifact_name"] == artifact_name]


def motd(dev) -> str | None:
    return dev.installed.read_text() if dev.installed.exists() else None


def test_good_release_reaches_canary_then_field_despite_server_faults(world):
    srv, tmp = world["srv"], world["tmp"]
    bundle = make_bundle(tmp / "r1", version="1.0", signing_key=world["key"])
    srv.faults([
        {"path": "/api/management/v1/deployments/artifacts", "method": "POST", "status": 503,
         "count": 2},
        {"path": "/api/management/v1/deployments/deployments/", "method": "GET", "status": 429,
         "retry_after": 1, "count": 2},
        {"path": "/api/management/v2/deployments/artifacts", "status": 500, "count": 1},
        {"path": "/api/management/v1/inventory/groups/", "delay": 1.5, "count": 1},
    ])
    state = tmp / "r1.state.json"
    r = rollout(str(bundle), "--server", srv.url, "--token", "env:MENDER_PAT", "--stages", STAGES,
                "--poll", "0.5", "--timeout", "120s", "--state", str(state), "--json",
                env={"MENDER_PAT": PAT})
    srv.faults([])
    assert r.returncode == 0, r.stderr + r.stdout
    out = json.loads(r.stdout)
    assert [s["state"] for s in out["stages"]] == ["succeeded", "succeeded"]
    assert PAT not in r.stdout + r.stderr + state.read_text()
    # every faulted request was retried: the artifact is on the server exactly once
    st = srv.state()
    assert [a["name"] for a in st["artifacts"]] == ["demo-1.0-qemux86-64"]
    log = srv.log()
    assert any(e["status"] == 503 for e in log) and any(e["status"] == 429 for e in log)
    # every device of the release's type runs it now
    for i in range(6):
        assert motd(world["devices"][f"x86-{i}"]) == "hello from demo-1.0-qemux86-64\n"
    # the canary deployment had finished before the field one was created
    deps = sorted(deployments_of(srv, "demo-1.0-qemux86-64"), key=lambda d: d["created"])
    assert [d["groups"] for d in deps] == [["canary"], ["field"]]
    assert deps[0]["finished"] <= deps[1]["created"]
    # the device of another type was never offered the artifact
    arm = world["ids"]["arm-0"]
    assert deps[1]["devices"][arm]["status"] == "noartifact"
    assert motd(world["devices"]["arm-0"]) is None
    assert "demo-1.0" not in world["devices"]["arm-0"].log_text()
    # status reads the server again: every device and its state
    s = rollout("status", "--state", str(state), "--json", env={"MENDER_PAT": PAT})
    assert s.returncode == 0, s.stderr
    view = json.loads(s.stdout)
    statuses = {d["id"]: d["status"] for st_ in view["stages"] for d in st_["devices"]}
    assert [statuses[i] for i in world["canary"]] == ["success", "success"]
    assert statuses[arm] == "noartifact"


def test_rerun_uploads_nothing_and_a_reused_name_with_other_content_is_refused(world):
    srv, tmp = world["srv"], world["tmp"]
    same = rollout(str(tmp / "r1" / "release" / "demo" / "1.0"), "--server", srv.url,
                   "--token", "env:MENDER_PAT", "--stages", STAGES, "--poll", "0.5",
                   "--timeout", "60s", "--state", str(tmp / "rerun.json"), "--json",
                   env={"MENDER_PAT": PAT})
    assert same.returncode == 0, same.stderr + same.stdout
    assert [u["action"] for u in json.loads(same.stdout)["uploads"]] == ["already-there"]
    before = len(srv.state()["deployments"])
    other = make_bundle(tmp / "r1b", version="1.0", signing_key=world["key"], payload="changed")
    r = rollout(str(other), "--server", srv.url, "--token", "env:MENDER_PAT", "--stages", STAGES,
                "--state", str(tmp / "r1b.json"), env={"MENDER_PAT": PAT})
    assert r.returncode == 1
    assert "holds a different artifact named demo-1.0-qemux86-64" in r.stderr
    assert len(srv.state()["deployments"]) == before
    assert len(srv.state()["artifacts"]) == 1


def _assert_stopped_after_canary(world, name: str, r, state: Path) -> dict:
    srv = world["srv"]
    assert r.returncode == 1, r.stderr + r.stdout
    out = json.loads(r.stdout)
    assert [s["state"] for s in out["stages"]] == ["failed", "skipped"]
    deps = deployments_of(srv, name)
    assert [d["groups"] for d in deps] == [["canary"]], "the field must never get a deployment"
    assert all(dd["status"] == "failure" for dd in deps[0]["devices"].values())
    for i in range(2, 6):  # the field still runs the previous release
        assert motd(world["devices"][f"x86-{i}"]) == "hello from demo-1.0-qemux86-64\n"
    s = rollout("status", "--state", str(state), env={"MENDER_USER_PW": PASSWORD})
    assert s.returncode == 0, s.stderr
    return {"out": out, "status": s.stdout}


def test_update_failing_on_the_device_stops_after_canary(world):
    srv, tmp = world["srv"], world["tmp"]
    bundle = make_bundle(tmp / "r2", version="2.0", signing_key=world["key"], fail_script=True)
    state = tmp / "r2.json"
    r = rollout(str(bundle), "--server", srv.url, "--user", USER, "--password", "env:MENDER_USER_PW",
                "--stages", STAGES, "--poll", "0.5", "--timeout", "120s", "--state", str(state),
                "--json", env={"MENDER_USER_PW": PASSWORD})
    res = _assert_stopped_after_canary(world, "demo-2.0-qemux86-64", r, state)
    assert PASSWORD not in r.stdout + r.stderr + state.read_text() + res["status"]
    # the canary rolled back to 1.0, and the failure and the device's log are reported
    for dev in ("x86-0", "x86-1"):
        assert motd(world["devices"][dev]) == "hello from demo-1.0-qemux86-64\n"
    assert "failure" in res["status"]
    assert "ArtifactInstall_Enter_50_refuse" in res["status"]


def test_artifact_signed_with_another_key_is_refused_by_the_clients(world):
    srv, tmp = world["srv"], world["tmp"]
    bundle = make_bundle(tmp / "r3", version="3.0", signing_key=world["other_key"])
    state = tmp / "r3.json"
    r = rollout(str(bundle), "--server", srv.url, "--user", USER, "--password", "env:MENDER_USER_PW",
                "--stages", STAGES, "--poll", "0.5", "--timeout", "120s", "--state", str(state),
                "--json", env={"MENDER_USER_PW": PASSWORD})
    res = _assert_stopped_after_canary(world, "demo-3.0-qemux86-64", r, state)
    for dev in ("x86-0", "x86-1"):
        assert motd(world["devices"][dev]) == "hello from demo-1.0-qemux86-64\n"
    assert "signature" in res["status"].lower()
