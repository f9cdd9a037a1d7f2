"""The Mender test server is at least as strict as the real one, and `buildctl rollout` refuses
bad input, unverified releases, wrong credentials and a stage that never finishes - all without
real clients (a device here is a key pair that signs its auth request)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.publish.conftest import _stop
from tests.rollout.conftest import PAT, PASSWORD, ROOT, USER, make_bundle, start_server

STAGES = "canary:group=canary"


def rollout(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "buildctl", "rollout", *args], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
                          capture_output=True, text=True, timeout=120)


def http(url: str, method="GET", body: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def auth_request(srv, mac: str, key=None, sign_with=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    body = json.dumps({"id_data": json.dumps({"mac": mac}), "pubkey": key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()}).encode()
    sig = (sign_with or key).sign(body, ec.ECDSA(hashes.SHA256()))
    return http(srv.url + "/api/devices/v1/authentication/auth_requests", "POST", body,
                {"Content-Type": "application/json",
                 "X-MEN-Signature": base64.b64encode(sig).decode()}), key


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def strict_server():
    srv = start_server()  # no auto-accept
    try:
        yield srv
    finally:
        _stop(srv.proc)


def test_device_auth_checks_the_signature_and_acceptance(strict_server):
    srv = strict_server
    (status, _), key = auth_request(srv, "02:00:00:00:00:01",
                                    sign_with=ec.generate_private_key(ec.SECP256R1()))
    assert status == 401  # signed with a key other than the one presented
    (status, _), key = auth_request(srv, "02:00:00:00:00:01", key)
    assert status == 401  # signature fine, but the device is not accepted yet
    dev = next(iter(srv.state()["devices"]))
    srv.mgmt("PUT", f"/api/management/v2/devauth/devices/{dev}/status", {"status": "accepted"})
    (status, token), _ = auth_request(srv, "02:00:00:00:00:01", key)
    assert status == 200 and token
    (status, _), _ = auth_request(srv, "02:00:00:00:00:01")  # same identity, another key
    assert status == 401
    status, _ = http(srv.url + "/api/devices/v1/inventory/device/attributes", "PATCH",
                     b'[{"name":"x","value":"1"}]', {"Authorization": "Bearer " + token.decode()})
    assert status == 400  # no application/json content type
    status, _ = http(srv.url + "/api/devices/v1/deployments/device/deployments/next"
                     "?artifact_name=a&device_type=b", headers={"Authorization": "Bearer nope"})
    assert status == 401


def test_upload_and_deployment_rules(strict_server, bundle):
    srv = strict_server
    mender = next(bundle.rglob("*.mender")).read_bytes()
    url = srv.url + "/api/management/v1/deployments/artifacts"
    auth = {"Authorization": f"Bearer {PAT}"}

    def form(*parts):
        body = b"".join(b'--B\r\nContent-Disposition: form-data; name="%s"%s\r\n\r\n%s\r\n'
                        % (n, b'; filename="a.mender"' if n == b"artifact" else b"", v)
                        for n, v in parts) + b"--B--\r\n"
        return http(url, "POST", body, {**auth, "Content-Type": "multipart/form-data; boundary=B"})

    assert http(url, "POST", mender, {**auth, "Content-Type": "application/octet-stream"})[0] == 400
    assert form((b"description", b"x"))[0] == 400  # no artifact part
    assert form((b"artifact", b"not an artifact"))[0] == 400
    assert form((b"artifact", mender))[0] == 201
    assert form((b"artifact", mender), (b"description", b"after the artifact"))[0] == 409
    assert http(url, "POST", b"", {"Content-Type": "multipart/form-data; boundary=B"})[0] == 401
    arts = srv.state()["artifacts"]
    assert len(arts) == 1 and arts[0]["description"] == ""
    dep = srv.url + "/api/management/v1/deployments/deployments/group/canary"
    body = json.dumps({"name": "d", "artifact_name": arts[0]["name"]}).encode()
    assert http(dep, "POST", body, {**auth, "Content-Type": "application/json"})[0] == 400  # empty group


def test_unverified_release_sends_nothing(mender_server, bundle, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    m = next(broken.rglob("*.mender"))
    m.write_bytes(m.read_bytes() + b"tampered")
    r = rollout(str(broken), "--server", mender_server.url, "--token", "env:T", "--stages", STAGES,
                "--state", str(tmp_path / "s.json"), env={"T": PAT})
    assert r.returncode == 1
    assert "does not verify" in r.stderr and "Traceback" not in r.stderr
    assert mender_server.state()["artifacts"] == []
    assert not [e for e in mender_server.log() if e["method"] != "GET"]


@pytest.mark.parametrize("args, message", [
    (["--stages", "canary"], "--stages: 'canary' is not NAME:group=GROUP"),
    (["--stages", "a:group=g,b:group=g"], "group g is in two stages"),
    (["--stages", STAGES, "--success", "150%"], "--success"),
    (["--stages", STAGES, "--timeout", "soon"], "--timeout"),
    (["--stages", STAGES, "--token", PAT], "give a reference (env:NAME or file:PATH)"),
])
def test_bad_usage_is_one_line_and_exit_2(mender_server, bundle, args, message, capsys):
    from buildctl.cli import main

    code = main(["rollout", str(bundle), "--server", mender_server.url, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert PAT not in err
    assert mender_server.log() == []


def test_wrong_password_fails_without_showing_it(mender_server, bundle, tmp_path):
    r = rollout(str(bundle), "--server", mender_server.url, "--user", USER, "--password",
                "env:PW", "--stages", STAGES, "--state", str(tmp_path / "s.json"),
                env={"PW": "wrong " + PASSWORD})
    assert r.returncode == 1
    assert f"Mender login as {USER}: HTTP 401" in r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    assert mender_server.state()["artifacts"] == []


def test_a_rerun_reuses_the_running_deployment_which_times_out_and_is_aborted(mender_server, bundle, tmp_path):
    srv = mender_server
    (status, _), _ = auth_request(srv, "02:00:00:00:00:09")
    assert status == 200
    dev = next(iter(srv.state()["devices"]))
    srv.mgmt("PATCH", "/api/management/v1/inventory/groups/canary/devices", [dev])
    # an earlier, interrupted run already uploaded and created the canary deployment
    from buildctl.rollout.drive import release_artifacts
    from buildctl.rollout.mender_api import Credentials, MenderAPI

    api = MenderAPI(srv.url, Credentials(token=PAT))
    (art,) = release_artifacts(bundle)
    assert api.upload(art).action == "uploaded"
    earlier = api.create_group_deployment("canary", "demo-1.0/canary", art.name)
    r = rollout(str(bundle), "--server", srv.url, "--token", "env:T", "--stages",
                "canary:group=canary,field:group=field", "--timeout", "2s", "--poll", "0.3",
                "--state", str(tmp_path / "s.json"), "--json", env={"T": PAT})
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert [s["state"] for s in out["stages"]] == ["timeout", "skipped"]
    assert out["uploads"][0]["action"] == "already-there"
    (d,) = srv.state()["deployments"].values()  # the rerun reused it: no second deployment
    assert d["id"] == earlier
    assert d["status"] == "finished" and d["devices"][dev]["status"] == "aborted"


class ScriptedDevice:
    """A device speaking the device API from Python: authenticates, polls, reports `outcome`."""

    def __init__(self, srv, mac: str, outcome: str):
        (status, token), _ = auth_request(srv, mac)
        assert status == 200
        self.srv, self.token, self.outcome, self.done = srv, token.decode(), outcome, []
        self.id = next(k for k, v in srv.state()["devices"].items() if v["identity"]["mac"] == mac)

    def step(self) -> None:
        h = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json"}
        status, body = http(self.srv.url + "/api/devices/v2/deployments/device/deployments/next",
                            "POST", json.dumps({"device_provides": {
                                "device_type": "qemux86-64", "artifact_name": "factory"}}).encode(), h)
        if status != 200:
            return
        dep = json.loads(body)["id"]
        base = self.srv.url + f"/api/devices/v1/deployments/device/deployments/{dep}"
        for s in ("downloading", "installing", self.outcome):
            assert http(base + "/status", "PUT", json.dumps({"status": s}).encode(), h)[0] == 204
        if self.outcome == "failure":
            msg = {"messages": [{"timestamp": "2026-01-01T00:00:00Z", "level": "error",
                                 "message": "disk full on purpose"}]}
            assert http(base + "/log", "PUT", json.dumps(msg).encode(), h)[0] == 204
        self.done.append(dep)


@pytest.mark.parametrize("max_failures, ok", [(1, True), (0, False)])
def test_success_share_and_failure_budget(mender_server, bundle, tmp_path, max_failures, ok):
    import threading
    import time

    srv = mender_server
    canary = [ScriptedDevice(srv, f"02:00:00:00:01:0{i}", "failure" if i == 0 else "success")
              for i in range(4)]
    field = [ScriptedDevice(srv, "02:00:00:00:02:00", "success")]
    srv.mgmt("PATCH", "/api/management/v1/inventory/groups/canary/devices", [d.id for d in canary])
    srv.mgmt("PATCH", "/api/management/v1/inventory/groups/field/devices", [d.id for d in field])
    stop = threading.Event()

    def fleet():
        while not stop.is_set():
            for d in canary + field:
                d.step()
            time.sleep(0.2)

    t = threading.Thread(target=fleet, daemon=True)
    t.start()
    try:
        state = tmp_path / "s.json"
        r = rollout(str(bundle), "--server", srv.url, "--token", "env:T", "--stages",
                    "canary:group=canary,field:group=field", "--success", "75%", "--max-failures",
                    str(max_failures), "--poll", "0.3", "--timeout", "60s", "--state", str(state),
                    "--json", env={"T": PAT})
    finally:
        stop.set()
        t.join()
    out = json.loads(r.stdout)
    if ok:  # 3 of 4 canaries succeeded (75%), 1 failure is within the budget
        assert r.returncode == 0, r.stderr
        assert [s["state"] for s in out["stages"]] == ["succeeded", "succeeded"]
        assert field[0].done
    else:
        assert r.returncode == 1
        assert [s["state"] for s in out["stages"]] == ["failed", "skipped"]
        assert not field[0].done
        assert "more than --max-failures 0" in out["error"]
        s = rollout("status", "--state", str(state), "--json", env={"T": PAT})
        failed = [d for st in json.loads(s.stdout)["stages"] for d in st["devices"]
                  if d["status"] == "failure"]
        assert [d["id"] for d in failed] == [canary[0].id]
        assert "disk full on purpose" in failed[0]["log"]


def test_an_expired_login_token_is_renewed(mender_server):
    from buildctl.rollout.mender_api import Credentials, MenderAPI

    api = MenderAPI(mender_server.url, Credentials(user=USER, password=PASSWORD))
    assert api.groups() == []
    http(mender_server.url + "/__expire_tokens", "POST", b"")
    assert api.groups() == []
    logins = [e for e in mender_server.log() if e["path"].endswith("/useradm/auth/login")]
    assert [e["status"] for e in logins] == [200, 200]
    assert "correct horse" not in repr(api._creds)


def test_upload_survives_resets_and_a_lost_answer_without_duplicates(mender_server, bundle):
    from buildctl.publish.http import RetryPolicy
    from buildctl.rollout.drive import release_artifacts
    from buildctl.rollout.mender_api import Credentials, MenderAPI

    srv = mender_server
    srv.faults([
        {"path": "/api/management/v1/deployments/artifacts", "method": "POST", "reset": True,
         "count": 1},
        # the upload lands, but the answer is a 502: the retry meets 409, and only the
        # listing's matching checksums make that "already there"
        {"path": "/api/management/v1/deployments/artifacts", "method": "POST", "status": 502,
         "after": True, "count": 1},
    ])
    api = MenderAPI(srv.url, Credentials(token=PAT), policy=RetryPolicy(base_s=0.05))
    (art,) = release_artifacts(bundle)
    res = api.upload(art)
    assert res.action == "already-there"
    posts = [e.get("status") for e in srv.log() if e["method"] == "POST"]
    assert posts == [502, 409]  # the reset request never got an answer, so it is not logged
    (stored,) = srv.state()["artifacts"]
    assert [f["checksum"] for u in stored["updates"] for f in u["files"]] == art.checksums
    assert api.http.stats.retries == 2
